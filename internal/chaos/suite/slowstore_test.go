package suite

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// slowStore delays every write to a Raft log store by a delay that can be
// changed while it runs: a slow disk for the slow-disk nemesis.
type slowStore struct {
	raft.LogStore
	delay *atomic.Int64 // nanoseconds
}

func (s slowStore) pause() {
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
}

// IsMonotonic passes on the wrapped store's: Raft must know that a
// raft-wal log has to stay contiguous.
func (s slowStore) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (s slowStore) StoreLog(l *raft.Log) error {
	s.pause()
	return s.LogStore.StoreLog(l)
}

func (s slowStore) StoreLogs(ls []*raft.Log) error {
	s.pause()
	return s.LogStore.StoreLogs(ls)
}
