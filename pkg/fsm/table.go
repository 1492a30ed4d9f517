package fsm

import (
	"strings"

	"github.com/google/btree"
)

// Instant is a point in time as a lock table sees it.
type Instant struct {
	// Lease is milliseconds on the lease clock; expiry compares against it.
	Lease int64
	// Wall is the matching unix-milliseconds time, used only for display.
	Wall int64
}

// Lock is one table entry. Entries are values: an update stores a new value,
// so a cloned tree (a snapshot) never sees later changes.
type Lock struct {
	Resource string
	Owner    string
	Token    uint64
	// AcquiredAt is the wall time of the grant, unix milliseconds.
	AcquiredAt int64
	// Expires is on the lease clock.
	Expires int64
}

// Info is a live lock as reads and lists report it.
type Info struct {
	Resource   string
	Owner      string
	Token      uint64
	AcquiredAt int64
	ExpiresAt  int64
	ExpiresIn  int64
}

// TokenSource issues the next fencing token; false means none is available.
type TokenSource func() (uint64, bool)

type expiryKey struct {
	at       int64
	resource string
}

// btreeDegree trades node size against depth; 32 keeps lookups at a few
// levels for millions of locks.
const btreeDegree = 32

// Table is an ordered lock table with an expiry index. It is not safe for
// concurrent use and knows nothing about Raft or clocks: every operation is
// given its time. The persistent state machine and the ephemeral store both
// build on it.
type Table struct {
	locks  *btree.BTreeG[Lock]
	expiry *btree.BTreeG[expiryKey]
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{
		locks:  btree.NewG(btreeDegree, func(a, b Lock) bool { return a.Resource < b.Resource }),
		expiry: btree.NewG(btreeDegree, lessExpiry),
	}
}

func lessExpiry(a, b expiryKey) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.resource < b.resource
}

// Len is the number of entries, expired ones not yet collected included.
func (t *Table) Len() int { return t.locks.Len() }

func (t *Table) get(resource string) (Lock, bool) {
	return t.locks.Get(Lock{Resource: resource})
}

func (t *Table) put(l Lock) {
	if old, ok := t.locks.ReplaceOrInsert(l); ok {
		t.expiry.Delete(expiryKey{old.Expires, old.Resource})
	}
	t.expiry.ReplaceOrInsert(expiryKey{l.Expires, l.Resource})
}

func (t *Table) remove(l Lock) {
	t.locks.Delete(l)
	t.expiry.Delete(expiryKey{l.Expires, l.Resource})
}

func result(o Outcome, l Lock, now Instant) Result {
	return Result{
		Outcome:    o,
		Token:      l.Token,
		Owner:      l.Owner,
		AcquiredAt: l.AcquiredAt,
		ExpiresAt:  now.Wall + (l.Expires - now.Lease),
		ExpiresIn:  l.Expires - now.Lease,
	}
}

func live(l Lock, now Instant) bool { return l.Expires > now.Lease }

// TryLock grants resource to owner for ttl milliseconds. A free or expired
// lock gets a new token from next; the owner's own live lock is granted again
// unchanged, so a retried request is harmless.
func (t *Table) TryLock(now Instant, resource, owner string, ttl int64, next TokenSource) Result {
	if l, ok := t.get(resource); ok && live(l, now) {
		if l.Owner == owner {
			return result(Locked, l, now)
		}
		return result(Busy, l, now)
	}
	token, ok := next()
	if !ok {
		return Result{Outcome: NoTokens}
	}
	l := Lock{
		Resource:   resource,
		Owner:      owner,
		Token:      token,
		AcquiredAt: now.Wall,
		Expires:    now.Lease + ttl,
	}
	t.put(l)
	r := result(Locked, l, now)
	r.Fresh = true
	return r
}

// Extend moves the owner's live lease to now+ttl, keeping its token.
func (t *Table) Extend(now Instant, resource, owner string, ttl int64) Result {
	l, ok := t.get(resource)
	if !ok || !live(l, now) {
		return Result{Outcome: NotFound}
	}
	if l.Owner != owner {
		return Result{Outcome: NotOwner, Owner: l.Owner}
	}
	l.Expires = now.Lease + ttl
	t.put(l)
	return result(Extended, l, now)
}

// Unlock releases the owner's lock. An expired entry the owner still holds
// (nobody took it since) is released too.
func (t *Table) Unlock(now Instant, resource, owner string) Result {
	l, ok := t.get(resource)
	if !ok {
		return Result{Outcome: NotFound}
	}
	if l.Owner != owner {
		if !live(l, now) {
			return Result{Outcome: NotFound}
		}
		return Result{Outcome: NotOwner, Owner: l.Owner}
	}
	t.remove(l)
	return result(Unlocked, l, now)
}

// ForceUnlock releases a live lock whoever holds it. An expired entry is
// dropped and reported as not found, because nobody held it.
func (t *Table) ForceUnlock(now Instant, resource string) Result {
	l, ok := t.get(resource)
	if !ok {
		return Result{Outcome: NotFound}
	}
	t.remove(l)
	if !live(l, now) {
		return Result{Outcome: NotFound}
	}
	return result(Unlocked, l, now)
}

// Get reports a live lock.
func (t *Table) Get(now Instant, resource string) Result {
	l, ok := t.get(resource)
	if !ok || !live(l, now) {
		return Result{Outcome: NotFound}
	}
	return result(Got, l, now)
}

// Expire drops at most limit entries that expired at least grace ms before
// now, oldest first, and returns how many it dropped.
func (t *Table) Expire(now Instant, grace int64, limit uint64) uint64 {
	var doomed []expiryKey
	t.expiry.Ascend(func(k expiryKey) bool {
		if uint64(len(doomed)) >= limit || k.at+grace > now.Lease {
			return false
		}
		doomed = append(doomed, k)
		return true
	})
	for _, k := range doomed {
		t.expiry.Delete(k)
		t.locks.Delete(Lock{Resource: k.resource})
	}
	return uint64(len(doomed))
}

// Expirable reports whether Expire(now, grace, …) would drop anything.
func (t *Table) Expirable(now Instant, grace int64) bool {
	k, ok := t.expiry.Min()
	return ok && k.at+grace <= now.Lease
}

// List returns up to limit live locks whose resource starts with prefix and
// sorts after the resource after, in resource order.
func (t *Table) List(now Instant, prefix, after string, limit int) []Info {
	var out []Info
	start := prefix
	if after >= start {
		// The smallest string greater than after.
		start = after + "\x00"
	}
	t.locks.AscendGreaterOrEqual(Lock{Resource: start}, func(l Lock) bool {
		if !strings.HasPrefix(l.Resource, prefix) || len(out) >= limit {
			return false
		}
		if live(l, now) {
			r := result(Got, l, now)
			out = append(out, Info{
				Resource:   l.Resource,
				Owner:      l.Owner,
				Token:      l.Token,
				AcquiredAt: l.AcquiredAt,
				ExpiresAt:  r.ExpiresAt,
				ExpiresIn:  r.ExpiresIn,
			})
		}
		return true
	})
	return out
}

// Ascend calls fn for every entry, expired ones included, in resource order
// until fn returns false.
func (t *Table) Ascend(fn func(Lock) bool) { t.locks.Ascend(fn) }

// Clone returns a copy that later changes to t do not affect. It is cheap:
// the trees are copied lazily.
func (t *Table) Clone() *Table {
	return &Table{locks: t.locks.Clone(), expiry: t.expiry.Clone()}
}
