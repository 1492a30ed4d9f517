package partition

import (
	"sync"

	"github.com/hashicorp/raft"
)

// verifier coalesces leadership checks: every read needs a VerifyLeader
// round that started after the read arrived, and one round serves every read
// that was waiting when it started.
type verifier struct {
	raft *raft.Raft

	mu      sync.Mutex
	waiting []chan error
	running bool
}

// verify returns nil once a quorum has confirmed this node's leadership in a
// round that began after the call.
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
		err := v.raft.VerifyLeader().Error()
		for _, ch := range batch {
			ch <- err
		}
	}
}
