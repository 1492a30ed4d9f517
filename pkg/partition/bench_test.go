package partition

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/fsm"
)

// BenchmarkLockUnlock drives try-lock/unlock cycles from 64 goroutines
// straight into the partitions, without HTTP, to show what the Raft and disk
// pipeline alone can do.
func BenchmarkLockUnlock(b *testing.B) {
	for _, parts := range []int{1, 2, 4, 8} {
		for _, inflight := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("partitions=%d/inflight=%d", parts, inflight), func(b *testing.B) {
				t := &testing.T{}
				n := startNode(t, "n1", b.TempDir(), "127.0.0.1:0", parts, func(c *Config) {
					c.MaxInflight = inflight
					c.Raft = DefaultRaftTimings()
					c.Raft.HeartbeatTimeout = 100 * time.Millisecond
					c.Raft.ElectionTimeout = 100 * time.Millisecond
					c.Raft.LeaderLeaseTimeout = 50 * time.Millisecond
				})
				defer n.stop()
				n.bootstrapAlone()
				waitFor(t, 10*time.Second, "serving", n.set.Serving)
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := range 64 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						owner := fmt.Sprint("w", w)
						for next.Add(1) <= int64(b.N) {
							res := fmt.Sprint("k", (w*7919+int(next.Load()))%10000)
							g := n.set.For(res)
							r, err := g.Do(context.Background(), Request{Cmd: tryLock(res, owner, time.Minute), Durability: Persistent})
							if err != nil {
								b.Error(err)
								return
							}
							if r.Outcome == fsm.Locked {
								g.Do(context.Background(), Request{Cmd: unlockCmd(res, owner), Durability: Persistent})
							}
						}
					}()
				}
				wg.Wait()
				el := time.Since(start)
				var batches, cmds uint64
				for _, g := range n.set.Groups() {
					bt, c := g.prop.stats()
					batches += bt
					cmds += c
				}
				b.ReportMetric(float64(cmds)/el.Seconds(), "cmds/s")
				b.ReportMetric(float64(cmds)/float64(max(batches, 1)), "cmds/batch")
			})
		}
	}
}
