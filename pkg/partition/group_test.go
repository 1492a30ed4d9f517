package partition

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/clock"
	"github.com/kahuna-go/kahuna/pkg/fsm"
)

func TestLockCycleBothDurabilities(t *testing.T) {
	n := startSingle(t, 4, nil)
	for _, d := range []Durability{Persistent, Ephemeral} {
		t.Run(d.String(), func(t *testing.T) {
			n.t = t
			r := n.do(d, tryLock("job", "a", time.Minute))
			if r.Outcome != fsm.Locked || !r.Fresh || r.Token == 0 {
				t.Fatalf("lock: %+v", r)
			}
			tok := r.Token
			if r := n.do(d, tryLock("job", "b", time.Minute)); r.Outcome != fsm.Busy || r.Owner != "a" {
				t.Fatalf("second owner: %+v", r)
			}
			if r := n.do(d, tryLock("job", "a", time.Minute)); r.Outcome != fsm.Locked || r.Token != tok || r.Fresh {
				t.Fatalf("idempotent retry: %+v", r)
			}
			if r := n.do(d, extendCmd("job", "a", 2*time.Minute)); r.Outcome != fsm.Extended || r.Token != tok {
				t.Fatalf("extend: %+v", r)
			}
			if r := n.get(d, "job"); r.Outcome != fsm.Got || r.Owner != "a" || r.Token != tok || r.ExpiresIn < 119_000 {
				t.Fatalf("get: %+v", r)
			}
			if r := n.do(d, unlockCmd("job", "b")); r.Outcome != fsm.NotOwner {
				t.Fatalf("unlock by stranger: %+v", r)
			}
			if r := n.do(d, unlockCmd("job", "a")); r.Outcome != fsm.Unlocked {
				t.Fatalf("unlock: %+v", r)
			}
			if r := n.get(d, "job"); r.Outcome != fsm.NotFound {
				t.Fatalf("get after unlock: %+v", r)
			}
			if r := n.do(d, tryLock("job", "b", time.Minute)); r.Outcome != fsm.Locked || r.Token <= tok {
				t.Fatalf("relock: %+v (previous token %d)", r, tok)
			}
		})
	}
	// The two durabilities are separate namespaces.
	if r := n.get(Persistent, "job"); r.Owner != "b" {
		t.Fatalf("persistent: %+v", r)
	}
	n.do(Ephemeral, unlockCmd("job", "b"))
	if r := n.get(Persistent, "job"); r.Outcome != fsm.Got {
		t.Fatalf("ephemeral unlock touched the persistent lock: %+v", r)
	}
}

