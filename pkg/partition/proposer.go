package partition

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/fsm"
)

// proposer is the group commit of one partition: commands queue up while the
// previous batches are in Raft, and each Raft entry carries as many of them
// as have gathered. One fsync then serves the whole batch, which is where
// throughput comes from.
type proposer struct {
	raft applier
	// clock returns the current leadership term, whose time stamps a
	// batch; nil means this node is not the leader.
	clock    func() *term
	maxBatch int
	timeout  time.Duration
	// linger is the longest a batch is held back to fill (see gather).
	linger time.Duration
	// onBatch, if set, is told every batch's size.
	onBatch func(int)

	mu       sync.Mutex
	queue    []*call
	wake     chan struct{}
	inflight chan struct{} // a semaphore of MaxInflight slots
	stop     chan struct{}
	wg       sync.WaitGroup // the run loop
	// flying holds the batches in Raft.
	flying map[flightKey]*flight
	// seq numbers this proposer's batches and lastBatch is the size of the
	// latest; only the run loop touches them.
	seq       uint64
	lastBatch int
	// lastFlight is how long the latest batch to land spent in Raft, ns.
	lastFlight atomic.Int64
	// stats, read by Status and tests
	batches, commands uint64
	// lastStamp is the Now of the last batch sent, unix ms.
	lastStamp atomic.Int64
}

type call struct {
	cmd  fsm.Command
	res  fsm.Result
	err  error
	done chan struct{}
}

// applier is the part of *raft.Raft the proposer uses.
type applier interface {
	Apply(cmd []byte, timeout time.Duration) raft.ApplyFuture
}

func newProposer(r applier, clock func() *term, maxBatch, maxInflight int, timeout, linger time.Duration) *proposer {
	p := &proposer{
		raft:     r,
		clock:    clock,
		maxBatch: maxBatch,
		timeout:  timeout,
		linger:   linger,
		wake:     make(chan struct{}, 1),
		inflight: make(chan struct{}, maxInflight),
		stop:     make(chan struct{}),
		flying:   map[flightKey]*flight{},
	}
	p.wg.Add(1)
	go p.run()
	return p
}

// propose commits cmd and returns its result. It waits for Raft's verdict
// even if the caller has gone, because a write in flight cannot be recalled;
// the wait is bounded by Raft's apply and leader-lease timeouts.
func (p *proposer) propose(cmd fsm.Command) (fsm.Result, error) {
	c := &call{cmd: cmd, done: make(chan struct{})}
	p.mu.Lock()
	select {
	case <-p.stop:
		p.mu.Unlock()
		return fsm.Result{}, ErrClosed
	default:
	}
	p.queue = append(p.queue, c)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	<-c.done
	return c.res, c.err
}

func (p *proposer) take() []*call {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(len(p.queue), p.maxBatch)
	if n == 0 {
		return nil
	}
	p.lastBatch = n
	batch := p.queue[:n:n]
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue = nil
	}
	return batch
}

func (p *proposer) run() {
	defer p.wg.Done()
	for {
		select {
		case <-p.wake:
		case <-p.stop:
			p.failQueued(ErrClosed)
			return
		}
		for {
			// Wait for a free slot before taking commands, so that while
			// Raft is busy the queue keeps growing into a bigger batch.
			select {
			case p.inflight <- struct{}{}:
			case <-p.stop:
				p.failQueued(ErrClosed)
				return
			}
			if !p.gather() {
				p.failQueued(ErrClosed)
				return
			}
			batch := p.take()
			if batch == nil {
				<-p.inflight
				break
			}
			p.send(batch)
		}
	}
}

// gather holds the next batch back while fewer commands are queued than
// the last batch carried: for at most half the time the last batch spent in
// Raft, and never longer than p.linger. Under load the callers of one batch
// are answered together and come back within a moment of each other;
// without the wait the first few back would go out as a small entry of
// their own and the rest would queue behind it. Every entry costs a log
// write on each voter, so fewer, fuller entries carry more commands per
// second. A caller alone (a last batch of one) never waits, and the wait is
// small next to the commit it joins.
// It reports false if the proposer stopped meanwhile.
func (p *proposer) gather() bool {
	if p.linger <= 0 || p.lastBatch < 2 {
		return true
	}
	wait := min(p.linger, time.Duration(p.lastFlight.Load())/2)
	if wait <= 0 {
		return true
	}
	var timer *time.Timer
	for {
		p.mu.Lock()
		n := len(p.queue)
		p.mu.Unlock()
		if n == 0 || n >= p.lastBatch {
			return true // nothing to hold back, or full
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-p.wake:
		case <-timer.C:
			return true
		case <-p.stop:
			return false
		}
	}
}

