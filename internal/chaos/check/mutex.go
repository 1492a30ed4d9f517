package check

import (
	"fmt"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// MutualExclusion checks that no two holders of a persistent lock (different
// owners, or one owner under different tokens) have overlapping windows
// (windows.go): stretches during which each could prove it held the lock.
// Ephemeral locks are exempt: the contract lets a leader change drop them,
// after which another owner may take the lock while the first still trusts
// its lease.
func MutualExclusion(h chaos.History, opt Options) []Anomaly {
	ops := sanitize(h.Filter(func(o chaos.Op) bool { return o.Durability == chaos.Persistent }))
	keys, groups := chaos.ByLock(ops)
	var out []Anomaly
	for _, k := range keys {
		ws := windows(groups[k], opt.LeaseSlack)
		// Sorted by Start: each window is compared with the later-starting
		// ones that begin before it ends.
		for i, a := range ws {
			for _, b := range ws[i+1:] {
				if b.Start >= a.End {
					break
				}
				if a.Owner == b.Owner && a.Token == b.Token {
					continue
				}
				out = append(out, Anomaly{
					Checker: NameMutex,
					Lock:    k,
					Message: fmt.Sprintf("two holders at once for %v: %s; %s", min(a.End, b.End)-b.Start, a, b),
					Ops:     windowOps(a, b),
				})
			}
		}
	}
	return out
}

// windowOps lists the ops that opened and closed two windows, without
// repeats.
func windowOps(ws ...window) []chaos.Op {
	seen := make(map[int]bool)
	var out []chaos.Op
	for _, w := range ws {
		for _, o := range []chaos.Op{w.Grant, w.Bound} {
			if !seen[o.ID] {
				seen[o.ID] = true
				out = append(out, o)
			}
		}
	}
	return out
}