// TestGroupCommit checks that concurrent commands share Raft entries.
func TestGroupCommit(t *testing.T) {
	n := startSingle(t, 1, nil)
	g := n.set.Group(0)
	b0, c0 := g.prop.stats()
	const clients = 200
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := g.Do(context.Background(), Request{Cmd: tryLock(fmt.Sprint("k", i), "o", time.Minute), Durability: Persistent})
			if err == nil && res.Outcome != fsm.Locked {
				err = fmt.Errorf("outcome %v", res.Outcome)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b1, c1 := g.prop.stats()
	batches, cmds := b1-b0, c1-c0
	if cmds != clients {
		t.Fatalf("proposed %d commands, want %d", cmds, clients)
	}
	if batches >= cmds/2 {
		t.Fatalf("%d commands took %d Raft entries: no group commit", cmds, batches)
	}
	t.Logf("%d commands in %d Raft entries", cmds, batches)
	if got := g.machine.Len(); got != clients {
		t.Fatalf("table holds %d locks", got)
	}
}

// TestRestart checks, in-process, that persistent locks survive a restart
// from the data directory and ephemeral ones do not, while ephemeral tokens
// keep growing.
func TestRestart(t *testing.T) { eachLogStore(t, testRestart) }

func testRestart(t *testing.T, store LogStore) {
	dir := t.TempDir()
	n := startNode(t, "n1", dir, "127.0.0.1:0", 2, withStore(store, nil))
	n.bootstrapAlone()
	n.waitServing()
	p := n.do(Persistent, tryLock("keep", "a", time.Hour))
	e := n.do(Ephemeral, tryLock("gone", "a", time.Hour))
	before := n.get(Persistent, "keep")
	n.stop()

	start := time.Now()
	n2 := startNode(t, "n1", dir, n.addr, 2, withStore(store, nil))
	n2.bootstrapAlone() // harmless on a node with state
	n2.waitServing()
	down := time.Since(start)

	got := n2.get(Persistent, "keep")
	if got.Outcome != fsm.Got || got.Owner != "a" || got.Token != p.Token || got.AcquiredAt != before.AcquiredAt {
		t.Fatalf("persistent lock after restart: %+v, before %+v", got, before)
	}
	// Leases are never shortened by a restart; they may be lengthened by at
	// most the time without a leader.
	if got.ExpiresAt < before.ExpiresAt || got.ExpiresAt > before.ExpiresAt+down.Milliseconds()+1000 {
		t.Fatalf("expiry moved from %d to %d (down %v)", before.ExpiresAt, got.ExpiresAt, down)
	}
	if r := n2.get(Ephemeral, "gone"); r.Outcome != fsm.NotFound {
		t.Fatalf("ephemeral lock survived restart: %+v", r)
	}
	e2 := n2.do(Ephemeral, tryLock("gone", "b", time.Hour))
	if e2.Token <= e.Token {
		t.Fatalf("ephemeral token went from %d to %d across restart", e.Token, e2.Token)
	}
	p2 := n2.do(Persistent, tryLock("other", "b", time.Hour))
	if n2.set.For("other") == n2.set.For("keep") && p2.Token <= p.Token {
		t.Fatalf("persistent token went from %d to %d", p.Token, p2.Token)
	}
}

// TestSnapshotRestore forces Raft snapshots and log truncation, then checks
// that a restart rebuilds the same state from snapshot plus log.
func TestSnapshotRestore(t *testing.T) { eachLogStore(t, testSnapshotRestore) }

func testSnapshotRestore(t *testing.T, store LogStore) {
	dir := t.TempDir()
	small := withStore(store, func(c *Config) {
		c.Raft.SnapshotThreshold = 16
		c.Raft.TrailingLogs = 4
	})
	n := startNode(t, "n1", dir, "127.0.0.1:0", 1, small)
	n.bootstrapAlone()
	n.waitServing()
	want := map[string]uint64{}
	for i := range 300 {
		res := fmt.Sprint("r", i)
		r := n.do(Persistent, tryLock(res, "o", time.Hour))
		want[res] = r.Token
		if i%3 == 0 {
			n.do(Persistent, unlockCmd(res, "o"))
			delete(want, res)
		}
		if i == 150 {
			if err := n.set.Group(0).raft.Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := n.set.Group(0).raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	n.do(Persistent, tryLock("after-snapshot", "o", time.Hour))
	n.stop()

	n2 := startNode(t, "n1", dir, n.addr, 1, small)
	n2.waitServing()
	for res, tok := range want {
		if r := n2.get(Persistent, res); r.Outcome != fsm.Got || r.Token != tok {
			t.Fatalf("%s after restore: %+v want token %d", res, r, tok)
		}
	}
	if r := n2.get(Persistent, "after-snapshot"); r.Outcome != fsm.Got {
		t.Fatalf("entry after the snapshot lost: %+v", r)
	}
	if got := n2.set.Group(0).machine.Len(); got != len(want)+1 {
		t.Fatalf("restored %d entries, want %d", got, len(want)+1)
	}
}

// TestExpiredLocksAreReclaimed checks that the leader's periodic expire
// command empties the table of short-lived locks, for both durabilities.
func TestExpiredLocksAreReclaimed(t *testing.T) {
	n := startSingle(t, 2, func(c *Config) {
		c.Tick = 20 * time.Millisecond
		c.Grace = time.Millisecond
		c.MaxExpirePerTick = 50 // forces several rounds
	})
	for i := range 500 {
		for _, d := range []Durability{Persistent, Ephemeral} {
			n.do(d, tryLock(fmt.Sprint("short-", i), "o", 2*time.Second))
		}
	}
	total := func() (p, e int) {
		for _, g := range n.set.Groups() {
			p += g.machine.Len()
			if tm := g.term(); tm != nil {
				e += tm.ephemeral.len()
			}
		}
		return p, e
	}
	if p, e := total(); p != 500 || e != 500 {
		t.Fatalf("locks were reclaimed before they expired: %d persistent, %d ephemeral", p, e)
	}
	waitFor(t, 10*time.Second, "expired locks are reclaimed", func() bool {
		p, e := total()
		return p == 0 && e == 0
	})
	// Tokens keep growing after the entries are gone.
	r := n.do(Persistent, tryLock("short-0", "o", time.Minute))
	if r.Token <= 1 || !r.Fresh {
		t.Fatalf("relock after reclaim: %+v", r)
	}
}

func TestLinearizableGetSeesAcknowledgedWrites(t *testing.T) {
	n := startSingle(t, 2, nil)
	for i := range 200 {
		res := fmt.Sprint("lin-", i%7)
		owner := fmt.Sprint("o", i)
		n.do(Persistent, fsm.Command{Op: fsm.OpForceUnlock, Resource: res})
		w := n.do(Persistent, tryLock(res, owner, time.Minute))
		if r := n.get(Persistent, res); r.Owner != owner || r.Token != w.Token {
			t.Fatalf("read after write %d: %+v, wrote %+v", i, r, w)
		}
	}
}

func TestRejectsBadRequests(t *testing.T) {
	n := startSingle(t, 1, nil)
	g := n.set.Group(0)
	for _, req := range []Request{
		{Cmd: fsm.Command{Op: fsm.OpExpire}, Durability: Persistent},
		{Cmd: fsm.Command{Op: fsm.OpPromote}, Durability: Persistent},
		{Cmd: tryLock("x", "o", time.Second), Durability: 7},
	} {
		if _, err := g.Do(context.Background(), req); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v: %v", req, err)
		}
	}
	if r := n.do(Persistent, tryLock("", "o", time.Second)); r.Outcome != fsm.Invalid {
		t.Fatalf("empty resource: %+v", r)
	}
}

// TestEphemeralTokenBlocksRefill uses tiny token blocks so that grants keep
// outrunning the reservations; every grant must still succeed, with tokens
// that only grow.
func TestEphemeralTokenBlocksRefill(t *testing.T) {
	n := startSingle(t, 1, func(c *Config) { c.EphemeralBlock = 4 })
	var last uint64
	for i := range 200 {
		r := n.do(Ephemeral, tryLock(fmt.Sprint("e", i), "o", time.Minute))
		if r.Outcome != fsm.Locked || r.Token <= last {
			t.Fatalf("grant %d: %+v after token %d", i, r, last)
		}
		last = r.Token
	}
	if c := n.set.Group(0).machine.Counters(); c.EphemeralFence < last {
		t.Fatalf("token %d handed out beyond the reserved %d", last, c.EphemeralFence)
	}
}

// TestLeasesRunOnTheInjectedClock drives lease expiry with a manual clock,
// without sleeping, and checks that a clock jumping backwards never revives
// or lengthens anything it should not.
func TestLeasesRunOnTheInjectedClock(t *testing.T) {
	clk := clock.NewManual(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	n := startSingle(t, 1, func(c *Config) { c.Clock = clk })
	for _, d := range []Durability{Persistent, Ephemeral} {
		res := "clocked-" + d.String()
		first := n.do(d, tryLock(res, "a", 10*time.Second))
		clk.Advance(9 * time.Second)
		if r := n.get(d, res); r.Outcome != fsm.Got || r.ExpiresIn != 1000 {
			t.Fatalf("%v after 9 s: %+v", d, r)
		}
		if r := n.do(d, tryLock(res, "b", time.Second)); r.Outcome != fsm.Busy {
			t.Fatalf("%v: taken before expiry: %+v", d, r)
		}
		clk.Advance(time.Second)
		if r := n.get(d, res); r.Outcome != fsm.NotFound {
			t.Fatalf("%v at expiry: %+v", d, r)
		}
		second := n.do(d, tryLock(res, "b", 10*time.Second))
		if second.Outcome != fsm.Locked || second.Token <= first.Token {
			t.Fatalf("%v: relock after expiry %+v (first token %d)", d, second, first.Token)
		}
		// The clock jumps an hour back: b's lease does not end early, and
		// once the clock is back it has not grown by the jump either.
		clk.Advance(-time.Hour)
		if r := n.do(d, tryLock(res, "c", time.Second)); r.Outcome != fsm.Busy || r.Owner != "b" {
			t.Fatalf("%v while the clock is behind: %+v", d, r)
		}
		clk.Advance(time.Hour + 5*time.Second)
		if r := n.get(d, res); r.Outcome != fsm.Got || r.Owner != "b" || r.ExpiresIn != 5000 {
			t.Fatalf("%v after a backwards jump: %+v", d, r)
		}
	}
}

// TestExpiryObservedByAReadSurvivesALeaderChange is the regression test for
// a read that saw a lock expired by the leader's clock while the log still
// had it live: the next leader resumes the lease clock from the log and
// would have shown the lock live again.
func TestExpiryObservedByAReadSurvivesALeaderChange(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, "n1", dir, "127.0.0.1:0", 1, nil) // no ticks: nothing else logs time
	n.bootstrapAlone()
	n.waitServing()
	n.do(Persistent, tryLock("brief", "a", 300*time.Millisecond))
	time.Sleep(400 * time.Millisecond)
	if r := n.get(Persistent, "brief"); r.Outcome != fsm.NotFound {
		t.Fatalf("read after expiry: %+v", r)
	}
	n.stop()
	n2 := startNode(t, "n1", dir, n.addr, 1, nil)
	n2.waitServing()
	if r := n2.get(Persistent, "brief"); r.Outcome != fsm.NotFound {
		t.Fatalf("a lock read as expired is live again after a leader change: %+v", r)
	}
}
