package workload

import (
	"errors"
	"fmt"
	"sync"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// ErrStaleToken is the fenced store's refusal of a write whose token is
// older than one it has already accepted for the resource.
var ErrStaleToken = errors.New("stale fencing token")

// FencedStore stands for the resource a lock protects (a database row, a
// file): it accepts a write only with a fencing token at least as new as
// the newest it has seen, the way the contract asks a real store to. A
// holder that lost its lock without knowing (an expired lease, a lost
// ephemeral lock, a long pause) is turned away here.
//
// Two owners writing with the same token is a token reused by the lock
// service: the store records it as a violation.
type FencedStore struct {
	mu         sync.Mutex
	newest     map[chaos.LockKey]fenced
	accepted   int
	stale      int
	violations []string
}

type fenced struct {
	token int64
	owner string
}

// NewFencedStore returns an empty store.
func NewFencedStore() *FencedStore {
	return &FencedStore{newest: map[chaos.LockKey]fenced{}}
}

// Write is a write by owner under token to the thing lock k protects.
func (s *FencedStore) Write(k chaos.LockKey, owner string, token int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, seen := s.newest[k]
	switch {
	case seen && token < cur.token:
		s.stale++
		return fmt.Errorf("%s: token %d < %d: %w", k, token, cur.token, ErrStaleToken)
	case seen && token == cur.token && owner != cur.owner:
		s.violations = append(s.violations,
			fmt.Sprintf("%s: token %d used by %q and by %q", k, token, cur.owner, owner))
		return fmt.Errorf("%s: token %d belongs to %q: %w", k, token, cur.owner, ErrStaleToken)
	}
	s.newest[k] = fenced{token: token, owner: owner}
	s.accepted++
	return nil
}

// StoreStats counts what the store saw.
type StoreStats struct {
	// Accepted and Stale count writes let through and turned away.
	Accepted, Stale int
	// Violations describe tokens the lock service handed to two owners.
	Violations []string
}

// Stats returns the counts so far.
func (s *FencedStore) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StoreStats{Accepted: s.accepted, Stale: s.stale, Violations: append([]string(nil), s.violations...)}
}
