package check

import (
	"fmt"
	"sort"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// A window is a stretch of time during which a client can prove, from its
// own replies and clock alone, that it holds a persistent lock: [Start, End).
//
// Why these bounds are the conservative, client-side ones:
//
//   - Start is the Complete of the earliest Locked reply with this token.
//     The grant took effect at its linearization point, which is no later
//     than the reply; before the reply the client did not know it held the
//     lock, and a concurrent holder then is not a violation it could see.
//
//   - The lease part of End is Invoke+TTL of the op that set the lease
//     (lease.go): the server started the lease no earlier than the
//     request's Invoke and cannot end it before TTL has passed. A re-lock by
//     the same owner keeps the lease unchanged, so when several Locked
//     replies carry the token (retries), any of them, or an earlier try-lock
//     whose reply was lost, may be the one that set it: the smallest bound
//     among them is used. A definite Extended reply moves the bound to its
//     own Invoke+TTL, but only if it arrived before the current bound ran
//     out: a well-behaved client stops using a lock whose lease it can no
//     longer vouch for, and an extension learned later does not make the
//     intervening time provably held. An extend may also shorten the lease,
//     so any other extend of this owner that may have been applied after
//     the one that set the bound (concurrent with it, or with an unknown
//     outcome) caps End at its own Invoke+TTL.
//
//   - The release part of End is the Invoke of an unlock by the owner or a
//     force-unlock by anyone that may have taken effect after the grant:
//     from its Invoke on, the release may already have happened.
//
// Everything that would lengthen a window is ignored (leases lengthened by
// leader changes, a later stamp than Invoke), so a window only contains
// instants at which the lock surely belonged to this owner and token; two
// windows of different holders can therefore never overlap in a correct
// run.
type window struct {
	Lock       chaos.LockKey
	Owner      string
	Token      int64
	Start, End time.Duration
	// Grant is the Locked reply that opened the window; Bound the op whose
	// Invoke(+TTL) closed it; Why says how.
	Grant chaos.Op
	Bound chaos.Op
	Why   string
}

func (w window) String() string {
	return fmt.Sprintf("%s f%d held [%v, %v) (%s)", w.Owner, w.Token, w.Start, w.End, w.Why)
}

// windows computes the non-empty windows of one lock's ops (sanitized, one
// (resource, durability)), sorted by Start.
func windows(ops []chaos.Op, slack time.Duration) []window {
	type grantKey struct {
		owner string
		token int64
	}
	groups := make(map[grantKey][]chaos.Op)
	var order []grantKey
	for _, o := range ops {
		if o.Kind == chaos.TryLock && o.Is(chaos.TypeLocked) {
			k := grantKey{o.Owner, o.Token}
			if groups[k] == nil {
				order = append(order, k)
			}
			groups[k] = append(groups[k], o)
		}
	}
	var out []window
	for _, k := range order {
		if w, ok := holdWindow(ops, groups[k], k.owner, k.token, slack); ok {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// holdWindow computes the window of one (owner, token) from its Locked
// replies, or false if it is empty.
func holdWindow(ops, grants []chaos.Op, owner string, token int64, slack time.Duration) (window, bool) {
	w := window{Lock: grants[0].Key(), Owner: owner, Token: token, Start: infinity}
	for _, g := range grants {
		if g.Complete < w.Start {
			w.Start, w.Grant = g.Complete, g
		}
	}
	// The lease: the smallest bound among the try-locks that may have been
	// the fresh grant (invoked no later than Start).
	w.End = infinity
	earliest := infinity // the earliest invoke among them
	for _, o := range ops {
		if o.Kind != chaos.TryLock || o.Owner != owner || o.Invoke > w.Start {
			continue
		}
		if o.Definite && !(o.Type == chaos.TypeLocked && o.Token == token) {
			continue
		}
		earliest = min(earliest, o.Invoke)
		if f := leaseFloor(o, slack); f < w.End {
			w.End, w.Bound, w.Why = f, o, fmt.Sprintf("lease of #%d", o.ID)
		}
	}
	// Extensions the client learned of in time, in the order it did.
	var exts []chaos.Op
	for _, o := range ops {
		if o.Kind == chaos.Extend && o.Owner == owner && o.Is(chaos.TypeExtended) && o.Token == token {
			exts = append(exts, o)
		}
	}
	sort.Slice(exts, func(i, j int) bool { return exts[i].Complete < exts[j].Complete })
	setter := -1 // ID of the extend that set the bound, -1 for the grant
	setAt := earliest
	for _, e := range exts {
		if e.Complete >= w.End {
			break
		}
		w.End, w.Bound, w.Why = leaseFloor(e, slack), e, fmt.Sprintf("extended by #%d", e.ID)
		setter, setAt = e.ID, e.Invoke
	}
	// Any other extend of this owner that may have landed after the one
	// that set the bound may have shortened the lease. Landing after it,
	// it started its lease no earlier than that one's Invoke either.
	for _, o := range ops {
		if o.Kind != chaos.Extend || o.Owner != owner || o.ID == setter {
			continue
		}
		if o.Definite && !(o.Type == chaos.TypeExtended && o.Token == token) {
			continue
		}
		if o.Invoke < w.End && end(o) > setAt {
			late := o
			late.Invoke = max(o.Invoke, setAt)
			if f := leaseFloor(late, slack); f < w.End {
				w.End, w.Bound, w.Why = f, o, fmt.Sprintf("extend #%d may have shortened the lease", o.ID)
			}
		}
	}
	// Releases that may have taken effect after the grant. (One with an
	// unknown outcome, invoked before the grant, leaves no window at all:
	// it may land at any moment. A workload keeps its windows by using a
	// fresh owner for each acquisition.)
	for _, o := range ops {
		release := (o.Kind == chaos.Unlock && o.Owner == owner) || o.Kind == chaos.ForceUnlock
		if !release || (o.Definite && o.Type != chaos.TypeUnlocked) {
			continue
		}
		if o.Invoke < w.End && end(o) > earliest {
			w.End, w.Bound, w.Why = o.Invoke, o, fmt.Sprintf("%s #%d invoked", o.Kind, o.ID)
		}
	}
	return w, w.End > w.Start
}
