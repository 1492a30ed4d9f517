package check

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// LinearizabilityReport is the outcome of Linearizable.
type LinearizabilityReport struct {
	// Anomalies has one entry per lock that is not linearizable, and one
	// (with Unknown set) per lock the search could not decide in time.
	Anomalies []Anomaly
	// Locks checked, and how many were Ok, Illegal and Unknown.
	Locks, Ok, Illegal, Unknown int
	Duration                    time.Duration
	// failures keep what the visualization needs, for WriteArtifacts.
	failures []linFailure
}

type linFailure struct {
	lock   chaos.LockKey
	result porcupine.CheckResult
	info   porcupine.LinearizationInfo
}

// Passed is true when every lock was decided and linearizable.
func (r LinearizabilityReport) Passed() bool { return r.Illegal == 0 && r.Unknown == 0 }

// Linearizable checks the persistent locks of h against the lock model
// (model.go), one porcupine search per resource, in parallel. Replies that
// Replies objects to are treated as unknown outcomes here. Resources must
// have been fresh (no entry, no token issued) when the history began.
func Linearizable(h chaos.History, opt Options) LinearizabilityReport {
	start := time.Now()
	ops := sanitize(h.Filter(func(o chaos.Op) bool {
		// An unanswered read changed nothing and constrains nothing.
		return o.Durability == chaos.Persistent && (o.Definite || o.Kind != chaos.GetInfo)
	}))
	keys, groups := chaos.ByLock(ops)
	rep := LinearizabilityReport{Locks: len(keys)}

	type outcome struct {
		result porcupine.CheckResult
		info   porcupine.LinearizationInfo
		ran    bool
	}
	results := make([]outcome, len(keys))
	var deadline time.Time
	if opt.Timeout > 0 {
		deadline = start.Add(opt.Timeout)
	}
	model := lockModel()
	eachLock(len(keys), func(i int) {
		if !deadline.IsZero() && time.Until(deadline) <= 0 {
			results[i] = outcome{result: porcupine.Unknown}
			return
		}
		res, info := search(model, groups[keys[i]], opt.LeaseSlack, deadline)
		results[i] = outcome{result: res, info: info, ran: true}
	})

	for i, k := range keys {
		o := results[i]
		switch o.result {
		case porcupine.Ok:
			rep.Ok++
			continue
		case porcupine.Illegal:
			rep.Illegal++
			rep.Anomalies = append(rep.Anomalies, illegalAnomaly(model, k, groups[k], o.info, opt.LeaseSlack))
		default:
			rep.Unknown++
			n := 0
			for _, op := range groups[k] {
				if !op.Definite {
					n++
				}
			}
			msg := fmt.Sprintf("not decided within the %v timeout (%d ops, %d with unknown outcome)", opt.Timeout, len(groups[k]), n)
			if !o.ran {
				msg = fmt.Sprintf("not checked: the %v timeout ran out first (%d ops)", opt.Timeout, len(groups[k]))
			}
			rep.Anomalies = append(rep.Anomalies, Anomaly{Checker: NameLinearizability, Lock: k, Unknown: true, Message: msg})
		}
		if o.ran {
			rep.failures = append(rep.failures, linFailure{lock: k, result: o.result, info: o.info})
		}
	}
	rep.Duration = time.Since(start)
	return rep
}

