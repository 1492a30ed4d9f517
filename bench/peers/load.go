package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// A Locker is one system's lock calls, as its Go client makes them. It is
// shared by every worker, as one client is shared by an application's
// goroutines.
type Locker interface {
	// TryLock takes key for owner without waiting; granted is false when
	// another owner holds it.
	TryLock(ctx context.Context, key, owner string) (granted bool, err error)
	// Unlock releases key held by owner.
	Unlock(ctx context.Context, key, owner string) error
}

// A preparer sets up per-owner state (an etcd session) before the
// measured run.
type preparer interface {
	Prepare(ctx context.Context, owners []string) error
}

// ownerName is worker i's lock owner.
func ownerName(i int) string { return fmt.Sprintf("bench-worker-%d", i) }

// Workload is the closed loop every system runs: each worker picks a key at
// random, tries to lock it and, when granted, unlocks it, one request in
// flight at a time. Every request counts, the unlock as much as the lock.
type Workload struct {
	Workers  int
	Keys     int
	Duration time.Duration
	Seed     uint64
	// Timeout bounds each request.
	Timeout time.Duration
}

// Result is one run of the workload.
type Result struct {
	Requests uint64
	Granted  uint64
	Busy     uint64
	Errors   uint64
	// FirstError is the first failed request's error, for the report.
	FirstError string
	Elapsed    time.Duration
	Latency    *hdrhistogram.Histogram // microseconds
}

// PerSecond is the request rate.
func (r *Result) PerSecond() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// Quantile is the latency at q (0–100) percent.
func (r *Result) Quantile(q float64) time.Duration {
	return time.Duration(r.Latency.ValueAtQuantile(q)) * time.Microsecond
}

// errorPause keeps a worker whose requests fail from spinning.
const errorPause = 10 * time.Millisecond

// Run drives l with the workload until its duration has passed or ctx ends.
func (w Workload) Run(ctx context.Context, l Locker) (*Result, error) {
	if w.Workers < 1 || w.Keys < 1 || w.Duration <= 0 {
		return nil, fmt.Errorf("workload needs workers, keys and a duration: %+v", w)
	}
	if w.Timeout <= 0 {
		w.Timeout = 10 * time.Second
	}
	if p, ok := l.(preparer); ok {
		owners := make([]string, w.Workers)
		for i := range owners {
			owners[i] = ownerName(i)
		}
		if err := p.Prepare(ctx, owners); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]*Result, w.Workers)
	start := time.Now()
	stopAt := start.Add(w.Duration)
	var wg sync.WaitGroup
	for i := range w.Workers {
		results[i] = &Result{Latency: newHistogram()}
		wg.Go(func() { w.worker(ctx, l, i, stopAt, results[i]) })
	}
	wg.Wait()
	total := &Result{Latency: newHistogram(), Elapsed: time.Since(start)}
	for _, r := range results {
		total.Requests += r.Requests
		total.Granted += r.Granted
		total.Busy += r.Busy
		total.Errors += r.Errors
		if total.FirstError == "" {
			total.FirstError = r.FirstError
		}
		total.Latency.Merge(r.Latency)
	}
	if err := ctx.Err(); err != nil && total.Elapsed < w.Duration {
		return total, err
	}
	return total, nil
}

func (w Workload) worker(ctx context.Context, l Locker, index int, stopAt time.Time, r *Result) {
	rng := rand.New(rand.NewPCG(w.Seed, uint64(index)))
	owner := ownerName(index)
	fail := func(err error) {
		r.Errors++
		if r.FirstError == "" {
			r.FirstError = err.Error()
		}
		time.Sleep(errorPause)
	}
	for ctx.Err() == nil && time.Now().Before(stopAt) {
		key := fmt.Sprintf("bench-%d", rng.IntN(w.Keys))
		granted, err := w.timed(ctx, r, func(ctx context.Context) (bool, error) { return l.TryLock(ctx, key, owner) })
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			fail(err)
			continue
		case !granted:
			r.Busy++
			continue
		}
		r.Granted++
		if _, err := w.timed(ctx, r, func(ctx context.Context) (bool, error) { return true, l.Unlock(ctx, key, owner) }); err != nil && ctx.Err() == nil {
			fail(err)
		}
	}
}

// timed runs one request and records it.
func (w Workload) timed(ctx context.Context, r *Result, call func(context.Context) (bool, error)) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	sent := time.Now()
	ok, err := call(ctx)
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return false, err // the run was stopped: not counted
	}
	r.Requests++
	_ = r.Latency.RecordValue(time.Since(sent).Microseconds())
	return ok, err
}

func newHistogram() *hdrhistogram.Histogram {
	// 1 µs to 60 s at three significant digits.
	return hdrhistogram.New(1, 60_000_000, 3)
}
