package check

import (
	"fmt"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// DurableAfterRestart checks that a full-cluster restart lost nothing that
// was acknowledged. before is the history up to the moment every node was
// killed (ops in flight then are indefinite); after holds the reads made once
// the cluster was back (normally one definite get-info per resource), on the
// same clock.
//
// The rules are the model's (model.go), applied to the persistent ops of
// each resource followed by its reads: an acknowledged grant or extend whose
// lease surely still runs (read completed before Invoke+TTL) must be read
// back with its owner and token, since downtime only lengthens leases; one
// whose sure end has passed may have expired; an acknowledged unlock with no
// later op that may have taken effect must leave the lock absent; and an op
// with an unknown outcome may or may not have survived. When a resource
// fails, the acknowledged writes that could have been the last are named.
//
// A resource with acknowledged writes but no definite read afterwards is
// reported as unknown: the harness did not look.
func DurableAfterRestart(before chaos.History, after []chaos.Op, opt Options) []Anomaly {
	start := time.Now()
	persistent := func(o chaos.Op) bool {
		return o.Durability == chaos.Persistent && (o.Definite || o.Kind != chaos.GetInfo)
	}
	pre := sanitize(before.Filter(persistent))
	post := sanitize(chaos.History{Ops: after}.Filter(persistent))
	_, preBy := chaos.ByLock(pre)
	_, postBy := chaos.ByLock(post)
	keys, _ := chaos.ByLock(append(append([]chaos.Op(nil), pre...), post...))

	var deadline time.Time
	if opt.Timeout > 0 {
		deadline = start.Add(opt.Timeout)
	}
	found := make([]*Anomaly, len(keys))
	model := lockModel()
	eachLock(len(keys), func(i int) {
		found[i] = durableLock(model, keys[i], preBy[keys[i]], postBy[keys[i]], deadline, opt)
	})
	var out []Anomaly
	for _, a := range found {
		if a != nil {
			out = append(out, *a)
		}
	}
	return out
}

// durableLock checks one lock: its writes before the restart, then its
// reads after. nil means it passed.
func durableLock(model porcupine.Model, k chaos.LockKey, pre, reads []chaos.Op, deadline time.Time, opt Options) *Anomaly {
	if len(reads) == 0 {
		if acked := acknowledgedWrites(pre); len(acked) > 0 {
			return &Anomaly{
				Checker: NameDurability, Lock: k, Unknown: true,
				Message: "not verified: no read after the restart", Ops: lastWrites(acked),
			}
		}
		return nil
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return &Anomaly{Checker: NameDurability, Lock: k, Unknown: true, Message: "not checked: the timeout ran out first"}
	}
	all := append(append([]chaos.Op(nil), pre...), reads...)
	switch res, _ := search(model, all, opt.LeaseSlack, deadline); res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return &Anomaly{Checker: NameDurability, Lock: k, Unknown: true,
			Message: fmt.Sprintf("not decided within the %v timeout (%d ops)", opt.Timeout, len(all))}
	}
	a := lossAnomaly(k, pre, reads, opt)
	return &a
}

// acknowledgedWrites are the definite replies that changed a lock: grants
// (fresh or re-lock), extends and releases.
func acknowledgedWrites(ops []chaos.Op) []chaos.Op {
	var out []chaos.Op
	for _, o := range ops {
		switch {
		case o.Kind == chaos.TryLock && o.Is(chaos.TypeLocked),
			o.Kind == chaos.Extend && o.Is(chaos.TypeExtended),
			(o.Kind == chaos.Unlock || o.Kind == chaos.ForceUnlock) && o.Is(chaos.TypeUnlocked):
			out = append(out, o)
		}
	}
	return out
}

// lastWrites are the acknowledged writes that may have been applied last:
// no other acknowledged write was invoked after they completed.
func lastWrites(acked []chaos.Op) []chaos.Op {
	var latestInvoke time.Duration
	for _, o := range acked {
		latestInvoke = max(latestInvoke, o.Invoke)
	}
	var out []chaos.Op
	for _, o := range acked {
		if o.Complete >= latestInvoke {
			out = append(out, o)
		}
	}
	return out
}

// lossAnomaly explains a resource whose reads after the restart no order of
// its history explains. If the history before the kill already fails on
// its own, that is said instead: the fault is not (only) the restart's.
func lossAnomaly(k chaos.LockKey, pre, reads []chaos.Op, opt Options) Anomaly {
	a := Anomaly{Checker: NameDurability, Lock: k}
	if len(pre) > 0 && porcupine.CheckOperationsTimeout(lockModel(), toPorcupine(pre, opt.LeaseSlack), opt.Timeout) == porcupine.Illegal {
		a.Message = "the history before the restart is already not linearizable (see the linearizability checker)"
		a.Ops = reads
		return a
	}
	last := lastWrites(acknowledgedWrites(pre))
	var read chaos.Op
	for _, r := range reads {
		if r.Definite && r.Kind == chaos.GetInfo {
			read = r
			break
		}
	}
	var claims []string
	for _, w := range last {
		switch w.Type {
		case chaos.TypeUnlocked:
			claims = append(claims, fmt.Sprintf("#%d released it", w.ID))
		default:
			sure := leaseFloor(w, opt.LeaseSlack)
			if w.Kind == chaos.TryLock {
				sure = grantFloor(pre, w, opt.LeaseSlack)
			}
			claims = append(claims, fmt.Sprintf("#%d left it with %s f%d, surely until %v", w.ID, w.Owner, w.Token, sure))
		}
	}
	seen := "the reads after the restart"
	if read.Kind == chaos.GetInfo {
		seen = "the read after the restart found " + strings.ToLower(read.Outcome())
	}
	what := "acknowledged effect lost"
	switch {
	case len(last) == 0:
		what = "a state nothing acknowledged can explain"
	case read.Kind == chaos.GetInfo && read.Type == chaos.TypeLockDoesNotExist:
		what = "acknowledged lock lost"
	case read.Kind == chaos.GetInfo && read.Type == chaos.TypeGot && allReleases(last):
		what = "acknowledged unlock lost"
	}
	a.Message = fmt.Sprintf("%s: %s; last acknowledged: %s", what, seen, strings.Join(claims, "; "))
	if len(last) == 0 {
		a.Message = fmt.Sprintf("%s: %s", what, seen)
	}
	a.Ops = append(append([]chaos.Op(nil), last...), reads...)
	return a
}

func allReleases(ops []chaos.Op) bool {
	for _, o := range ops {
		if o.Type != chaos.TypeUnlocked {
			return false
		}
	}
	return true
}

// grantFloor is the sure end of the lease behind a Locked reply: a re-lock
// keeps an earlier grant's lease, so the smallest bound among the try-locks
// of that owner which may have set it (as in windows.go).
func grantFloor(ops []chaos.Op, g chaos.Op, slack time.Duration) time.Duration {
	f := leaseFloor(g, slack)
	for _, o := range ops {
		if o.Kind == chaos.TryLock && o.Owner == g.Owner && o.Invoke <= g.Complete &&
			(!o.Definite || (o.Type == chaos.TypeLocked && o.Token == g.Token)) {
			f = min(f, leaseFloor(o, slack))
		}
	}
	return f
}
