package partition

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/clock"
	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/waitq"
)

// term is one stretch of this node's leadership over a partition. Everything
// that lives only on the leader hangs off it and dies with it.
type term struct {
	number uint64
	clk    clock.Clock
	// anchor is the clock reading when the term was established. The term
	// stamps commands with anchor plus elapsed time, so a wall-clock jump on
	// the leader during its term does not move leases.
	anchor time.Time
	// done is closed when the term ends.
	done      chan struct{}
	ephemeral *ephemeralStore
	waiters   *waitq.Queue
	// collecting is set while an expire command is in flight.
	collecting atomic.Bool
	// leaseUntil is when the term's authority to act alone runs out (see
	// lease.go); renewing is set while a background renewal runs.
	leaseUntil atomic.Pointer[time.Time]
	renewing   atomic.Bool
	// handingOver counts the leadership transfers under way: a second
	// request fails fast while the first still runs, and must not clear
	// the mark on its way out.
	handingOver atomic.Int32
}

// now is the term's time in unix milliseconds. Adding the elapsed time
// before truncating keeps the stamp from running up to 1 ms behind, which
// would shorten a lease by that much.
func (t *term) now() int64 {
	return t.anchor.Add(t.clk.Now().Sub(t.anchor)).UnixMilli()
}

var errStopped = errors.New("partition: leadership ended")

// monitorLeadership runs the leader loop while Raft says this node leads.
func (g *Group) monitorLeadership() {
	defer g.wg.Done()
	var stop, done chan struct{}
	var loopTerm uint64
	stopLoop := func() {
		if stop != nil {
			close(stop)
			<-done
			stop = nil
		}
	}
	for {
		select {
		case <-g.leaderSig:
			leader := g.isLeader.Load()
			current := g.raft.CurrentTerm()
			// Notifications coalesce: lost-and-regained leadership may show up
			// as one "leader" signal, which needs a fresh term all the same.
			if stop != nil && (!leader || current != loopTerm) {
				stopLoop()
			}
			if leader && stop == nil {
				stop, done, loopTerm = make(chan struct{}), make(chan struct{}), current
				go g.leaderLoop(stop, done)
			}
		case <-g.shutdown:
			stopLoop()
			return
		}
	}
}

// leaderLoop establishes the term, publishes it, and runs the periodic
// leader duties until stop is closed.
func (g *Group) leaderLoop(stop, done chan struct{}) {
	defer close(done)
	t, err := g.establish(stop)
	if err != nil {
		return
	}
	g.lead.Store(t)
	g.changed.Notify()
	g.log.Info("serving as partition leader", "term", t.number)
	defer func() {
		g.lead.Store(nil)
		close(t.done)
		g.changed.Notify()
		g.log.Info("stopped serving as partition leader", "term", t.number)
	}()
	ticker := time.NewTicker(g.cfg.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			g.tick(t)
		}
	}
}

// establish prepares a new term, retrying until it works or stop closes.
func (g *Group) establish(stop chan struct{}) (*term, error) {
	backoff := 20 * time.Millisecond
	for {
		t, err := g.tryEstablish()
		if err == nil {
			return t, nil
		}
		g.log.Warn("establishing leadership failed, retrying", "err", err)
		select {
		case <-stop:
			return nil, errStopped
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// tryEstablish makes the new leader safe to serve:
//  1. a barrier, so every entry of earlier terms is applied and the local
//     state holds every write any leader acknowledged;
//  2. Promote, so the lease clock continues where the log left it;
//  3. a first block of ephemeral fencing tokens, above every token any
//     earlier leader could have handed out.
func (g *Group) tryEstablish() (*term, error) {
	number := g.raft.CurrentTerm()
	if err := g.raft.Barrier(g.cfg.ApplyTimeout).Error(); err != nil {
		return nil, fmt.Errorf("barrier: %w", err)
	}
	anchor := g.cfg.Clock.Now()
	t := &term{
		number:    number,
		clk:       g.cfg.Clock,
		anchor:    anchor,
		done:      make(chan struct{}),
		ephemeral: newEphemeralStore(g.cfg.EphemeralBlock),
		waiters:   waitq.New(),
	}
	res, err := g.applyDirect(t, []fsm.Command{
		{Op: fsm.OpPromote},
		{Op: fsm.OpReserveTokens, Limit: g.cfg.EphemeralBlock},
	})
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	if res[1].Outcome != fsm.Done {
		return nil, fmt.Errorf("reserve ephemeral tokens: %v", res[1].Outcome)
	}
	t.ephemeral.addBlock(res[1].Token, res[1].Count)
	if now := g.raft.CurrentTerm(); now != number {
		return nil, fmt.Errorf("term moved from %d to %d while establishing", number, now)
	}
	return t, nil
}

// applyDirect commits commands outside the proposer, for the steps that
// must happen before the term is published.
func (g *Group) applyDirect(t *term, cmds []fsm.Command) ([]fsm.Result, error) {
	data := fsm.AppendBatch(nil, fsm.Batch{Now: t.now(), Commands: cmds})
	return applyResult(g.raft.Apply(data, g.cfg.ApplyTimeout))
}

// tick does the leader's periodic chores. Correctness never depends on it:
// expiry is decided on every access; the tick only bounds memory and keeps
// the log's record of time fresh.
func (g *Group) tick(t *term) {
	now := t.now()
	grace := g.cfg.Grace.Milliseconds()
	t.ephemeral.expire(now, grace, g.cfg.MaxExpirePerTick)
	if t.ephemeral.needsRefill() {
		go g.reserveEphemeralTokens(t)
	}
	// Reclaim expired persistent locks; while any are held, also make sure
	// the log records the time at least once a tick, which bounds how much
	// the next leader's Promote can lengthen them.
	idle := now-g.prop.lastStamp.Load() >= g.cfg.Tick.Milliseconds()
	if !g.machine.Expirable(now, grace) && (g.machine.Len() == 0 || !idle) {
		return
	}
	if !t.collecting.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer t.collecting.Store(false)
		res, err := g.prop.propose(fsm.Command{Op: fsm.OpExpire, TTL: grace, Limit: g.cfg.MaxExpirePerTick})
		if err != nil {
			g.log.Debug("expire command failed", "err", err)
			return
		}
		if res.Count > 0 {
			g.log.Debug("reclaimed expired locks", "count", res.Count)
		}
	}()
}

// reserveEphemeralTokens reserves the term's next block of ephemeral fencing
// tokens through Raft; the caller has marked the refill as started.
func (g *Group) reserveEphemeralTokens(t *term) {
	res, err := g.prop.propose(fsm.Command{Op: fsm.OpReserveTokens, Limit: g.cfg.EphemeralBlock})
	if err != nil || res.Outcome != fsm.Done {
		g.log.Warn("reserving ephemeral tokens failed", "err", err, "outcome", res.Outcome)
		t.ephemeral.refillFailed()
		return
	}
	t.ephemeral.addBlock(res.Token, res.Count)
}

// checkTerm reports whether t is still Raft's current leadership: Raft may
// have moved on before the monitor retired t.
func (g *Group) checkTerm(t *term) bool {
	return g.raft.State() == raft.Leader && g.raft.CurrentTerm() == t.number
}
