package check

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

func linearizable(h chaos.History) []Anomaly {
	return Linearizable(h, Options{Timeout: 10 * time.Second}).Anomalies
}

var linearizabilityCases = []historyCase{
	// Valid histories.
	{name: "sequential lock, read, unlock, read, lock", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		get(20, 30).got("a", 1),
		unlock("a", 40, 50).unlocked(),
		get(60, 70).missing(),
		lock("b", 100, 80, 90).locked(2),
	)},
	{name: "tokens may skip values (partition-wide counter)", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(3),
		unlock("a", 20, 30).unlocked(),
		lock("b", 100, 40, 50).locked(17),
	)},
	{name: "idempotent re-lock keeps the token", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		lock("a", 100, 20, 30).locked(1),
	)},
	{name: "busy names the holder", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("b", 1000, 20, 30).busy("a"),
	)},
	{name: "concurrent try-locks: the one that completed later won first", valid: true, h: hist(
		lock("a", 1000, 0, 50).locked(1),
		lock("b", 1000, 10, 40).busy("a"),
	)},
	{name: "expired after its sure end: another owner takes it", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		lock("b", 100, 100, 110).locked(2),
	)},
	{name: "lease lengthened past its sure end", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		lock("b", 100, 150, 160).busy("a"),
		get(300, 310).got("a", 1),
		extend("a", 100, 320, 330).extended(1),
	)},
	{name: "extend moves the sure end", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		extend("a", 100, 50, 60).extended(1),
		lock("b", 100, 120, 130).busy("a"),
		lock("b", 100, 160, 170).locked(2),
	)},
	{name: "extend may shorten the lease", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		extend("a", 50, 20, 30).extended(1),
		lock("b", 100, 80, 90).locked(2),
	)},
	{name: "unlock of an expired own lock", valid: true, h: hist(
		lock("a", 50, 0, 10).locked(1),
		unlock("a", 200, 210).unlocked(),
	)},
	{name: "expired own lock already collected", valid: true, h: hist(
		lock("a", 50, 0, 10).locked(1),
		unlock("a", 200, 210).missing(),
		lock("a", 50, 220, 230).locked(2),
	)},
	{name: "stranger's unlock of a possibly expired lock: missing", valid: true, h: hist(
		lock("a", 50, 0, 10).locked(1),
		unlock("b", 60, 70).missing(),
		get(80, 90).missing(),
	)},
	{name: "stranger's unlock of a possibly expired lock: not owner", valid: true, h: hist(
		lock("a", 50, 0, 10).locked(1),
		unlock("b", 60, 70).notOwner(),
		get(80, 90).got("a", 1),
	)},
	{name: "unknown try-lock that took effect (token learned later)", valid: true, h: hist(
		lock("a", 10, 0, 5).locked(4),
		unlock("a", 10, 15).unlocked(),
		lock("b", 1000, 20, 30).unknown(),
		get(40, 50).got("b", 9),
		extend("b", 1000, 60, 70).extended(9),
		unlock("b", 80, 90).unlocked(),
	)},
	{name: "unknown try-lock that did not take effect", valid: true, h: hist(
		lock("a", 1000, 0, 10).unknown(),
		get(20, 30).missing(),
		lock("b", 1000, 40, 50).locked(3),
		get(60, 70).got("b", 3),
	)},
	{name: "unknown try-lock that took effect late", valid: true, h: hist(
		lock("a", 1000, 0, 10).unknown(),
		get(20, 30).missing(),
		get(40, 50).got("a", 1),
	)},
	{name: "unknown unlock that took effect", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		unlock("a", 20, 30).unknown(),
		lock("b", 1000, 40, 50).locked(2),
	)},
	{name: "unknown unlock that did not take effect", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		unlock("a", 20, 30).unknown(),
		lock("b", 1000, 40, 50).busy("a"),
	)},
	{name: "unknown extend that took effect", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		extend("a", 1000, 50, 60).unknown(),
		lock("b", 100, 500, 510).busy("a"),
	)},
	{name: "force-unlock of a live lock", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		force(20, 30).unlocked(),
		get(40, 50).missing(),
		unlock("a", 60, 70).missing(),
		lock("b", 1000, 80, 90).locked(2),
	)},
	{name: "force-unlock of an expired lock", valid: true, h: hist(
		lock("a", 50, 0, 10).locked(1),
		force(100, 110).missing(),
		unlock("a", 120, 130).missing(),
	)},
	{name: "waiting try-lock granted when the lease ran out", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		lock("b", 100, 20, 130).wait(500).locked(2),
	)},
	{name: "waiting try-lock granted on release", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("b", 100, 20, 60).wait(500).locked(2),
		unlock("a", 30, 40).unlocked(),
	)},
	{name: "waiting try-lock timed out busy", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("b", 100, 20, 70).wait(50).busy("a"),
	)},
	{name: "a read may see an expired lease live again after a leader change", valid: true, h: hist(
		lock("a", 50, 0, 10).locked(1),
		get(60, 70).missing(),
		get(80, 90).got("a", 1),
	)},
	{name: "two resources are independent", valid: true, h: hist(
		lock("a", 1000, 0, 10).on("x").locked(1),
		lock("b", 1000, 0, 10).on("y").locked(2),
	)},
	{name: "ephemeral ops are not checked here", valid: true, h: hist(
		lock("a", 1000, 0, 10).eph().locked(1),
		lock("b", 1000, 20, 30).eph().locked(2),
	)},

	// Invalid histories.
	{name: "two owners hold at once", want: "not linearizable", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("b", 1000, 20, 30).locked(2),
	)},
	{name: "stale read after an acknowledged unlock", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		unlock("a", 20, 30).unlocked(),
		get(40, 50).got("a", 1),
	)},
	{name: "token goes backwards", h: hist(
		lock("a", 10, 0, 5).locked(5),
		unlock("a", 10, 15).unlocked(),
		lock("b", 10, 20, 25).locked(3),
	)},
	{name: "token reused by another owner", h: hist(
		lock("a", 10, 0, 5).locked(5),
		unlock("a", 10, 15).unlocked(),
		lock("b", 10, 20, 25).locked(5),
	)},
	{name: "busy names the wrong holder", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("b", 1000, 20, 30).busy("c"),
	)},
	{name: "busy on a free lock", h: hist(
		lock("b", 1000, 20, 30).busy("c"),
	)},
	{name: "extend succeeds after the lease surely ended and another owner took it", h: hist(
		lock("a", 50, 0, 10).locked(1),
		lock("b", 1000, 60, 70).locked(2),
		extend("a", 50, 80, 90).extended(1),
	)},
	{name: "read says free while the lease surely runs", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		get(20, 30).missing(),
	)},
	{name: "re-lock by the holder with a new token", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("a", 1000, 20, 30).locked(2),
	)},
	{name: "owner told it is not the owner", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		unlock("a", 20, 30).notOwner(),
	)},
	{name: "extend refused while the lease surely runs", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		extend("a", 1000, 20, 30).missing(),
	)},
	{name: "a logged command saw the lease end; later it is live again", h: hist(
		lock("a", 50, 0, 10).locked(1),
		extend("a", 50, 60, 70).missing(),
		lock("b", 1000, 80, 90).busy("a"),
	)},
	{name: "stranger's unlock: missing, then not owner", h: hist(
		lock("a", 50, 0, 10).locked(1),
		unlock("b", 60, 70).missing(),
		unlock("b", 80, 90).notOwner(),
	)},
	{name: "read of a lock nobody took", h: hist(
		get(0, 10).got("z", 9),
	)},
	{name: "unknown grant's token is not above the previous one", h: hist(
		lock("a", 10, 0, 5).locked(5),
		unlock("a", 10, 15).unlocked(),
		lock("b", 1000, 20, 30).unknown(),
		get(40, 50).got("b", 5),
	)},
	{name: "unknown grant's token changes once seen", h: hist(
		lock("b", 1000, 20, 30).unknown(),
		get(40, 50).got("b", 6),
		get(60, 70).got("b", 7),
	)},
	{name: "force-unlock says unlocked on a free lock", h: hist(
		force(0, 10).unlocked(),
	)},
	{name: "unlock says unlocked for a lock never held", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		unlock("b", 20, 30).unlocked(),
	)},
	{name: "lock lost while its lease surely runs (read after acknowledged grant)", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("b", 1000, 20, 30).unknown(),
		get(40, 50).got("b", 2),
	)},
}

