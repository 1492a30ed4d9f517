package partition

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/placement"
)

// benchWorkers is the load tool's default concurrency.
const benchWorkers = 64

// BenchmarkLockUnlock drives try-lock/unlock cycles from 64 goroutines
// straight into the partitions, without HTTP, to show what the Raft and disk
// pipeline alone can do.
func BenchmarkLockUnlock(b *testing.B) {
	for _, parts := range []int{1, 2, 4, 8} {
		for _, inflight := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("partitions=%d/inflight=%d", parts, inflight), func(b *testing.B) {
				n := startNode(b, "n1", b.TempDir(), "127.0.0.1:0", parts, func(c *Config) {
					c.MaxInflight = inflight
					c.Raft = DefaultRaftTimings()
					c.Raft.HeartbeatTimeout = 100 * time.Millisecond
					c.Raft.ElectionTimeout = 100 * time.Millisecond
					c.Raft.LeaderLeaseTimeout = 50 * time.Millisecond
				})
				n.bootstrapAlone()
				n.waitServing()
				driveLockUnlock(b, []*node{n}, n.set.For)
			})
		}
	}
}

// BenchmarkClusterLockUnlock is BenchmarkLockUnlock against three in-process
// nodes with production Raft timings, each command sent to its partition's
// leader: what replication to two followers, all fsyncing on this machine's
// one disk, allows before any HTTP is spent. It is an upper bound for the
// three-process cluster on the same machine, which also pays for HTTP,
// forwarding and three Go runtimes.
func BenchmarkClusterLockUnlock(b *testing.B) {
	for _, store := range LogStores() {
		for _, parts := range []int{1, 3} {
			b.Run(fmt.Sprintf("store=%s/partitions=%d", store, parts), func(b *testing.B) {
				benchCluster(b, store, parts)
			})
		}
	}
}

// benchCluster measures one store and partition count.
func benchCluster(b *testing.B, store LogStore, parts int) {
	c := startClusterWith(b, 3, parts, func(_ int, cfg *Config) {
		cfg.Raft = DefaultRaftTimings()
		cfg.LogStore = store
	})
	// Leaders are looked up once: a command that meets a leadership
	// change fails the benchmark rather than being re-routed.
	leaders := make([]*Group, parts)
	for p := range leaders {
		n := c.leaderOf(p)
		if n == nil {
			b.Fatalf("partition %d has no leader", p)
		}
		leaders[p] = n.set.Group(p)
	}
	driveLockUnlock(b, c.nodes, func(res string) *Group {
		return leaders[placement.Partition(res, parts)]
	})
}

// driveLockUnlock runs b.N try-locks over 10,000 keys from benchWorkers
// goroutines, unlocking each grant, on the group groupFor names, and
// reports commands per second and per Raft batch over nodes' proposers.
func driveLockUnlock(b *testing.B, nodes []*node, groupFor func(resource string) *Group) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range benchWorkers {
		wg.Go(func() {
			owner := fmt.Sprint("w", w)
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				res := fmt.Sprint("k", (w*7919+int(i))%10000)
				g := groupFor(res)
				r, err := g.Do(context.Background(), Request{Cmd: tryLock(res, owner, time.Minute), Durability: Persistent})
				if err != nil {
					b.Error(err)
					return
				}
				if r.Outcome == fsm.Locked {
					if _, err := g.Do(context.Background(), Request{Cmd: unlockCmd(res, owner), Durability: Persistent}); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	var batches, cmds uint64
	for _, n := range nodes {
		for _, g := range n.set.Groups() {
			bt, c := g.prop.stats()
			batches += bt
			cmds += c
		}
	}
	b.ReportMetric(float64(cmds)/el.Seconds(), "cmds/s")
	b.ReportMetric(float64(cmds)/float64(max(batches, 1)), "cmds/batch")
}
