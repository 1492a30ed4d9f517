package partition

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// verifier coalesces leadership checks: every read needs proof, gathered
// after the read arrived, that a quorum still follows this leader, and one
// round serves every read that was waiting when it started.
//
// A round is a Raft barrier, not VerifyLeader. hashicorp/raft's
// VerifyLeader counts any successful AppendEntries reply that arrives after
// the call, including replies to heartbeats and appends sent before it. A
// leader frozen (SIGSTOP, a VM stall) right after sending one wakes to find
// the reply waiting and passes the check, though the followers may have
// elected another leader while it slept: a stale read, or an ephemeral
// grant below a newer leader's tokens. A barrier is a log entry created by
// the call, so the quorum that commits it accepted it after the call, in
// this leader's term. (Found by TestFrozenLeaderGrantsNoEphemeralLock
// failing about once in a hundred runs.) It costs a log write, shared by
// the round's reads and usually by a batch of writes too.
type verifier struct {
	raft    *raft.Raft
	self    string        // this node's server ID
	timeout time.Duration // bounds a barrier's wait to enter the log

	mu      sync.Mutex
	waiting []chan error
	running bool
}

// verify returns nil once a quorum has accepted, in this leader's term, a
// log entry created after the call.
func (v *verifier) verify() error {
	ch := make(chan error, 1)
	v.mu.Lock()
	v.waiting = append(v.waiting, ch)
	if !v.running {
		v.running = true
		go v.rounds()
	}
	v.mu.Unlock()
	return <-ch
}

func (v *verifier) rounds() {
	for {
		v.mu.Lock()
		batch := v.waiting
		v.waiting = nil
		if len(batch) == 0 {
			v.running = false
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		err := v.round()
		for _, ch := range batch {
			ch <- err
		}
	}
}

// round proves leadership once. A leader that is the group's only voter
// cannot be deposed by an election (a second voter would have to join
// through the log first), so it spares the log write.
func (v *verifier) round() error {
	if v.raft.State() == raft.Leader && v.soleVoter() {
		return nil
	}
	return v.raft.Barrier(v.timeout).Error()
}

func (v *verifier) soleVoter() bool {
	all, err := voters(v.raft)
	_, self := all[v.self]
	return err == nil && len(all) == 1 && self
}
