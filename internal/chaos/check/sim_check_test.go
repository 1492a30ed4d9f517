package check

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// simCount is how many simulated histories the randomized tests check;
// kept small enough for the race detector to stay within seconds.
const simCount = 300

func simParamsFor(seed int64) simParams {
	return simParams{
		clients:      5,
		opsPerClient: 24,
		resources:    []string{"x", "y"},
		pIndefinite:  0.08,
		pEphemeral:   0.2,
		leaderEvery:  80 * time.Millisecond,
		truncate:     seed%2 == 1,
	}
}

func simOptions(p simParams) Options {
	o := Options{Timeout: 10 * time.Second}
	if p.truncate {
		o.LeaseSlack = time.Millisecond
	}
	return o
}

// saveFailure writes a failing history where the test log can point to it.
func saveFailure(t *testing.T, name string, h chaos.History, r LinearizabilityReport) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	files, err := r.WriteArtifacts(dir, h)
	if err != nil {
		t.Logf("saving %s: %v", name, err)
		return
	}
	t.Logf("%s saved: %v", name, files)
}

// A correct server never fails a checker.
func TestSimulatedHistoriesPass(t *testing.T) {
	var ops, indefinite int
	start := time.Now()
	for seed := range int64(simCount) {
		p := simParamsFor(seed)
		h := newSim(seed, p).run(0)
		if err := h.Validate(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		ops += len(h.Ops)
		for _, o := range h.Ops {
			if !o.Definite {
				indefinite++
			}
		}
		r, err := Run(h, simOptions(p))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Passed() {
			saveFailure(t, fmt.Sprintf("seed-%d", seed), h, r.Linearizability)
			t.Fatalf("seed %d (truncate=%v): correct history flagged:\n%s", seed, p.truncate, Format(r.Anomalies))
		}
	}
	t.Logf("%d histories, %d ops (%d indefinite), all pass, in %v", simCount, ops, indefinite, time.Since(start))
}

// A full restart of a correct server loses nothing acknowledged.
func TestSimulatedRestartsPass(t *testing.T) {
	for seed := range int64(simCount / 2) {
		p := simParamsFor(seed)
		s := newSim(seed, p)
		before := s.run(time.Duration(100+seed*3) * time.Millisecond)
		after := s.restart(time.Duration(seed%5) * 100 * time.Millisecond)
		if found := DurableAfterRestart(before, after, simOptions(p)); len(found) > 0 {
			t.Fatalf("seed %d: correct restart flagged:\n%s", seed, Format(found))
		}
	}
}

// Reading back a lock that surely still runs as missing is always caught.
func TestSimulatedRestartLosesALock(t *testing.T) {
	caught, tried := 0, 0
	for seed := range int64(simCount) {
		p := simParamsFor(seed)
		s := newSim(seed, p)
		before := s.run(time.Duration(60+seed*5) * time.Millisecond)
		after := s.restart(0)
		for i, r := range after {
			if !r.Is(chaos.TypeGot) || !mustBeLive(before, r, simOptions(p).LeaseSlack) {
				continue
			}
			tried++
			lost := append([]chaos.Op(nil), after...)
			lost[i].Type, lost[i].Holder, lost[i].Token = chaos.TypeLockDoesNotExist, "", 0
			if found := DurableAfterRestart(before, lost, simOptions(p)); len(found) > 0 {
				caught++
			} else {
				t.Errorf("seed %d: lost lock not caught: %s", seed, lost[i])
			}
		}
	}
	if tried < simCount/10 {
		t.Fatalf("only %d simulated restarts read a surely live lock", tried)
	}
	t.Logf("lost locks caught: %d/%d", caught, tried)
}

// mustBeLive: the lock the read shows (owner and token) was acknowledged,
// by a grant or an extend, with a lease that surely runs past the read, and
// nothing that may have released or shortened it can have come later.
func mustBeLive(before chaos.History, read chaos.Op, slack time.Duration) bool {
	ops := before.Filter(func(o chaos.Op) bool {
		return o.Resource == read.Resource && o.Durability == chaos.Persistent
	})
	var last chaos.Op
	found := false
	for _, o := range ops {
		if o.Owner == read.Holder && o.Token == read.Token &&
			((o.Kind == chaos.TryLock && o.Is(chaos.TypeLocked)) || (o.Kind == chaos.Extend && o.Is(chaos.TypeExtended))) &&
			(!found || o.Complete > last.Complete) {
			last, found = o, true
		}
	}
	if !found {
		return false
	}
	for _, o := range ops {
		if o.ID == last.ID || end(o) <= last.Invoke {
			continue
		}
		switch {
		case o.Kind == chaos.ForceUnlock,
			o.Kind == chaos.Unlock && o.Owner == read.Holder,
			o.Kind == chaos.Extend && o.Owner == read.Holder:
			return false // may have released or shortened it
		}
	}
	floor := leaseFloor(last, slack)
	if last.Kind == chaos.TryLock {
		floor = grantFloor(ops, last, slack)
	}
	return read.Complete < floor
}

// mutation changes one thing in a history; ok is false when it does not
// apply (nothing to change).
type mutation struct {
	name  string
	apply func(rng *rand.Rand, ops []chaos.Op) (changed []chaos.Op, ok bool)
}

var mutations = []mutation{
	{"flip a reply", flipReply},
	{"swap two tokens", swapTokens},
	{"swap two real-time ordered tokens", swapOrderedTokens},
	{"change an owner", changeOwner},
}

// definitePersistent lists the indexes of definite persistent ops matching
// keep.
func definitePersistent(ops []chaos.Op, keep func(chaos.Op) bool) []int {
	var out []int
	for i, o := range ops {
		if o.Definite && o.Durability == chaos.Persistent && keep(o) {
			out = append(out, i)
		}
	}
	return out
}

func owners(ops []chaos.Op) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range ops {
		if o.Owner != "" && !seen[o.Owner] {
			seen[o.Owner] = true
			out = append(out, o.Owner)
		}
	}
	return out
}