func TestLinearizableHandWritten(t *testing.T) {
	runCases(t, linearizabilityCases, linearizable)
}

// Every invalid case also fails through Run, and the report says so.
func TestRunReportsLinearizabilityFailures(t *testing.T) {
	for _, tc := range linearizabilityCases {
		r, err := Run(tc.h, Options{Timeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Passed() != tc.valid {
			t.Errorf("%s: passed=%v, want %v:\n%s", tc.name, r.Passed(), tc.valid, Format(r.Anomalies))
		}
	}
}

func TestLinearizableDescribesTheFailure(t *testing.T) {
	h := hist(
		lock("a", 1000, 0, 10).locked(1),
		unlock("a", 20, 30).unlocked(),
		get(40, 50).got("a", 1),
	)
	r := Linearizable(h, Options{})
	if r.Illegal != 1 || len(r.Anomalies) != 1 {
		t.Fatalf("report %+v", r)
	}
	a := r.Anomalies[0]
	if len(a.Ops) != 1 || a.Ops[0].ID != 2 {
		t.Errorf("want the stale read as the op that does not fit, got:\n%s", a)
	}
	if !strings.Contains(a.Message, "covers 2 of 3 ops") || !strings.Contains(a.Message, "free") {
		t.Errorf("message: %s", a.Message)
	}
}

func TestLinearizableLeaseSlack(t *testing.T) {
	// b's grant completes 2ms before a's sure end: a violation without
	// slack, accepted with 5ms of it.
	h := hist(
		lock("a", 100, 0, 10).locked(1),
		lock("b", 100, 90, 98).locked(2),
	)
	if r := Linearizable(h, Options{}); r.Illegal != 1 {
		t.Errorf("without slack: %+v", r)
	}
	if r := Linearizable(h, Options{LeaseSlack: 5 * time.Millisecond}); !r.Passed() {
		t.Errorf("with slack: %s", Format(r.Anomalies))
	}
}

func TestLinearizableUnexpectedRepliesAreUnknownOutcomes(t *testing.T) {
	// The 99 may or may not have granted: the history stays linearizable,
	// and Replies reports the 99 itself.
	h := hist(
		lock("a", 1000, 0, 10).res(chaos.TypeErrored),
		get(20, 30).got("a", 1),
	)
	if r := Linearizable(h, Options{}); !r.Passed() {
		t.Errorf("linearizability: %s", Format(r.Anomalies))
	}
	if as := Replies(h); len(as) != 1 || !strings.Contains(as[0].Message, "Errored") {
		t.Errorf("replies: %s", Format(as))
	}
}

func TestLinearizableTimeoutIsUnknownNotPass(t *testing.T) {
	h := hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("b", 1000, 0, 10).on("other").locked(2),
	)
	// A deadline already past: nothing is decided, and that is reported.
	r := Linearizable(h, Options{Timeout: time.Nanosecond})
	if r.Unknown != 2 || r.Passed() || len(r.Anomalies) != 2 || !r.Anomalies[0].Unknown {
		t.Fatalf("report %+v", r)
	}
	if !strings.Contains(r.Anomalies[0].String(), "(unknown)") {
		t.Errorf("rendered: %s", r.Anomalies[0])
	}
}

// A search porcupine cannot finish in a millisecond: many overlapping
// unknown try-locks and extends multiply the states.
func TestLinearizableSearchTimeout(t *testing.T) {
	var ops []chaos.Op
	for i := range 60 {
		owner := string(rune('a' + i%20))
		ops = append(ops, lock(owner, 5+i%7, i, i+200).unknown())
		ops = append(ops, extend(owner, 3+i%5, i, i+200).unknown())
	}
	for i := range 40 {
		ops = append(ops, get(300+2*i, 301+2*i).missing())
	}
	h := hist(ops...)
	r := Linearizable(h, Options{Timeout: time.Millisecond})
	if r.Ok == 1 {
		t.Skip("the search finished within a millisecond on this machine")
	}
	// On a slow machine the millisecond may be gone before the search
	// starts; either way the lock is reported undecided, never passed.
	msg := ""
	if len(r.Anomalies) == 1 {
		msg = r.Anomalies[0].Message
	}
	if r.Unknown != 1 || r.Passed() || !r.Anomalies[0].Unknown ||
		!(strings.Contains(msg, "not decided") || strings.Contains(msg, "not checked")) {
		t.Fatalf("report %+v", r)
	}
}

// TestSearchSetsAsideUnknownReleases: a lock whose definite ops are
// linearizable passes however many unknown releases and extensions stay
// pending; one whose definite ops show two holders at once never passes,
// whichever version of it the search tries.
func TestSearchSetsAsideUnknownReleases(t *testing.T) {
	build := func(violate bool) []chaos.Op {
		var ops []chaos.Op
		for i := range 40 {
			owner := fmt.Sprintf("o%d", i%8)
			ops = append(ops, unlock(owner, i, i+1).unknown(), extend(owner, 50, i, i+1).unknown())
		}
		for i := range 30 {
			owner := fmt.Sprintf("o%d", i%8)
			base := 100 + 40*i
			ops = append(ops,
				lock(owner, 1000, base, base+5).locked(int64(i+1)),
				get(base+10, base+15).got(owner, int64(i+1)),
				unlock(owner, base+20, base+25).unlocked())
		}
		if violate {
			// A second owner granted while o0 surely holds the lock.
			ops = append(ops, lock("intruder", 1000, 106, 107).locked(99))
		}
		return sanitize(hist(ops...).Ops)
	}
	model := lockModel()
	if res, _ := search(model, build(false), 0, time.Now().Add(20*time.Second)); res != porcupine.Ok {
		t.Fatalf("search: %v, want ok", res)
	}
	if res, _ := search(model, build(true), 0, time.Now().Add(2*time.Second)); res == porcupine.Ok {
		t.Fatal("a history with two holders at once passed")
	}
}

// TestSearchDecidesARealHistoryWithManyUnknowns replays one hot lock of an
// 8-minute run of real processes (seed 1203, 2026-12-02): 1,149 ops, 103 of
// unknown outcome, most of them waiting try-locks whose clients left, each
// with the release that implies. Searched whole, porcupine did not decide
// it in 2 minutes, and given longer it ran out of memory (22 GB); with the
// unknown releases set aside it is decided at once.
func TestSearchDecidesARealHistoryWithManyUnknowns(t *testing.T) {
	if raceBuild {
		// 37 s alone under -race, minutes beside the rest of make test;
		// make test runs it without the race detector (about 2 s).
		t.Skip("porcupine's search is too slow under the race detector; make test runs this test without -race")
	}
	h, err := chaos.ReadFile("testdata/hot-lock-many-unknown.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	r := Linearizable(h, Options{Timeout: 30 * time.Second, LeaseSlack: 10 * time.Millisecond})
	if r.Ok != 1 || !r.Passed() {
		t.Fatalf("ok %d, illegal %d, unknown %d after %v: %s", r.Ok, r.Illegal, r.Unknown, r.Duration, Format(r.Anomalies))
	}
	t.Logf("decided in %v", r.Duration)
}