// search decides one lock's history before the deadline (zero: none).
//
// Unknown releases and extensions rarely explain anything, but each one
// stays pending to the end of the history and multiplies the orders the
// search must try: a few dozen of them made it run out of time
// (docs/safety.md). Any of them can be placed after every other op, where
// its effect is observed by nobody (model.go: its step has a successor from
// every state, and it never returns), so if the history without some of
// them is linearizable, so is the whole. Which version porcupine decides
// quickly is hard to foresee — on real histories it was sometimes a
// reduced one, sometimes only the whole — and it decides in milliseconds
// or not in minutes. So search tries three versions in rounds of growing
// time slices: the whole history; without the unknown unlocks of owners never definitely
// granted the lock (the releases implied for waiters that left, and
// unlocks of grants nobody confirmed); and without every unknown extend,
// unlock and force-unlock. Ok from any version is the answer; Illegal
// counts only from the whole history.
func search(model porcupine.Model, ops []chaos.Op, slack time.Duration, deadline time.Time) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	whole := toPorcupine(ops, slack)
	if deadline.IsZero() {
		return porcupine.CheckOperationsVerbose(model, whole, 0)
	}
	granted := map[string]bool{}
	for _, o := range ops {
		if o.Definite && o.Kind == chaos.TryLock && o.Is(chaos.TypeLocked) {
			granted[o.Owner] = true
		}
	}
	versions := [][]porcupine.Operation{whole}
	for _, drop := range []func(chaos.Op) bool{
		func(o chaos.Op) bool { return !o.Definite && o.Kind == chaos.Unlock && !granted[o.Owner] },
		func(o chaos.Op) bool { return !o.Definite && o.Kind != chaos.TryLock },
	} {
		// Each version drops a superset of the one before, so the same
		// length means the same ops.
		reduced := slices.DeleteFunc(slices.Clone(ops), drop)
		if len(reduced) < len(versions[len(versions)-1]) {
			versions = append(versions, toPorcupine(reduced, slack))
		}
	}
	if len(versions) == 1 {
		return porcupine.CheckOperationsVerbose(model, whole, time.Until(deadline))
	}
	var (
		res  = porcupine.Unknown
		info porcupine.LinearizationInfo
	)
	// The whole history goes first in every round, so that an undecided
	// lock always has its partial linearizations for the artifacts.
	for slice := time.Second; ; slice *= 4 {
		for i := 0; i < len(versions); {
			left := time.Until(deadline)
			if left <= 0 {
				return res, info
			}
			r, in := porcupine.CheckOperationsVerbose(model, versions[i], min(slice, left))
			switch {
			case r == porcupine.Ok:
				return r, in
			case i == 0:
				res, info = r, in
				if r == porcupine.Illegal {
					return r, in
				}
			case r == porcupine.Illegal:
				// Without those ops it is not linearizable; only the
				// whole history can tell.
				versions = slices.Delete(versions, i, i+1)
				continue
			}
			i++
		}
	}
}

// toPorcupine turns one lock's ops into porcupine operations. Unknown
// outcomes never return: their Return is the end of time, so they may be
// linearized anywhere after their invocation, or (the model's "not applied"
// branch) have no effect at all.
func toPorcupine(ops []chaos.Op, slack time.Duration) []porcupine.Operation {
	out := make([]porcupine.Operation, len(ops))
	for i, o := range ops {
		ret := int64(math.MaxInt64)
		if o.Definite {
			ret = int64(o.Complete)
		}
		meta := o.Node
		if o.Err != "" {
			meta += " " + o.Err
		}
		out[i] = porcupine.Operation{
			ClientId: o.Client,
			Input: request{
				ID: o.ID, Kind: o.Kind, Owner: o.Owner, TTL: o.TTL, Wait: o.Wait,
				Invoke: o.Invoke, MinEnd: leaseFloor(o, slack),
			},
			Call:     int64(o.Invoke),
			Output:   reply{Definite: o.Definite, Type: o.Type, Token: o.Token, Holder: o.Holder, End: end(o)},
			Return:   ret,
			Metadata: meta,
		}
	}
	return out
}

// illegalAnomaly explains a failed search with porcupine's longest partial
// linearization: how far an explanation got, the state(s) it left the lock
// in, and the definite ops that could have come next, none of which fits.
func illegalAnomaly(model porcupine.Model, k chaos.LockKey, ops []chaos.Op, info porcupine.LinearizationInfo, slack time.Duration) Anomaly {
	a := Anomaly{Checker: NameLinearizability, Lock: k}
	var longest []int
	if parts := info.PartialLinearizations(); len(parts) > 0 {
		for _, p := range parts[0] {
			if len(p) > len(longest) {
				longest = p
			}
		}
	}
	pops := toPorcupine(ops, slack)
	state := model.Init()
	done := make([]bool, len(ops))
	for _, i := range longest {
		_, state = model.Step(state, pops[i].Input, pops[i].Output)
		done[i] = true
	}
	// The ops that could be next: not yet linearized, and invoked before
	// every pending op's reply (otherwise real time would put one first).
	horizon := infinity
	for i, o := range ops {
		if !done[i] {
			horizon = min(horizon, end(o))
		}
	}
	var next []chaos.Op
	for i, o := range ops {
		if !done[i] && o.Definite && o.Invoke <= horizon {
			next = append(next, o)
		}
	}
	a.Message = fmt.Sprintf("not linearizable: the longest explainable order covers %d of %d ops and leaves the lock %s; no op that could come next fits",
		len(longest), len(ops), model.DescribeState(state))
	if n := len(longest); n > 0 {
		a.Message += " (last explained: " + ops[longest[n-1]].String() + ")"
	}
	const show = 6
	if len(next) > show {
		next = next[:show]
	}
	a.Ops = next
	return a
}

// eachLock calls check(i) for i in [0, n), on every core: locks are
// independent, and one hard lock must not hold the others up.
func eachLock(n int, check func(i int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				check(i)
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}
