package partition

import (
	"fmt"
	"time"
)

// Ephemeral locks never go through the log, so nothing stops a leader that
// has lost its leadership without noticing from granting them: a process
// frozen by SIGSTOP, a VM stall or a long pause wakes up with Raft still
// in the leader state and its old block of fencing tokens, while another
// node has long been elected and granted higher tokens. Raft's own leader
// lease does not help, because the frozen process did not see the time pass
// (the chaos suite caught exactly this: a token went backwards after a
// pause-leader fault).
//
// So the term acts alone only within a lease: for a window after a quorum
// confirmed its leadership in a round that began at time s, the term may
// serve until s + window. Followers that confirmed it do not vote for anyone
// else until at least their heartbeat timeout has passed since hearing from
// us, and any new leader needs one of them; a window of half the heartbeat
// timeout leaves room for clocks that run at slightly different rates. The
// readings are monotonic, so wall-clock jumps do not stretch the lease.
//
// A leadership transfer is the one way a new leader is elected while the
// followers still hear from the old one (the target's vote request says
// "transfer", and they grant it). So the term stops acting alone as soon as
// it starts handing over, as Raft stops accepting writes.
//
// One assumption remains and is documented in docs/safety.md: a follower
// that crashes and restarts forgets whom it heard from, so one that restarts
// faster than the window could vote early.

// leaseWindow is how long a quorum confirmation lets the term act alone.
func (g *Group) leaseWindow() time.Duration { return g.cfg.Raft.HeartbeatTimeout / 2 }

// leased returns nil once t may act on its own authority: it is still
// Raft's leadership and a quorum confirmed it within the lease window.
// Under steady traffic the lease is renewed in the background before it
// runs out, so only the first request after a quiet spell waits for a
// confirmation round.
func (g *Group) leased(t *term) error {
	if !g.checkTerm(t) {
		return ErrNotLeader
	}
	if t.handingOver.Load() > 0 {
		return fmt.Errorf("%w: leadership is being transferred", ErrNotLeader)
	}
	now := g.cfg.Clock.Now()
	if until := t.leaseUntil.Load(); until != nil && now.Before(*until) {
		if until.Sub(now) < g.leaseWindow()/2 && t.renewing.CompareAndSwap(false, true) {
			go func() {
				defer t.renewing.Store(false)
				_ = g.renewLease(t)
			}()
		}
		return nil
	}
	// A confirmation round slower than the window leaves no lease to act
	// on; try a few rounds before telling the client to retry.
	for range 3 {
		if err := g.renewLease(t); err != nil {
			return err
		}
		if until := t.leaseUntil.Load(); until != nil && g.cfg.Clock.Now().Before(*until) {
			return nil
		}
	}
	return fmt.Errorf("%w: confirming leadership took longer than the ephemeral lease", ErrTryAgain)
}

// renewLease confirms t's leadership with a quorum and extends its lease
// from the moment the confirmation was asked for.
func (g *Group) renewLease(t *term) error {
	asked := g.cfg.Clock.Now()
	if err := g.confirm(t); err != nil {
		return err
	}
	until := asked.Add(g.leaseWindow())
	for {
		old := t.leaseUntil.Load()
		if old != nil && !until.After(*old) {
			return nil
		}
		if t.leaseUntil.CompareAndSwap(old, &until) {
			return nil
		}
	}
}
