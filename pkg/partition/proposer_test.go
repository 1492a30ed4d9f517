package partition

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/clock"
	"github.com/kahuna-go/kahuna/pkg/fsm"
)

// stuckFuture is an apply Raft accepted and never answers, as happens to
// entries still queued when Raft shuts down.
type stuckFuture struct{ never chan struct{} }

func (f stuckFuture) Error() error       { <-f.never; return nil }
func (f stuckFuture) Response() any      { return nil }
func (f stuckFuture) Index() uint64      { return 0 }
func (f stuckFuture) Type() raft.LogType { return raft.LogCommand }

type stuckRaft struct {
	mu      sync.Mutex
	applied int
}

func (r *stuckRaft) Apply([]byte, time.Duration) raft.ApplyFuture {
	r.mu.Lock()
	r.applied++
	r.mu.Unlock()
	return stuckFuture{never: make(chan struct{})}
}

func testTerm() *term {
	return &term{clk: clock.Real{}, anchor: time.Now(), done: make(chan struct{})}
}

// TestCloseAnswersBatchesRaftNeverAnswers is the regression test for a hang
// at shutdown: a batch whose future Raft never resolves must still get an
// answer when the proposer closes, and close must not wait for it forever.
func TestCloseAnswersBatchesRaftNeverAnswers(t *testing.T) {
	r := &stuckRaft{}
	tm := testTerm()
	p := newProposer(r, func() *term { return tm }, 16, 1, time.Second)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := p.propose(fsm.Command{Op: fsm.OpTryLock, Resource: "r", Owner: "o", TTL: 1})
			errs <- err
		}()
	}
	waitFor(t, 2*time.Second, "a batch reaches raft", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.applied > 0
	})
	closed := make(chan struct{})
	go func() { p.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close hangs on a batch raft never answered")
	}
	for range 3 {
		err := <-errs
		// The batch in raft has an unknown outcome; commands still queued
		// behind it (one slot in flight) were never sent.
		if !errors.Is(err, ErrUnknownOutcome) && !errors.Is(err, ErrClosed) {
			t.Fatalf("caller got %v", err)
		}
	}
	if _, err := p.propose(fsm.Command{Op: fsm.OpUnlock, Resource: "r"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("propose after close: %v", err)
	}
}

func TestNoTermMeansNotLeader(t *testing.T) {
	r := &stuckRaft{}
	p := newProposer(r, func() *term { return nil }, 16, 1, time.Second)
	defer p.close()
	if _, err := p.propose(fsm.Command{Op: fsm.OpTryLock, Resource: "r", Owner: "o", TTL: 1}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("err %v", err)
	}
	if r.applied != 0 {
		t.Fatal("a follower sent a batch to raft")
	}
}
