package check

import (
	"fmt"
	"sort"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// FencingTokens checks the contract's token rules on each lock, persistent
// and ephemeral separately (they are separate namespaces):
//
//   - real-time order: if one Locked reply completed before another was
//     invoked, the later one's token is not smaller. (Equal tokens are a
//     re-lock of the same grant; a different token is a new grant, which
//     must be larger than every earlier one, re-locks included, because a
//     re-lock returns the token of a grant made before it.)
//   - a token belongs to one owner: no Locked, Extended or Got reply shows
//     it with another.
//   - persistent only: a re-lock by an owner that surely holds the lock
//     (inside its window, windows.go) returns the token it holds. Ephemeral
//     locks may vanish on a leader change, after which a new token is
//     right, so there is no window to hold them to.
func FencingTokens(h chaos.History, opt Options) []Anomaly {
	keys, groups := chaos.ByLock(sanitize(h.Ops))
	var out []Anomaly
	for _, k := range keys {
		ops := groups[k]
		out = append(out, tokenOrder(k, ops)...)
		out = append(out, tokenOwners(k, ops)...)
		if k.Durability == chaos.Persistent {
			out = append(out, relockTokens(k, ops, opt)...)
		}
	}
	return out
}

// tokenOrder finds Locked replies whose token is smaller than that of a
// Locked reply that completed before they were invoked.
func tokenOrder(k chaos.LockKey, ops []chaos.Op) []Anomaly {
	var grants []chaos.Op
	for _, o := range ops {
		if o.Kind == chaos.TryLock && o.Is(chaos.TypeLocked) {
			grants = append(grants, o)
		}
	}
	byComplete := append([]chaos.Op(nil), grants...)
	sort.SliceStable(byComplete, func(i, j int) bool { return byComplete[i].Complete < byComplete[j].Complete })
	byInvoke := append([]chaos.Op(nil), grants...)
	sort.SliceStable(byInvoke, func(i, j int) bool { return byInvoke[i].Invoke < byInvoke[j].Invoke })

	var out []Anomaly
	var top chaos.Op // the largest token among the grants completed so far
	have := false
	next := 0
	for _, b := range byInvoke {
		for next < len(byComplete) && byComplete[next].Complete < b.Invoke {
			if a := byComplete[next]; !have || a.Token > top.Token {
				top, have = a, true
			}
			next++
		}
		if have && top.Token > b.Token {
			out = append(out, Anomaly{
				Checker: NameFencing,
				Lock:    k,
				Message: fmt.Sprintf("token went backwards: f%d granted after f%d had been", b.Token, top.Token),
				Ops:     []chaos.Op{top, b},
			})
		}
	}
	return out
}

// tokenOwners finds a token shown with two different owners.
func tokenOwners(k chaos.LockKey, ops []chaos.Op) []Anomaly {
	first := make(map[int64]chaos.Op)
	reported := make(map[int64]bool)
	var out []Anomaly
	for _, o := range ops {
		var owner string
		switch {
		case o.Kind == chaos.TryLock && o.Is(chaos.TypeLocked), o.Kind == chaos.Extend && o.Is(chaos.TypeExtended):
			owner = o.Owner
		case o.Kind == chaos.GetInfo && o.Is(chaos.TypeGot):
			owner = o.Holder
		default:
			continue
		}
		f, seen := first[o.Token]
		if !seen {
			first[o.Token] = o
			continue
		}
		if fOwner := ownerShown(f); fOwner != owner && !reported[o.Token] {
			reported[o.Token] = true
			out = append(out, Anomaly{
				Checker: NameFencing,
				Lock:    k,
				Message: fmt.Sprintf("token f%d shown with two owners: %s and %s", o.Token, fOwner, owner),
				Ops:     []chaos.Op{f, o},
			})
		}
	}
	return out
}

func ownerShown(o chaos.Op) string {
	if o.Kind == chaos.GetInfo {
		return o.Holder
	}
	return o.Owner
}

// relockTokens finds a Locked reply to an owner whose whole interval lies
// inside one of its own windows but which carries another token: the lock
// surely was that owner's live lock, so the grant had to be the idempotent
// re-lock.
func relockTokens(k chaos.LockKey, ops []chaos.Op, opt Options) []Anomaly {
	ws := windows(ops, opt.LeaseSlack)
	var out []Anomaly
	for _, o := range ops {
		if o.Kind != chaos.TryLock || !o.Is(chaos.TypeLocked) {
			continue
		}
		for _, w := range ws {
			if w.Owner == o.Owner && w.Token != o.Token && w.Start <= o.Invoke && o.Complete < w.End {
				out = append(out, Anomaly{
					Checker: NameFencing,
					Lock:    k,
					Message: fmt.Sprintf("re-lock by the holder returned f%d, not the token it held: %s", o.Token, w),
					Ops:     []chaos.Op{w.Grant, o},
				})
				break
			}
		}
	}
	return out
}