// flipReply answers one op with another reply its kind allows: a Locked
// becomes Busy naming someone else, a Busy a Locked with a plausible token,
// a LockDoesNotExist a success (or the other refusal), and so on.
func flipReply(rng *rand.Rand, ops []chaos.Op) ([]chaos.Op, bool) {
	idx := definitePersistent(ops, func(chaos.Op) bool { return true })
	if len(idx) == 0 {
		return nil, false
	}
	i := idx[rng.Intn(len(idx))]
	o := ops[i]
	var choices []int
	for _, t := range allowed[o.Kind] {
		if t != o.Type {
			choices = append(choices, t)
		}
	}
	o.Type = choices[rng.Intn(len(choices))]
	// Plausible fields: a token and an owner seen on this resource.
	var tokens []int64
	for _, x := range ops {
		if x.Resource == o.Resource && x.Durability == o.Durability && x.Definite &&
			(x.Type == chaos.TypeLocked || x.Type == chaos.TypeExtended || x.Type == chaos.TypeGot) {
			tokens = append(tokens, x.Token)
		}
	}
	tokens = append(tokens, 1000)
	o.Token = tokens[rng.Intn(len(tokens))]
	o.Holder = ""
	switch o.Type {
	case chaos.TypeBusy:
		names := owners(ops)
		o.Holder = names[rng.Intn(len(names))]
		if o.Holder == o.Owner {
			return nil, false
		}
	case chaos.TypeGot:
		names := owners(ops)
		o.Holder = names[rng.Intn(len(names))]
	}
	out := append([]chaos.Op(nil), ops...)
	out[i] = o
	return out, true
}

func grantPairs(ops []chaos.Op, ordered bool) [][2]int {
	idx := definitePersistent(ops, func(o chaos.Op) bool { return o.Kind == chaos.TryLock && o.Type == chaos.TypeLocked })
	var pairs [][2]int
	for _, a := range idx {
		for _, b := range idx {
			oa, ob := ops[a], ops[b]
			if oa.Resource != ob.Resource || oa.Token >= ob.Token {
				continue
			}
			if ordered && oa.Complete >= ob.Invoke {
				continue
			}
			pairs = append(pairs, [2]int{a, b})
		}
	}
	return pairs
}

func swapPair(rng *rand.Rand, ops []chaos.Op, ordered bool) ([]chaos.Op, bool) {
	pairs := grantPairs(ops, ordered)
	if len(pairs) == 0 {
		return nil, false
	}
	p := pairs[rng.Intn(len(pairs))]
	out := append([]chaos.Op(nil), ops...)
	out[p[0]].Token, out[p[1]].Token = ops[p[1]].Token, ops[p[0]].Token
	return out, true
}

// swapTokens swaps the tokens of two grants of one resource.
func swapTokens(rng *rand.Rand, ops []chaos.Op) ([]chaos.Op, bool) { return swapPair(rng, ops, false) }

// swapOrderedTokens swaps the tokens of two grants where one completed
// before the other began: the later then has the smaller token, which no
// correct server can produce.
func swapOrderedTokens(rng *rand.Rand, ops []chaos.Op) ([]chaos.Op, bool) {
	return swapPair(rng, ops, true)
}

// changeOwner names another owner in a grant, extend, Busy or Got.
func changeOwner(rng *rand.Rand, ops []chaos.Op) ([]chaos.Op, bool) {
	idx := definitePersistent(ops, func(o chaos.Op) bool {
		switch o.Type {
		case chaos.TypeLocked, chaos.TypeExtended, chaos.TypeBusy, chaos.TypeGot:
			return true
		}
		return false
	})
	if len(idx) == 0 {
		return nil, false
	}
	i := idx[rng.Intn(len(idx))]
	o := ops[i]
	names := append(owners(ops), "intruder")
	pick := names[rng.Intn(len(names))]
	switch o.Type {
	case chaos.TypeBusy, chaos.TypeGot:
		if pick == o.Holder || (o.Type == chaos.TypeBusy && pick == o.Owner) {
			return nil, false
		}
		o.Holder = pick
	default:
		if pick == o.Owner {
			return nil, false
		}
		o.Owner = pick
	}
	out := append([]chaos.Op(nil), ops...)
	out[i] = o
	return out, true
}

