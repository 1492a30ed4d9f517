package partition

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/placement"
)

// logBuffer collects a node's log lines for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// warnings returns a logger of warnings and errors into a fresh buffer.
func warnings() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelWarn})), b
}

// resourceIn returns the i-th resource name with prefix that partition p of
// count owns.
func resourceIn(prefix string, p, count, i int) string {
	for j := 0; ; j++ {
		res := fmt.Sprintf("%s-%d", prefix, j)
		if placement.Partition(res, count) == p {
			if i == 0 {
				return res
			}
			i--
		}
	}
}

// TestForceNewCluster loses two nodes of three for good and brings the
// third back alone with ForceNewCluster: it leads every partition by
// itself, with every lock and token it held, hands out tokens above every
// earlier one, and keeps being a single-voter group on later starts, with
// or without the flag.
func TestForceNewCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster")
	}
	eachLogStore(t, testForceNewCluster)
}

func testForceNewCluster(t *testing.T, store LogStore) {
	const count = 2
	c := startClusterWith(t, 3, count, func(_ int, cfg *Config) { cfg.LogStore = store })
	survivor := c.nodes[0]

	held := map[string]uint64{} // persistent lock → token, all owned by "keeper"
	// maxToken is the largest token handed out per durability and
	// partition: each has its own counter.
	maxToken := map[Durability][]uint64{Persistent: make([]uint64, count), Ephemeral: make([]uint64, count)}
	grant := func(d Durability, res string) {
		t.Helper()
		r := c.do(d, tryLock(res, "keeper", time.Hour))
		if r.Outcome != fsm.Locked {
			t.Fatalf("%v lock %s: %+v", d, res, r)
		}
		if d == Persistent {
			held[res] = r.Token
		}
		p := placement.Partition(res, count)
		maxToken[d][p] = max(maxToken[d][p], r.Token)
	}
	// The survivor must hold every acknowledged entry: what only the lost
	// nodes had is what recovery cannot bring back.
	survivorHasAll := func() {
		t.Helper()
		waitFor(t, 5*time.Second, "the survivor applies every grant", func() bool {
			for res, tok := range held {
				r, _ := survivor.set.For(res).machine.Get(time.Now().UnixMilli(), res)
				if r.Token != tok {
					return false
				}
			}
			return true
		})
	}

	for p := range count {
		for i := range 4 {
			grant(Persistent, resourceIn("before", p, count, i))
		}
		// An ephemeral grant reserves a block of tokens through Raft:
		// tokens after the recovery are above the block too.
		grant(Ephemeral, resourceIn("eph", p, count, 0))
	}
	survivorHasAll()
	// A snapshot of partition 0 on the survivor, then more entries: the
	// recovery replays the snapshot and the log after it.
	if err := survivor.set.Group(0).raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for p := range count {
		grant(Persistent, resourceIn("after-snapshot", p, count, 0))
	}
	survivorHasAll()
	for _, n := range c.nodes {
		n.stop()
	}

	// check waits until n serves every partition alone and finds every
	// lock with its token, then grants a new lock of each durability per
	// partition.
	check := func(n *node, round string) {
		t.Helper()
		n.waitServing()
		for p := range count {
			voters, err := n.set.Group(p).Voters()
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]string{"n1": n.addr}; !maps.Equal(voters, want) {
				t.Fatalf("%s: partition %d voters %v, want %v", round, p, voters, want)
			}
		}
		for res, tok := range held {
			if r := n.get(Persistent, res); r.Outcome != fsm.Got || r.Owner != "keeper" || r.Token != tok {
				t.Fatalf("%s: %s is %+v, want held by keeper with token %d", round, res, r, tok)
			}
		}
		for _, d := range []Durability{Persistent, Ephemeral} {
			for p := range count {
				res := resourceIn(fmt.Sprint(round, "-", d), p, count, 0)
				r := n.do(d, tryLock(res, "keeper", time.Hour))
				if r.Outcome != fsm.Locked || r.Token <= maxToken[d][p] {
					t.Fatalf("%s: new %v grant %s in partition %d: %+v, want Locked with a token above %d", round, d, res, p, r, maxToken[d][p])
				}
				maxToken[d][p] = r.Token
				if d == Persistent {
					held[res] = r.Token
				}
			}
		}
	}

	// The survivor comes back alone, on another port: the new configuration
	// carries the address it listens on now.
	log, logs := warnings()
	forced := startNode(t, "n1", survivor.dir, "127.0.0.1:0", count, withStore(store, func(cfg *Config) {
		cfg.ForceNewCluster = true
		cfg.Logger = log
	}))
	check(forced, "forced")
	out := logs.String()
	if got := strings.Count(out, "partition is now a single-voter group of this node"); got != count {
		t.Fatalf("%d partitions logged their recovery, want %d:\n%s", got, count, out)
	}
	if !strings.Contains(out, fmt.Sprintf("old_voters=\"[n1@%s n2@%s n3@%s]\"", survivor.addr, c.nodes[1].addr, c.nodes[2].addr)) ||
		!strings.Contains(out, fmt.Sprintf("new_voters=[n1@%s]", forced.addr)) {
		t.Fatalf("recovery log does not show the old and new voters:\n%s", out)
	}
	forced.stop()

	// Later starts without the flag: still this node alone, with the data.
	plain := startNode(t, "n1", survivor.dir, forced.addr, count, withStore(store, nil))
	check(plain, "plain")
	plain.stop()

	// The flag again, by mistake: nothing to do.
	log, logs = warnings()
	again := startNode(t, "n1", survivor.dir, forced.addr, count, withStore(store, func(cfg *Config) {
		cfg.ForceNewCluster = true
		cfg.Logger = log
	}))
	check(again, "again")
	if got := strings.Count(logs.String(), "already is a single-voter group of this node"); got != count {
		t.Fatalf("%d partitions were left as they were, want %d:\n%s", got, count, logs.String())
	}
}

// TestForceNewClusterLeavesFreshPartitionsAlone starts a node without data
// with ForceNewCluster: there is nothing to recover, and the node forms a
// cluster as usual.
func TestForceNewClusterLeavesFreshPartitionsAlone(t *testing.T) {
	log, logs := warnings()
	n := startNode(t, "n1", t.TempDir(), "127.0.0.1:0", 2, func(cfg *Config) {
		cfg.ForceNewCluster = true
		cfg.Logger = log
	})
	for _, g := range n.set.Groups() {
		if has, err := g.HasState(); err != nil || has {
			t.Fatalf("partition %d has state %v (%v) after a forced start on an empty directory", g.ID(), has, err)
		}
	}
	if got := strings.Count(logs.String(), "nothing to recover"); got != 2 {
		t.Fatalf("%d partitions said there was nothing to recover, want 2:\n%s", got, logs.String())
	}
	n.bootstrapAlone()
	n.waitServing()
	if r := n.do(Persistent, tryLock("fresh", "a", time.Hour)); r.Outcome != fsm.Locked {
		t.Fatalf("lock on a fresh forced node: %+v", r)
	}
}
