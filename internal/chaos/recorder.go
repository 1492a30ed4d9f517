package chaos

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Reply is what a client learned when an operation returned.
type Reply struct {
	// Type is the reply's wire type.
	Type int
	// Token, Holder and Node are the reply's fencingToken, owner and
	// servedFrom fields.
	Token  int64
	Holder string
	Node   string
	// Error is the reply's "error" text (types 99, 100, 101).
	Error string
}

// Handle names an operation between Begin and End.
type Handle int

// ErrNoReply is the error text of an op still open when the history was
// taken: its outcome is unknown.
var ErrNoReply = errors.New("no reply recorded")

// Recorder collects a history from many client goroutines. Every time it
// records comes from one monotonic clock, so Invoke and Complete of
// different clients compare meaningfully.
type Recorder struct {
	now func() time.Duration

	mu       sync.Mutex
	ops      []Op
	ended    []bool
	canceled []bool
}

// NewRecorder starts a recorder whose clock reads zero now. time.Since uses
// the monotonic reading, so wall-clock steps do not disturb the history.
func NewRecorder() *Recorder {
	start := time.Now()
	return NewRecorderWithClock(func() time.Duration { return time.Since(start) })
}

// NewRecorderWithClock starts a recorder on the given clock, which must
// never run backwards (tests use a fake one).
func NewRecorderWithClock(now func() time.Duration) *Recorder {
	return &Recorder{now: now}
}

// Now reads the recorder's clock, for events that are not operations (a
// fault injected, a node killed) and must be placed on the same time line.
func (r *Recorder) Now() time.Duration { return r.now() }

// Begin records an operation as invoked now. The caller fills Client, Kind,
// Resource, Durability, Owner, TTL and Wait; ID and Invoke are set here,
// and outcome fields are ignored.
func (r *Recorder) Begin(op Op) Handle {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Read the clock under the lock: IDs then follow invocation order.
	op.Invoke = r.now()
	op.Complete = op.Invoke
	op.ID = len(r.ops)
	op.Definite, op.Type, op.Token, op.Holder, op.Node, op.Err = false, 0, 0, "", "", ""
	r.ops = append(r.ops, op)
	r.ended = append(r.ended, false)
	r.canceled = append(r.canceled, false)
	return Handle(op.ID)
}

// Cancel drops an operation that surely never reached a server (its
// connection was refused): it has no effect to account for, and keeping it
// as indefinite would only widen the checkers' search. Cancelling an ended
// op is an error and changes nothing.
func (r *Recorder) Cancel(h Handle) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := int(h)
	if i < 0 || i >= len(r.ops) {
		return fmt.Errorf("chaos: cancel of unknown op %d", i)
	}
	if r.ended[i] {
		return fmt.Errorf("chaos: op %d canceled after it ended", i)
	}
	r.ended[i], r.canceled[i] = true, true
	return nil
}

// End records the operation's completion now. A non-nil err (a timeout, a
// transport failure) or a 101 reply leaves the outcome unknown; any other
// reply is definite. Ending an op twice is an error and changes nothing.
func (r *Recorder) End(h Handle, rep Reply, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := int(h)
	if i < 0 || i >= len(r.ops) {
		return fmt.Errorf("chaos: end of unknown op %d", i)
	}
	if r.ended[i] {
		return fmt.Errorf("chaos: op %d ended twice", i)
	}
	r.ended[i] = true
	op := &r.ops[i]
	op.Complete = max(r.now(), op.Invoke)
	switch {
	case err != nil:
		op.Err = err.Error()
	case rep.Type == TypeMustRetry:
		op.Type = rep.Type
		op.Node = rep.Node
		op.Err = "MustRetry: " + rep.Error
	default:
		op.Definite = true
		op.Type = rep.Type
		op.Token = rep.Token
		op.Holder = rep.Holder
		op.Node = rep.Node
		op.Err = rep.Error // 99 and 100 carry one; the checkers report them
	}
	return nil
}

// History returns a copy of everything recorded so far, without canceled
// ops, numbered afresh. Ops not yet ended are included as indefinite
// (ErrNoReply), completing now: a client that was still waiting when the
// run stopped does not know the outcome either.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	ops := make([]Op, 0, len(r.ops))
	for i, op := range r.ops {
		if r.canceled[i] {
			continue
		}
		if !r.ended[i] {
			op.Complete = max(now, op.Invoke)
			op.Err = ErrNoReply.Error()
		}
		op.ID = len(ops)
		ops = append(ops, op)
	}
	return History{Ops: ops}
}

// Imply records an operation the service may perform on a client's behalf
// because of op h: an indefinite op spanning h's invocation to h's
// completion, so checkers allow its effect at any time after h began. The
// contract's case: a waiting try-lock whose caller went away may be granted
// and then released by the server, an unlock nobody sent. Call it after h
// ended.
func (r *Recorder) Imply(h Handle, op Op, why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := int(h)
	if i < 0 || i >= len(r.ops) || !r.ended[i] || r.canceled[i] {
		return fmt.Errorf("chaos: imply from op %d, which is not an ended op", i)
	}
	op.ID = len(r.ops)
	op.Client = r.ops[i].Client
	op.Invoke, op.Complete = r.ops[i].Invoke, r.ops[i].Complete
	op.Definite, op.Type, op.Token, op.Holder, op.Node = false, 0, 0, "", ""
	op.Err = "implied: " + why
	r.ops = append(r.ops, op)
	r.ended = append(r.ended, true)
	r.canceled = append(r.canceled, false)
	return nil
}

// Op returns operation h as recorded so far.
func (r *Recorder) Op(h Handle) Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ops[int(h)]
}
