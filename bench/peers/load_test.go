package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeLocker is an in-memory lock table that can be told to fail.
type fakeLocker struct {
	mu      sync.Mutex
	held    map[string]string
	locks   atomic.Int64
	unlocks atomic.Int64
	failAll atomic.Bool
	delay   time.Duration
}

var errDown = errors.New("server down")

func (f *fakeLocker) TryLock(ctx context.Context, key, owner string) (bool, error) {
	f.locks.Add(1)
	time.Sleep(f.delay)
	if f.failAll.Load() {
		return false, errDown
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.held[key]; ok && h != owner {
		return false, nil
	}
	f.held[key] = owner
	return true, nil
}

func (f *fakeLocker) Unlock(ctx context.Context, key, owner string) error {
	f.unlocks.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[key] != owner {
		return errors.New("not the owner")
	}
	delete(f.held, key)
	return nil
}

func TestWorkloadCountsEveryRequest(t *testing.T) {
	f := &fakeLocker{held: map[string]string{}, delay: 100 * time.Microsecond}
	w := Workload{Workers: 8, Keys: 4, Duration: 300 * time.Millisecond, Seed: 1}
	res, err := w.Run(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 {
		t.Fatalf("%d errors: %s", res.Errors, res.FirstError)
	}
	locks, unlocks := uint64(f.locks.Load()), uint64(f.unlocks.Load())
	if res.Requests != locks+unlocks || res.Granted != unlocks || res.Granted+res.Busy != locks {
		t.Fatalf("result %+v; the locker saw %d locks and %d unlocks", res, locks, unlocks)
	}
	// 8 workers on 4 keys collide.
	if res.Busy == 0 || res.Granted == 0 {
		t.Fatalf("granted %d, busy %d: want both", res.Granted, res.Busy)
	}
	if res.Elapsed < w.Duration || res.Elapsed > w.Duration+200*time.Millisecond {
		t.Fatalf("ran %v for a %v workload", res.Elapsed, w.Duration)
	}
	if n := res.Latency.TotalCount(); uint64(n) != res.Requests {
		t.Fatalf("%d latencies for %d requests", n, res.Requests)
	}
	if q := res.Quantile(50); q < 100*time.Microsecond {
		t.Fatalf("median %v below the locker's own delay", q)
	}
}

func TestWorkloadReportsFailuresWithoutSpinning(t *testing.T) {
	f := &fakeLocker{held: map[string]string{}}
	f.failAll.Store(true)
	w := Workload{Workers: 2, Keys: 10, Duration: 200 * time.Millisecond, Seed: 1}
	res, err := w.Run(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || !strings.Contains(res.FirstError, "server down") || res.Granted != 0 {
		t.Fatalf("result %+v, want failures named", res)
	}
	// Each failure pauses 10 ms: two workers make about 40 in 200 ms.
	if res.Errors > 60 {
		t.Fatalf("%d failed requests in 200 ms: the workers spin", res.Errors)
	}
}

func TestWorkloadStopsWithItsContext(t *testing.T) {
	f := &fakeLocker{held: map[string]string{}, delay: time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Workload{Workers: 4, Keys: 100, Duration: time.Hour, Seed: 1}.Run(ctx, f)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("cancelled run: %v after %v", err, time.Since(start))
	}
}

func TestWorkloadRejectsEmptySettings(t *testing.T) {
	if _, err := (Workload{Workers: 0, Keys: 1, Duration: time.Second}).Run(context.Background(), &fakeLocker{}); err == nil {
		t.Fatal("no workers accepted")
	}
}

func TestReportRatios(t *testing.T) {
	mk := func(n uint64) *Result {
		r := &Result{Requests: n, Elapsed: time.Second, Latency: newHistogram()}
		r.Latency.RecordValue(1000)
		return r
	}
	var r Report
	r.Add(1, []Row{{"kahuna 1 node persistent", mk(300)}, {"etcd 1 node", mk(100)}})
	r.Add(2, []Row{{"kahuna 1 node persistent", mk(250)}, {"etcd 1 node", mk(100)}})
	if got := r.Ratio(0, "kahuna 1 node persistent", "etcd 1 node"); got != 3 {
		t.Fatalf("round 1 ratio %v, want 3", got)
	}
	if got := r.Ratio(1, "kahuna 3 nodes persistent", "etcd 3 nodes"); got != 0 {
		t.Fatalf("ratio of missing rows %v, want 0", got)
	}
	var b strings.Builder
	r.Write(&b)
	for _, want := range []string{"round 2", "kahuna 1 node persistent / etcd 1 node", "3.00×", "2.50×"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "etcd 3 nodes") {
		t.Fatalf("the report compares systems it did not measure:\n%s", b.String())
	}
}

func TestSelectSetups(t *testing.T) {
	names := func(ss []Setup) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return out
	}
	all := Setups()
	if got := Select(all, ""); len(got) != len(all) {
		t.Fatalf("no filter kept %v", names(got))
	}
	got := names(Select(all, "kahuna, redis"))
	for _, n := range got {
		if !strings.Contains(n, "kahuna") && !strings.Contains(n, "redis") {
			t.Fatalf("kept %q", n)
		}
	}
	if len(got) != 4 {
		t.Fatalf("kahuna,redis kept %v, want the two Kahuna and two Redis setups", got)
	}
	if got := Select(all, "nothing"); len(got) != 0 {
		t.Fatalf("an unknown word kept %v", names(got))
	}
}
