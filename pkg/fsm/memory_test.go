package fsm

import (
	"fmt"
	"runtime"
	"testing"
)

// TestMillionShortLivedLocksLeaveNothingBehind applies a million grants of
// one-second leases over simulated time, with the leader's periodic expire
// command every second, and checks the table never holds more than the
// locks that can be alive plus those within the grace period.
func TestMillionShortLivedLocksLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("a million commands")
	}
	m := newMachine(t)
	const (
		total     = 1_000_000
		perSecond = 20_000
		grace     = 2_000
		batch     = 500
	)
	now := t0
	maxLen := 0
	cmds := make([]Command, 0, batch)
	for i := 0; i < total; i += batch {
		cmds = cmds[:0]
		for j := i; j < i+batch; j++ {
			cmds = append(cmds, lock(fmt.Sprintf("job-%d", j), "worker", 1000))
		}
		m.Apply(Batch{Now: now, Commands: cmds})
		now += 1000 * batch / perSecond
		if (i/batch)%(perSecond/batch) == 0 {
			m.Apply(Batch{Now: now, Commands: []Command{expire(grace, 100_000)}})
		}
		maxLen = max(maxLen, m.Len())
	}
	// Live (1 s) plus grace (2 s) plus one tick of lag: about 4 s of grants.
	if bound := 4 * perSecond; maxLen > bound+perSecond/2 {
		t.Fatalf("table grew to %d entries; expected at most ~%d", maxLen, bound)
	}
	now += 1000 + grace
	m.Apply(Batch{Now: now, Commands: []Command{expire(grace, 1_000_000)}})
	if m.Len() != 0 {
		t.Fatalf("%d entries left after every lease and grace ran out", m.Len())
	}
	if c := m.Counters(); c.Fence != total {
		t.Fatalf("fence %d after %d grants", c.Fence, total)
	}
	t.Logf("peak table size %d entries for %d grants", maxLen, total)
}

// BenchmarkMemoryPerLock reports the heap held per live lock, for resources
// and owners of typical length (16 and 22 bytes).
func BenchmarkMemoryPerLock(b *testing.B) {
	const n = 1_000_000
	var before, after runtime.MemStats
	for range b.N {
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := newMachine(&testing.T{})
		cmds := make([]Command, 0, 1000)
		for i := 0; i < n; i += 1000 {
			cmds = cmds[:0]
			for j := i; j < i+1000; j++ {
				cmds = append(cmds, lock(fmt.Sprintf("orders/%09d", j), fmt.Sprintf("worker-%015d", j%64), 60_000))
			}
			m.Apply(Batch{Now: t0, Commands: cmds})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/lock")
		runtime.KeepAlive(m)
	}
}