// send stamps and submits one batch; a slot in p.inflight is held.
func (p *proposer) send(batch []*call) {
	t := p.clock()
	if t == nil {
		<-p.inflight
		finish(batch, nil, ErrNotLeader)
		return
	}
	cmds := make([]fsm.Command, len(batch))
	for i, c := range batch {
		cmds[i] = c.cmd
	}
	now := t.now()
	p.lastStamp.Store(now)
	p.seq++ // from 1: batches sent outside the proposer carry 0
	key := flightKey{term: t.number, seq: p.seq}
	fl := &flight{calls: batch, sent: time.Now()}
	// Registered before Raft sees the batch, so applied can find it.
	p.mu.Lock()
	p.batches++
	p.commands += uint64(len(batch))
	p.flying[key] = fl
	p.mu.Unlock()
	if p.onBatch != nil {
		p.onBatch(len(batch))
	}
	data := fsm.AppendBatch(nil, fsm.Batch{Now: now, Term: key.term, Seq: key.seq, Commands: cmds})
	f := p.raft.Apply(data, p.timeout)
	go func() {
		res, err := applyResult(f)
		p.land(key, fl, res, err)
	}()
}

// flightKey names a proposal: one leader per term, one sequence per leader.
type flightKey struct{ term, seq uint64 }

// flight is a batch handed to Raft. Its callers are answered by whichever
// comes first: the FSM applying it (applied), Raft's future (land), or close
// (Raft does not answer futures still queued when it shuts down). The onces
// make sure callers hear one answer and the in-flight slot is freed once.
type flight struct {
	calls []*call
	sent  time.Time
	once  sync.Once
	slot  sync.Once
}

func (fl *flight) finish(res []fsm.Result, err error) {
	fl.once.Do(func() { finish(fl.calls, res, err) })
}

// land answers a flight with its Raft outcome and frees its slot.
func (p *proposer) land(key flightKey, fl *flight, res []fsm.Result, err error) {
	p.mu.Lock()
	delete(p.flying, key)
	p.mu.Unlock()
	fl.finish(res, err)
	fl.slot.Do(func() {
		p.lastFlight.Store(int64(time.Since(fl.sent)))
		<-p.inflight
	})
}

// applied is told of every batch the FSM applies. If it is one of this
// proposer's, its callers are answered at once, from the FSM goroutine,
// instead of after Raft's future wakes another goroutine; the next batch can
// go out sooner too.
func (p *proposer) applied(term, seq uint64, res []fsm.Result) {
	key := flightKey{term, seq}
	p.mu.Lock()
	fl := p.flying[key]
	p.mu.Unlock()
	if fl != nil {
		p.land(key, fl, res, nil)
	}
}

// applyResult waits for a Raft apply of a batch and maps its failure modes to
// what a caller can do about them.
func applyResult(f raft.ApplyFuture) ([]fsm.Result, error) {
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
			errors.Is(err, raft.ErrLeadershipTransferInProgress):
			// Never entered the log.
			return nil, fmt.Errorf("%w: %w", ErrNotLeader, err)
		default:
			// ErrLeadershipLost, shutdown: the entry may still commit.
			return nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
		}
	}
	switch r := f.Response().(type) {
	case []fsm.Result:
		return r, nil
	case error:
		return nil, r
	default:
		return nil, fmt.Errorf("partition: unexpected apply response %T", r)
	}
}

func finish(batch []*call, res []fsm.Result, err error) {
	for i, c := range batch {
		switch {
		case err != nil:
			c.err = err
		case i < len(res):
			c.res = res[i]
		default:
			c.err = fmt.Errorf("partition: %d results for %d commands", len(res), len(batch))
		}
		close(c.done)
	}
}

func (p *proposer) failQueued(err error) {
	p.mu.Lock()
	q := p.queue
	p.queue = nil
	p.mu.Unlock()
	finish(q, nil, err)
}

// close stops the proposer after Raft has shut down: queued commands fail
// with ErrClosed, and batches Raft took but never answered with
// ErrUnknownOutcome, since they may or may not be in the log.
func (p *proposer) close() {
	p.mu.Lock()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	flying := p.flying
	p.flying = map[flightKey]*flight{}
	p.mu.Unlock()
	for _, fl := range flying {
		fl.finish(nil, fmt.Errorf("%w: raft shut down", ErrUnknownOutcome))
	}
}

func (p *proposer) stats() (batches, commands uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.batches, p.commands
}
