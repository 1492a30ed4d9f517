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
	p := newProposer(r, func() *term { return tm }, 16, 1, time.Second, 0)
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
	p := newProposer(r, func() *term { return nil }, 16, 1, time.Second, 0)
	defer p.close()
	if _, err := p.propose(fsm.Command{Op: fsm.OpTryLock, Resource: "r", Owner: "o", TTL: 1}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("err %v", err)
	}
	if r.applied != 0 {
		t.Fatal("a follower sent a batch to raft")
	}
}

// answerFuture is an apply Raft answers at once, one result per command.
type answerFuture struct{ res []fsm.Result }

func (f answerFuture) Error() error       { return nil }
func (f answerFuture) Response() any      { return f.res }
func (f answerFuture) Index() uint64      { return 0 }
func (f answerFuture) Type() raft.LogType { return raft.LogCommand }

// countingRaft commits every batch at once and records its size.
type countingRaft struct {
	mu    sync.Mutex
	sizes []int
}

func (r *countingRaft) Apply(data []byte, _ time.Duration) raft.ApplyFuture {
	b, err := fsm.DecodeBatch(data)
	if err != nil {
		panic(err)
	}
	r.mu.Lock()
	r.sizes = append(r.sizes, len(b.Commands))
	r.mu.Unlock()
	return answerFuture{res: make([]fsm.Result, len(b.Commands))}
}

func (r *countingRaft) batches() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.sizes...)
}

// lingering returns a proposer that last sent a batch of lastBatch commands
// which spent flight in Raft, as if under load.
func lingering(t *testing.T, r applier, linger time.Duration, lastBatch int, flight time.Duration) *proposer {
	tm := testTerm()
	p := newProposer(r, func() *term { return tm }, 16, 1, time.Second, linger)
	t.Cleanup(p.close)
	// Set before the first propose, whose wake orders it before the run
	// loop reads them.
	p.lastBatch = lastBatch
	p.lastFlight.Store(int64(flight))
	return p
}

func proposeAfter(p *proposer, d time.Duration, done chan<- time.Duration) {
	start := time.Now()
	time.Sleep(d)
	if _, err := p.propose(fsm.Command{Op: fsm.OpTryLock, Resource: "r", Owner: "o", TTL: 1}); err != nil {
		panic(err)
	}
	done <- time.Since(start)
}

// TestBatchWaitsToFillUpToTheLastSize: after a batch of three, three
// callers arriving 100 ms apart go out as one entry, not three.
func TestBatchWaitsToFillUpToTheLastSize(t *testing.T) {
	r := &countingRaft{}
	p := lingering(t, r, 10*time.Second, 3, 4*time.Second) // may wait up to 2 s
	done := make(chan time.Duration, 3)
	for i := range 3 {
		go proposeAfter(p, time.Duration(i)*100*time.Millisecond, done)
	}
	for range 3 {
		<-done
	}
	if got := r.batches(); len(got) != 1 || got[0] != 3 {
		t.Fatalf("batches %v, want one of 3", got)
	}
	// That batch spent no time in Raft, so the next one does not wait.
	go proposeAfter(p, 0, done)
	if d := <-done; d > time.Second {
		t.Fatalf("a caller alone after an instant commit waited %v", d)
	}
	if got := r.batches(); len(got) != 2 || got[1] != 1 {
		t.Fatalf("batches %v, want [3 1]", got)
	}
}

// TestBatchWaitIsBounded: the wait ends after half the last batch's time in
// Raft even if the batch is not full.
func TestBatchWaitIsBounded(t *testing.T) {
	r := &countingRaft{}
	p := lingering(t, r, 10*time.Second, 5, 600*time.Millisecond) // waits at most 300 ms
	done := make(chan time.Duration, 2)
	go proposeAfter(p, 0, done)
	go proposeAfter(p, 0, done)
	d1, d2 := <-done, <-done
	if got := r.batches(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("batches %v, want one of 2", got)
	}
	if slowest := max(d1, d2); slowest < 250*time.Millisecond || slowest > 5*time.Second {
		t.Fatalf("the batch of 2 (short of 5) went after %v; it must wait about 300 ms", slowest)
	}
}

// TestLoneCallerNeverWaits: with a last batch of one there is nobody to
// wait for, however long the linger.
func TestLoneCallerNeverWaits(t *testing.T) {
	r := &countingRaft{}
	p := lingering(t, r, 10*time.Second, 1, 4*time.Second)
	done := make(chan time.Duration, 1)
	for range 5 {
		go proposeAfter(p, 0, done)
		if d := <-done; d > time.Second {
			t.Fatalf("a lone caller waited %v", d)
		}
	}
	if got := r.batches(); len(got) != 5 {
		t.Fatalf("batches %v, want five of 1", got)
	}
}

// TestCloseDuringTheWaitFailsQueuedCallsAsClosed: commands held back to
// fill a batch never reached Raft, so closing answers them ErrClosed (they
// did not happen), not an unknown outcome.
func TestCloseDuringTheWaitFailsQueuedCallsAsClosed(t *testing.T) {
	r := &countingRaft{}
	p := lingering(t, r, 10*time.Second, 5, 20*time.Second) // would wait 10 s
	errs := make(chan error, 1)
	go func() {
		_, err := p.propose(fsm.Command{Op: fsm.OpTryLock, Resource: "r", Owner: "o", TTL: 1})
		errs <- err
	}()
	waitFor(t, 2*time.Second, "the command is queued", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.queue) == 1
	})
	p.close()
	if err := <-errs; !errors.Is(err, ErrClosed) {
		t.Fatalf("err %v, want ErrClosed", err)
	}
	if got := r.batches(); len(got) != 0 {
		t.Fatalf("batches %v reached raft after close", got)
	}
}