// Mutations of correct histories are caught: every real-time token swap,
// and most of the others (some mutations happen to describe another correct
// run, e.g. a stranger's unlock of a lease that may have ended answered
// InvalidOwner instead of LockDoesNotExist).
func TestSimulatedMutationsAreCaught(t *testing.T) {
	type tally struct{ tried, caught int }
	tallies := make([]tally, len(mutations))
	var missed []string
	// Most mutants are illegal, and proving that exhausts the search: half
	// the seeds keep the test quick under the race detector.
	for seed := range int64(simCount / 2) {
		p := simParamsFor(seed)
		h := newSim(seed, p).run(0)
		rng := rand.New(rand.NewSource(seed * 7919))
		for mi, m := range mutations {
			ops, ok := m.apply(rng, h.Ops)
			if !ok {
				continue
			}
			mh := chaos.History{Ops: ops}
			r := Linearizable(mh, simOptions(p))
			if r.Unknown > 0 {
				t.Fatalf("seed %d %s: undecided:\n%s", seed, m.name, Format(r.Anomalies))
			}
			tallies[mi].tried++
			if r.Illegal > 0 {
				tallies[mi].caught++
			} else if len(missed) < 5 {
				missed = append(missed, fmt.Sprintf("seed %d %s: %s", seed, m.name, diff(h.Ops, ops)))
			}
		}
	}
	var tried, caught int
	for mi, m := range mutations {
		tl := tallies[mi]
		tried += tl.tried
		caught += tl.caught
		t.Logf("%-36s caught %3d/%3d (%.0f%%)", m.name, tl.caught, tl.tried, 100*float64(tl.caught)/float64(max(tl.tried, 1)))
	}
	t.Logf("overall: caught %d/%d (%.0f%%); some that passed:\n%v", caught, tried, 100*float64(caught)/float64(tried), missed)
	if ordered := tallies[2]; ordered.tried == 0 || ordered.caught != ordered.tried {
		t.Errorf("real-time token swaps: caught %d/%d, want all", ordered.caught, ordered.tried)
	}
	for mi, least := range []float64{0.65, 0.9, 1, 0.8} {
		if tl := tallies[mi]; float64(tl.caught) < least*float64(tl.tried) {
			t.Errorf("%s: caught %d/%d, want at least %.0f%%", mutations[mi].name, tl.caught, tl.tried, 100*least)
		}
	}
	if rate := float64(caught) / float64(tried); tried < simCount || rate < 0.85 {
		t.Errorf("detection rate %.2f over %d mutants, want at least 0.85", rate, tried)
	}
}

// diff shows the op a mutation changed.
func diff(a, b []chaos.Op) string {
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("%s  ⇒  %s", a[i].Outcome()+" "+a[i].Owner, b[i])
		}
	}
	return "no change"
}

// A Busy reply inside another owner's window, turned into a grant, is a
// second holder: the mutual-exclusion checker always sees it (when the new
// holder has a window at all), and so does the linearizability checker.
func TestSimulatedStolenLocksAreCaught(t *testing.T) {
	tried := 0
	for seed := range int64(simCount / 2) {
		p := simParamsFor(seed)
		h := newSim(seed, p).run(0)
		ops := sanitize(h.Ops)
		_, groups := chaos.ByLock(ops)
		for i, b := range ops {
			if b.Durability != chaos.Persistent || b.Kind != chaos.TryLock || !b.Is(chaos.TypeBusy) {
				continue
			}
			inside := false
			for _, w := range windows(groups[b.Key()], simOptions(p).LeaseSlack) {
				inside = inside || (w.Owner != b.Owner && w.Start <= b.Invoke && b.Complete < w.End)
			}
			if !inside {
				continue
			}
			stolen := append([]chaos.Op(nil), h.Ops...)
			stolen[i].Type, stolen[i].Token, stolen[i].Holder = chaos.TypeLocked, 1_000_000+int64(i), ""
			sh := chaos.History{Ops: stolen}
			hasWindow := false
			for _, w := range windows(chaos.ByLockOf(sanitize(stolen), b.Key()), simOptions(p).LeaseSlack) {
				hasWindow = hasWindow || w.Grant.ID == b.ID
			}
			if hasWindow {
				tried++
				if found := MutualExclusion(sh, simOptions(p)); len(found) == 0 {
					t.Errorf("seed %d: stolen lock not caught by mutex: %s", seed, stolen[i])
				}
			}
			if r := Linearizable(sh, simOptions(p)); r.Illegal == 0 {
				t.Errorf("seed %d: stolen lock not caught by linearizability: %s", seed, stolen[i])
			}
			break // one per history
		}
	}
	if tried < simCount/20 {
		t.Fatalf("only %d stolen locks had a window", tried)
	}
	t.Logf("stolen locks with a window, all caught: %d", tried)
}
