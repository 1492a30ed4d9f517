package partition

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kahuna-go/kahuna/pkg/fsm"
)

// ErrTryAgain means the request was not applied and a retry will succeed
// shortly (for example while an ephemeral token block is being reserved).
var ErrTryAgain = errors.New("partition: temporarily unavailable")

// Request is one lock operation addressed to a partition.
type Request struct {
	// Cmd is a try-lock, extend, unlock or force-unlock.
	Cmd        fsm.Command
	Durability Durability
	// Wait is how long a try-lock may wait for a held lock.
	Wait time.Duration
}

func waitKey(d Durability, resource string) string {
	return string(rune('0'+d)) + resource
}

// Do runs a lock operation on this node, which must be the partition's
// leader. Persistent operations are committed through Raft before Do
// returns; ephemeral ones change the leader's memory only.
func (g *Group) Do(ctx context.Context, req Request) (fsm.Result, error) {
	switch req.Cmd.Op {
	case fsm.OpTryLock, fsm.OpExtend, fsm.OpUnlock, fsm.OpForceUnlock:
	default:
		return fsm.Result{}, fmt.Errorf("%w: operation %v", ErrInvalid, req.Cmd.Op)
	}
	if req.Durability != Persistent && req.Durability != Ephemeral {
		return fsm.Result{}, fmt.Errorf("%w: durability %d", ErrInvalid, req.Durability)
	}
	t := g.term()
	if t == nil {
		return fsm.Result{}, ErrNotLeader
	}
	if req.Cmd.Op == fsm.OpTryLock && req.Wait > 0 {
		return g.lockWait(ctx, t, req)
	}
	return g.attempt(t, req.Durability, req.Cmd)
}

// attempt runs one command once.
func (g *Group) attempt(t *term, d Durability, c fsm.Command) (fsm.Result, error) {
	if d == Persistent {
		// Waiters of persistent locks are woken by the FSM when the unlock
		// is applied (see Group.released).
		return g.prop.propose(c)
	}
	for tries := 0; ; tries++ {
		if err := g.leased(t); err != nil {
			return fsm.Result{}, err
		}
		refilled := t.ephemeral.refilled.C()
		res, refill := t.ephemeral.apply(t.now(), c)
		if refill {
			go g.reserveEphemeralTokens(t)
		}
		switch res.Outcome {
		case fsm.NoTokens:
			// Only when Raft cannot commit a reservation in time does a
			// caller see this; normally the next block is long in place.
			if t.ephemeral.needsRefill() {
				go g.reserveEphemeralTokens(t)
			}
			if tries >= 2 {
				return fsm.Result{}, fmt.Errorf("%w: ephemeral fencing tokens are being reserved", ErrTryAgain)
			}
			select {
			case <-refilled:
			case <-t.done:
				return fsm.Result{}, ErrNotLeader
			case <-time.After(g.cfg.ApplyTimeout):
			}
			continue
		case fsm.Unlocked:
			t.waiters.Wake(waitKey(d, c.Resource))
		}
		return res, nil
	}
}

// lockWait is a try-lock that waits up to req.Wait for a held lock. Waiters
// on one lock form a first-come-first-served line on the leader; a release
// wakes only the head, which then tries again. The head also wakes when the
// holder's lease runs out. A try-lock without a wait is not queued and may
// take a free lock ahead of the line.
func (g *Group) lockWait(ctx context.Context, t *term, req Request) (fsm.Result, error) {
	deadline := time.NewTimer(req.Wait)
	defer deadline.Stop()
	key := waitKey(req.Durability, req.Cmd.Resource)
	w, first := t.waiters.Join(key)
	defer w.Leave()

	var last fsm.Result
	tried := false
	try := func() (done bool, res fsm.Result, err error) {
		res, err = g.attempt(t, req.Durability, req.Cmd)
		if err != nil {
			return true, res, err
		}
		tried, last = true, res
		if res.Outcome != fsm.Busy {
			res, err = g.abandoned(ctx, t, req, res)
			return true, res, err
		}
		return false, res, nil
	}
	if first {
		if done, res, err := try(); done {
			return res, err
		}
	}
	// The head also watches the holder's lease: expiry frees the lock
	// without any release to wake us.
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	for {
		expiry.Stop()
		var expired <-chan time.Time
		if tried && w.IsHead() && last.ExpiresIn >= 0 {
			expiry.Reset(time.Duration(last.ExpiresIn+1) * time.Millisecond)
			expired = expiry.C
		}
		select {
		case <-w.C():
		case <-expired:
		case <-deadline.C:
			if !tried {
				// Never reached the head: a read (with its usual
				// leadership check) names the holder for the Busy reply.
				cur, err := g.Get(ctx, req.Durability, req.Cmd.Resource)
				if err != nil {
					return fsm.Result{}, err
				}
				if cur.Outcome != fsm.Got {
					// Free now, but our time is up: one last try.
					_, res, err := try()
					return res, err
				}
				cur.Outcome = fsm.Busy
				return cur, nil
			}
			return last, nil
		case <-ctx.Done():
			return fsm.Result{}, ctx.Err()
		case <-t.done:
			// Not ErrNotLeader: the router would quietly start the wait
			// over on the new leader. The contract has waiters answer
			// "must retry" and lets the client decide.
			return fsm.Result{}, fmt.Errorf("%w: the partition leader changed while waiting", ErrTryAgain)
		}
		if !w.IsHead() {
			continue
		}
		if done, res, err := try(); done {
			return res, err
		}
	}
}

