package partition

import (
	"sync"

	"github.com/kahuna-go/kahuna/pkg/fsm"
)

// ephemeralStore holds one leadership term's ephemeral locks. It is never
// written to disk; a new term starts with an empty store. Its fencing tokens
// come from blocks reserved through Raft, so they keep growing across
// leaders and restarts even though the locks themselves are forgotten.
type ephemeralStore struct {
	mu    sync.Mutex
	table *fsm.Table
	// next..end is the block being handed out; spare is the block reserved
	// ahead of need, empty when spareEnd == 0.
	next, end           uint64
	spareNext, spareEnd uint64
	refilling           bool
	blockSize           uint64
	// refilled is notified whenever a reservation finishes, well or not.
	refilled *broadcast
}

func newEphemeralStore(blockSize uint64) *ephemeralStore {
	return &ephemeralStore{table: fsm.NewTable(), blockSize: blockSize, refilled: newBroadcast()}
}

// addBlock hands the store a freshly reserved block [first, first+n).
func (e *ephemeralStore) addBlock(first, n uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.refilled.Notify()
	e.refilling = false
	if e.next > e.end || e.end == 0 {
		e.next, e.end = first, first+n-1
		return
	}
	e.spareNext, e.spareEnd = first, first+n-1
}

// refillFailed lets a later tick try again.
func (e *ephemeralStore) refillFailed() {
	e.mu.Lock()
	e.refilling = false
	e.mu.Unlock()
	e.refilled.Notify()
}

// needsRefill reports whether a reservation should start now, and marks one
// as started.
func (e *ephemeralStore) needsRefill() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.needsRefillLocked()
}

// needsRefillLocked is needsRefill with mu held.
func (e *ephemeralStore) needsRefillLocked() bool {
	if e.refilling || e.spareEnd != 0 {
		return false
	}
	left := uint64(0)
	if e.end >= e.next {
		left = e.end - e.next + 1
	}
	if left > e.blockSize/2 {
		return false
	}
	e.refilling = true
	return true
}

// token is the TokenSource of the ephemeral table; mu is held.
func (e *ephemeralStore) token() (uint64, bool) {
	if e.next > e.end || e.end == 0 {
		if e.spareEnd == 0 {
			return 0, false
		}
		e.next, e.end = e.spareNext, e.spareEnd
		e.spareNext, e.spareEnd = 0, 0
	}
	t := e.next
	e.next++
	return t, true
}

// apply runs a lock command at leader time now (unix ms). refill reports
// that the token block is half used and the caller should reserve the next
// one, which keeps a busy leader from ever running dry.
func (e *ephemeralStore) apply(now int64, c fsm.Command) (res fsm.Result, refill bool) {
	at := fsm.Instant{Lease: now, Wall: now}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !c.Valid() {
		return fsm.Result{Outcome: fsm.Invalid}, false
	}
	switch c.Op {
	case fsm.OpTryLock:
		res = e.table.TryLock(at, c.Resource, c.Owner, c.TTL, e.token)
		return res, res.Fresh && e.needsRefillLocked()
	case fsm.OpExtend:
		return e.table.Extend(at, c.Resource, c.Owner, c.TTL), false
	case fsm.OpUnlock:
		return e.table.Unlock(at, c.Resource, c.Owner), false
	case fsm.OpForceUnlock:
		return e.table.ForceUnlock(at, c.Resource), false
	default:
		return fsm.Result{Outcome: fsm.Invalid}, false
	}
}

func (e *ephemeralStore) get(now int64, resource string) fsm.Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.table.Get(fsm.Instant{Lease: now, Wall: now}, resource)
}

func (e *ephemeralStore) list(now int64, prefix, after string, limit int) []fsm.Info {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.table.List(fsm.Instant{Lease: now, Wall: now}, prefix, after, limit)
}

// expire drops entries that expired at least grace ms ago.
func (e *ephemeralStore) expire(now, grace int64, limit uint64) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.table.Expire(fsm.Instant{Lease: now, Wall: now}, grace, limit)
}

func (e *ephemeralStore) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.table.Len()
}
