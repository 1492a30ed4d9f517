package check

import (
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

func TestSummary(t *testing.T) {
	h := hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("b", 1000, 20, 30).unknown(),
		extend("a", 1000, 40, 50).extended(1),
		get(60, 70).got("a", 1),
		get(80, 90).unknown(),
		unlock("a", 100, 110).unlocked(),
	)
	s := Summarize(h)
	if s.Ops != 6 || s.Definite != 4 || s.Indefinite != 2 {
		t.Errorf("totals %+v", s)
	}
	want := map[chaos.Kind][2]int{
		chaos.TryLock: {1, 1}, chaos.Extend: {1, 0}, chaos.GetInfo: {1, 1}, chaos.Unlock: {1, 0}, chaos.ForceUnlock: {0, 0},
	}
	for _, k := range s.Kinds {
		if got := [2]int{k.Definite, k.Indefinite}; got != want[k.Kind] {
			t.Errorf("%s: %v, want %v", k.Kind, got, want[k.Kind])
		}
	}
	if !s.Passed() {
		t.Error("no checks yet, yet not passed")
	}
	s.Add(NameLinearizability, nil, 1500*time.Microsecond)
	s.Add(NameMutex, []Anomaly{{}, {Unknown: true}}, time.Millisecond)
	s.Add(NameFencing, []Anomaly{{Unknown: true}}, 0)
	if s.Passed() {
		t.Error("passed with anomalies")
	}
	// Compare rows by their fields: alignment is the tabwriter's business.
	rows := map[string]bool{}
	for _, line := range strings.Split(s.String(), "\n") {
		rows[strings.Join(strings.Fields(line), " ")] = true
	}
	for _, row := range []string{
		"operation definite indefinite",
		"try-lock 1 1",
		"total 4 2",
		"check anomalies unknown time verdict",
		"linearizability 0 0 2ms pass",
		"mutex 1 1 1ms FAIL",
		"fencing 0 1 0s UNKNOWN",
	} {
		if !rows[row] {
			t.Errorf("summary lacks row %q:\n%s", row, s)
		}
	}
}

func TestRunSummarizesEveryChecker(t *testing.T) {
	r, err := Run(hist(lock("a", 1000, 0, 10).locked(1)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range r.Summary.Checks {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "replies,linearizability,mutex,fencing" || !r.Passed() || !r.Summary.Passed() {
		t.Errorf("report %+v", r)
	}
	if _, err := Run(chaos.History{Ops: []chaos.Op{{ID: 3}}}, Options{}); err == nil {
		t.Error("invalid history accepted")
	}
}