// abandoned handles a grant that raced with the caller going away (the
// client hung up, the forwarding node closed the stream, the deadline
// passed): the new lock is released at once rather than left to expire, and
// the caller gets the context's error, never Locked. A Locked reply that
// still reached a client would name a lock the server no longer holds.
func (g *Group) abandoned(ctx context.Context, t *term, req Request, res fsm.Result) (fsm.Result, error) {
	if ctx.Err() == nil || res.Outcome != fsm.Locked || !res.Fresh {
		return res, nil
	}
	unlock := fsm.Command{Op: fsm.OpUnlock, Resource: req.Cmd.Resource, Owner: req.Cmd.Owner}
	if _, err := g.attempt(t, req.Durability, unlock); err != nil {
		g.log.Warn("releasing a lock granted after its waiter left failed", "resource", req.Cmd.Resource, "err", err)
	}
	return fsm.Result{}, fmt.Errorf("%w: granted after the caller left, and released", ctx.Err())
}

// Get reads a lock. Persistent reads are linearizable: they reflect every
// write acknowledged before the read began.
func (g *Group) Get(ctx context.Context, d Durability, resource string) (fsm.Result, error) {
	t, err := g.readable(d)
	if err != nil {
		return fsm.Result{}, err
	}
	if d == Ephemeral {
		return t.ephemeral.get(t.now(), resource), nil
	}
	return readLogged(g, t, func(now int64) (fsm.Result, bool) { return g.machine.Get(now, resource) })
}

// List returns up to limit live locks with the prefix after the cursor
// resource, in resource order, with the same consistency as Get.
func (g *Group) List(ctx context.Context, d Durability, prefix, after string, limit int) ([]fsm.Info, error) {
	t, err := g.readable(d)
	if err != nil {
		return nil, err
	}
	if d == Ephemeral {
		return t.ephemeral.list(t.now(), prefix, after, limit), nil
	}
	return readLogged(g, t, func(now int64) ([]fsm.Info, bool) { return g.machine.List(now, prefix, after, limit) })
}

// readLogged runs a persistent read and, when its answer relies on time the
// log has not recorded (a lock that expired since the last command), first
// records the time with an empty expire command and reads again. Otherwise a
// reader could see a lock expired and, after a leader change, live again:
// the next leader resumes the lease clock from the log.
func readLogged[T any](g *Group, t *term, read func(now int64) (T, bool)) (T, error) {
	var zero T
	for range 5 {
		v, unlogged := read(t.now())
		if !unlogged {
			return v, nil
		}
		if _, err := g.prop.propose(fsm.Command{Op: fsm.OpExpire, TTL: g.cfg.Grace.Milliseconds()}); err != nil {
			return zero, err
		}
	}
	// Locks kept expiring between recording the time and reading: rare
	// enough that the caller can simply ask again.
	return zero, fmt.Errorf("%w: locks expired while the read was being recorded", ErrTryAgain)
}

// readable returns the term once this node has shown it may serve a read.
// The barrier at the start of the term applied every earlier write, and
// writes of this term are applied before they are acknowledged, so after a
// quorum confirms leadership the local state is current.
func (g *Group) readable(d Durability) (*term, error) {
	t := g.term()
	if t == nil {
		return nil, ErrNotLeader
	}
	if d == Ephemeral {
		if err := g.leased(t); err != nil {
			return nil, err
		}
		return t, nil
	}
	if err := g.confirm(t); err != nil {
		return nil, err
	}
	return t, nil
}

// confirm returns nil once a quorum has confirmed, in a round that began
// after the call, that t is still this node's leadership.
func (g *Group) confirm(t *term) error {
	if err := g.verify.verify(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	if g.term() != t {
		return ErrNotLeader
	}
	return nil
}
