// Package fsm is Kahuna's lock state machine: a deterministic table of locks
// (owner, lease expiry, fencing token) that applies batches of commands and
// can be snapshotted and restored. It knows nothing of Raft or HTTP; time
// comes only from the commands it applies.
package fsm

import (
	"sync"
)

// Machine is the replicated lock state of one partition. Apply is called by
// one goroutine at a time (Raft's FSM goroutine); reads may run concurrently.
type Machine struct {
	mu sync.RWMutex
	st state
}

// state is everything a snapshot must carry.
type state struct {
	table *Table
	// fence is the last persistent fencing token issued. One counter per
	// partition makes tokens grow for every resource in it without keeping
	// tombstones for released locks.
	fence uint64
	// ephemeralFence is the last token reserved for ephemeral locks.
	ephemeralFence uint64
	// offset is wall time minus lease time, in milliseconds. Promote moves
	// it so that the lease clock resumes where the last leader left it.
	offset int64
	// lease is the lease-clock time of the last applied command; it never
	// goes backwards.
	lease int64
}

// New returns an empty machine.
func New() *Machine {
	return &Machine{st: state{table: NewTable()}}
}

// instant converts a leader's wall time to a point on the lease clock,
// which never runs backwards.
func (s *state) instant(wall int64) Instant {
	lease := max(s.lease, wall-s.offset)
	return Instant{Lease: lease, Wall: lease + s.offset}
}

// Apply runs a batch and returns one result per command, in order.
func (m *Machine) Apply(b Batch) []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Result, len(b.Commands))
	for i := range b.Commands {
		out[i] = m.st.apply(b.Now, &b.Commands[i])
	}
	return out
}

func (s *state) apply(wall int64, c *Command) Result {
	if c.Op == OpPromote {
		// A new leader continues the lease clock from the last time the log
		// recorded, whatever its own wall clock says. A clock ahead of the
		// old leader's, or time spent without a leader, therefore lengthens
		// leases instead of shortening them. Periodic expire commands keep
		// the recorded time close to real time, bounding the lengthening.
		s.offset = wall - s.lease
		return Result{Outcome: Done}
	}
	now := s.instant(wall)
	s.lease = now.Lease
	switch c.Op {
	case OpTryLock, OpExtend, OpUnlock, OpForceUnlock:
		if !c.Valid() {
			return Result{Outcome: Invalid}
		}
	}
	switch c.Op {
	case OpTryLock:
		return s.table.TryLock(now, c.Resource, c.Owner, c.TTL, s.nextToken)
	case OpExtend:
		return s.table.Extend(now, c.Resource, c.Owner, c.TTL)
	case OpUnlock:
		return s.table.Unlock(now, c.Resource, c.Owner)
	case OpForceUnlock:
		return s.table.ForceUnlock(now, c.Resource)
	case OpExpire:
		if c.TTL < 0 {
			return Result{Outcome: Invalid}
		}
		return Result{Outcome: Done, Count: s.table.Expire(now, c.TTL, c.Limit)}
	case OpReserveTokens:
		if c.Limit == 0 || c.Limit > 1<<40 {
			return Result{Outcome: Invalid}
		}
		first := s.ephemeralFence + 1
		s.ephemeralFence += c.Limit
		return Result{Outcome: Done, Token: first, Count: c.Limit}
	default:
		return Result{Outcome: Invalid}
	}
}

func (s *state) nextToken() (uint64, bool) {
	s.fence++
	return s.fence, true
}

// Get reads resource at the given leader wall time.
//
// unlogged reports that the answer relies on time the log has not recorded:
// the lock has expired by wall, but not by the last time a command carried
// into the log. A new leader resumes the lease clock from the log, so it
// would see that lock live again; before a reader acts on such an answer,
// the time must be logged (see partition.Group.Get).
func (m *Machine) Get(wall int64, resource string) (r Result, unlogged bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r = m.st.table.Get(m.st.instant(wall), resource)
	if r.Outcome == NotFound {
		unlogged = m.st.table.Get(m.st.logged(), resource).Outcome == Got
	}
	return r, unlogged
}

// List reads up to limit live locks in resource order; see Table.List.
// unlogged is as for Get: some lock it leaves out has expired only by time
// the log has not recorded.
func (m *Machine) List(wall int64, prefix, after string, limit int) (infos []Info, unlogged bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	infos = m.st.table.List(m.st.instant(wall), prefix, after, limit)
	// Everything live now was live at the logged time (the lease clock only
	// moves forward); a lock live then, missing now, and within the range
	// this page covers, was left out on unlogged time.
	shown := make(map[string]bool, len(infos))
	for _, in := range infos {
		shown[in.Resource] = true
	}
	full := len(infos) == limit
	for _, l := range m.st.table.List(m.st.logged(), prefix, after, limit) {
		if full && l.Resource > infos[len(infos)-1].Resource {
			break
		}
		if !shown[l.Resource] {
			return infos, true
		}
	}
	return infos, false
}

// logged is the last time the log recorded, as an Instant.
func (s *state) logged() Instant { return Instant{Lease: s.lease, Wall: s.lease + s.offset} }

// Len is the number of entries held, expired ones not yet collected included.
func (m *Machine) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.st.table.Len()
}

// Expirable reports whether an expire command with this grace would drop
// anything at the given leader wall time.
func (m *Machine) Expirable(wall, grace int64) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.st.table.Expirable(m.st.instant(wall), grace)
}

// Counters is a view of the machine's monotonic counters, for status pages
// and tests.
type Counters struct {
	Fence          uint64
	EphemeralFence uint64
	Offset         int64
	Lease          int64
}

// Counters returns the machine's counters.
func (m *Machine) Counters() Counters {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return Counters{
		Fence:          m.st.fence,
		EphemeralFence: m.st.ephemeralFence,
		Offset:         m.st.offset,
		Lease:          m.st.lease,
	}
}
