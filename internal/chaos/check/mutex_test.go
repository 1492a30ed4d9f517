package check

import (
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

func mutex(h chaos.History) []Anomaly { return MutualExclusion(h, Options{}) }

var mutexCases = []historyCase{
	{name: "one owner after another, lease ran out", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		lock("b", 100, 100, 110).locked(2),
	)},
	{name: "released, then taken", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		unlock("a", 20, 30).unlocked(),
		lock("b", 1000, 25, 35).locked(2),
	)},
	{name: "release with unknown outcome ends the window at its invoke", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		unlock("a", 20, 30).unknown(),
		lock("b", 1000, 40, 50).locked(2),
	)},
	{name: "force-unlock by an operator ends the window", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		force(20, 30).unlocked(),
		lock("b", 1000, 40, 50).locked(2),
	)},
	{name: "lengthened lease does not widen the window", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		get(120, 130).got("a", 1),
		lock("b", 100, 150, 160).locked(2),
	)},
	{name: "extension acknowledged after the window ended is not used", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		extend("a", 100, 50, 120).extended(1),
		lock("b", 100, 160, 170).locked(2),
	)},
	{name: "re-locks of one grant share a window", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("a", 1000, 20, 30).locked(1),
		lock("a", 1000, 15, 40).locked(1),
	)},
	{name: "re-lock does not renew the lease", valid: true, h: hist(
		lock("a", 100, 0, 10).locked(1),
		lock("a", 100, 90, 95).locked(1),
		lock("b", 100, 100, 110).locked(2),
	)},
	{name: "a grant whose first reply was lost set the lease", valid: true, h: hist(
		lock("a", 100, 0, 10).unknown(),
		lock("a", 100, 60, 70).locked(1),
		lock("b", 100, 100, 110).locked(2),
	)},
	{name: "an extend with unknown outcome may have shortened the lease", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(1),
		extend("a", 30, 20, 30).unknown(),
		lock("b", 100, 60, 70).locked(2),
	)},
	{name: "concurrent grants: the window starts at the reply", valid: true, h: hist(
		lock("a", 50, 0, 10).locked(1),
		lock("b", 100, 5, 60).locked(2),
	)},
	{name: "ephemeral locks may be lost on a leader change", valid: true, h: hist(
		lock("a", 1000, 0, 10).eph().locked(1),
		lock("b", 1000, 20, 30).eph().locked(2),
	)},
	{name: "different resources", valid: true, h: hist(
		lock("a", 1000, 0, 10).on("x").locked(1),
		lock("b", 1000, 20, 30).on("y").locked(2),
	)},

	{name: "two owners hold at once", want: "two holders at once", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("b", 1000, 20, 30).locked(2),
	)},
	{name: "holder extended in time, another owner took it", want: "extended by #1", h: hist(
		lock("a", 100, 0, 10).locked(1),
		extend("a", 100, 50, 60).extended(1),
		lock("b", 100, 120, 130).locked(2),
	)},
	{name: "chain of extensions", h: hist(
		lock("a", 100, 0, 10).locked(1),
		extend("a", 100, 50, 60).extended(1),
		extend("a", 100, 140, 145).extended(1),
		lock("b", 100, 200, 210).locked(2),
	)},
	{name: "one owner under two tokens at once", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("a", 1000, 20, 30).locked(2),
	)},
	{name: "a stranger's unlock does not end the window", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		unlock("b", 20, 30).unlocked(),
		lock("b", 1000, 40, 50).locked(2),
	)},
	{name: "a refused unlock does not end the window", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		unlock("a", 20, 30).notOwner(),
		lock("b", 1000, 40, 50).locked(2),
	)},
	{name: "same token, two owners", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("b", 1000, 20, 30).locked(1),
	)},
}

func TestMutualExclusionHandWritten(t *testing.T) {
	runCases(t, mutexCases, mutex)
}

func TestWindowBounds(t *testing.T) {
	h := hist(
		lock("a", 100, 0, 10).locked(1),      // lease until 100
		extend("a", 100, 50, 60).extended(1), // until 150
		extend("a", 100, 90, 95).extended(1), // until 190
		unlock("a", 170, 180).unlocked(),     // released from 170
	)
	ws := windows(h.Ops, 0)
	if len(ws) != 1 {
		t.Fatalf("windows: %v", ws)
	}
	w := ws[0]
	if w.Start != ms(10) || w.End != ms(170) || w.Bound.ID != 3 {
		t.Errorf("window %v, want [10ms, 170ms) closed by #3", w)
	}
	ws = windows(h.Ops[:3], 5*time.Millisecond)
	if ws[0].End != ms(185) {
		t.Errorf("with slack: %v, want end 185ms", ws[0])
	}
}
