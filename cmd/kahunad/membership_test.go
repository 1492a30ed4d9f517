package main

// Membership changes of a running cluster of real processes (CONTRACT §7):
// nodes join with only --join, are removed through the API, are replaced
// after a crash, and bad joins are refused, while a client keeps working.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/client"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// joinNode makes a new node that joins c through its first node's gossip
// address, with an empty data directory and no --bootstrap-expect.
func (c *procCluster) joinNode(id string, extra ...string) *testutil.Node {
	n := testutil.NewNode(c.t, kahunadBin)
	n.Args = append([]string{"--node-id", id, "--join", c.nodes[0].GossipAddr}, extra...)
	return n
}

// goClient is a pkg/client over the given nodes' HTTP addresses.
func goClient(t *testing.T, nodes ...*testutil.Node) *client.Client {
	t.Helper()
	var eps []string
	for _, n := range nodes {
		eps = append(eps, "http://"+n.HTTPAddr)
	}
	c, err := client.New(client.Config{Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// status reads the cluster status through node n.
func status(t *testing.T, n *testutil.Node) *client.Status {
	t.Helper()
	st, err := goClient(t, n).ClusterStatus(ctxT(t))
	if err != nil {
		t.Fatalf("status from %s: %v", n.HTTPAddr, err)
	}
	return st
}

// waitVoters waits until every partition, as n sees it, has exactly the
// voters want and no non-voters.
func waitVoters(t *testing.T, n *testutil.Node, timeout time.Duration, want ...string) *client.Status {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(timeout)
	var last string
	for {
		st, err := goClient(t, n).ClusterStatus(ctxT(t))
		if err == nil {
			ok := true
			last = ""
			for _, p := range st.Partitions {
				last += fmt.Sprintf(" p%d voters %v non-voters %v;", p.ID, p.Voters, p.NonVoters)
				if !slices.Equal(p.Voters, want) || len(p.NonVoters) > 0 {
					ok = false
				}
			}
			if ok {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("voters not %v within %v:%s", want, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockLoad is a client workload of try-lock, then unlock when granted,
// from several goroutines through pkg/client, which retries "must retry"
// answers within each operation's deadline. Anything else than a grant,
// a busy lock or an unlock is a failure.
type lockLoad struct {
	ops, failed atomic.Int64
	mu          sync.Mutex
	errs        []string
	stop        context.CancelFunc
	wg          sync.WaitGroup
}

func startLoad(t *testing.T, c *client.Client, workers int) *lockLoad {
	ctx, stop := context.WithCancel(context.Background())
	l := &lockLoad{stop: stop}
	for w := range workers {
		l.wg.Go(func() {
			owner := fmt.Sprintf("load-%d", w)
			for ctx.Err() == nil {
				res := fmt.Sprintf("load/%d", rand.IntN(200))
				opCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
				lock, err := c.TryLock(opCtx, res, client.WithOwner(owner), client.WithLease(10*time.Second))
				if err == nil {
					err = lock.Unlock(opCtx)
				} else if errors.Is(err, client.ErrBusy) {
					err = nil
				}
				cancel()
				if ctx.Err() != nil {
					return // the load was stopped mid-operation
				}
				l.ops.Add(1)
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, err.Error())
					}
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

// end stops the load and fails the test if any operation failed.
func (l *lockLoad) end(t *testing.T) {
	t.Helper()
	l.stop()
	l.wg.Wait()
	t.Logf("load: %d operations, %d failed", l.ops.Load(), l.failed.Load())
	if l.ops.Load() == 0 {
		t.Error("the load made no operations")
	}
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d client operations failed, e.g. %q", n, l.errs)
	}
}

// expectNoElections checks, from the logs, that the removed processes
// never got past a pre-vote: Raft's pre-vote asks the members first, and
// they refuse a node outside their configuration, so a removed node can
// neither win an election nor make a member adopt a newer term. (Terms
// alone would not show it: on a loaded machine a leader may miss its
// lease and be re-elected for reasons of its own.)
func expectNoElections(t *testing.T, members []*testutil.Process, removed ...*testutil.Process) {
	t.Helper()
	for _, p := range removed {
		for _, bad := range []string{"pre-vote successful", "election won"} {
			if strings.Contains(p.Output(), bad) {
				t.Errorf("a removed node logged %q:\n%s", bad, p.Output())
			}
		}
	}
	for _, p := range members {
		if strings.Contains(p.Output(), "rejecting vote request since node is not in configuration") {
			t.Errorf("a member received a vote request (past pre-vote) from a removed node:\n%s", p.Output())
		}
	}
}

// TestJoinAndRemoveUnderLoad grows a three-node cluster to five with nodes
// that know only --join, then shrinks it back to three through the API
// (one node removed through another, one through itself), while a client
// works through the three original nodes: no operation fails, every lock
// keeps its token, the removed processes stop serving without disturbing
// the cluster, and one of them refuses to start again with its old data.
func TestJoinAndRemoveUnderLoad(t *testing.T) {
	t.Parallel()
	c := startProcCluster(t, 3)
	cli := goClient(t, c.nodes...)
	kept := map[string]int64{}
	for i := range 5 {
		res := fmt.Sprintf("kept/%d", i)
		kept[res] = lock(t, c.procs[i%3].Client(), res, "keeper")
	}
	load := startLoad(t, cli, 8)

	// Join two nodes. Each answers /readyz 503 until it is a voter of
	// every partition.
	n4, n5 := c.joinNode("p4"), c.joinNode("p5")
	p4 := n4.Start(t)
	sawJoining := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		code, body, err := p4.Client().Get(ctxT(t), wire.PathReadyz)
		if err != nil {
			continue
		}
		if code == 200 {
			break
		}
		if strings.Contains(string(body), "joining") || strings.Contains(string(body), "not a voter") {
			sawJoining = true
		}
	}
	if !sawJoining {
		t.Error("the joining node never answered /readyz 503 while joining")
	}
	if err := p4.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	p5 := n5.StartReady(t)
	st := waitVoters(t, c.nodes[0], 10*time.Second, "p1", "p2", "p3", "p4", "p5")
	for _, n := range st.Nodes {
		if n.Role != wire.RoleVoter {
			t.Errorf("node %s has role %q after joining, want voter", n.ID, n.Role)
		}
	}
	// The newcomers hold every lock too: read through them.
	for res, tok := range kept {
		expectHeld(t, p5.Client(), res, "keeper", tok)
	}

	// Remove p5 through p1, and p4 through itself.
	if err := goClient(t, c.nodes[0]).RemoveNode(ctxT(t), "p5"); err != nil {
		t.Fatalf("remove p5 through p1: %v", err)
	}
	if err := goClient(t, n4).RemoveNode(ctxT(t), "p4"); err != nil {
		t.Fatalf("remove p4 through itself: %v", err)
	}
	waitVoters(t, c.nodes[1], 10*time.Second, "p1", "p2", "p3")
	if err := goClient(t, c.nodes[0]).RemoveNode(ctxT(t), "p5"); !errors.Is(err, client.ErrUnknownNode) {
		t.Errorf("removing p5 a second time: %v, want ErrUnknownNode", err)
	}

	// The removed processes keep running but serve nothing.
	for _, p := range []*testutil.Process{p4, p5} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body, err := p.Client().Get(ctxT(t), wire.PathReadyz)
			if err == nil && code == 503 && strings.Contains(string(body), "removed") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("removed node's /readyz: %d %s %v, want 503 naming the removal; its log:\n%s", code, body, err, p.Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
		rep, err := p.Client().TryLock(ctxT(t), testutil.LockRequest{Resource: "after-removal", Owner: "x", ExpiresMs: 60_000, Durability: testutil.Persistent})
		if err != nil || rep.Type != testutil.MustRetry {
			t.Errorf("try-lock on a removed node: %v %v, want 101", rep, err)
		}
	}
	// ... and never disturb the cluster.
	time.Sleep(2 * time.Second)
	expectNoElections(t, c.procs, p4, p5)
	load.end(t)
	for res, tok := range kept {
		expectHeld(t, c.procs[0].Client(), res, "keeper", tok)
	}

	// A removed node refuses to start again with its old data.
	p5.Stop()
	p5 = n5.Start(t)
	expectExit(t, p5, 1, "removed from its cluster", "--join")
	p4.Kill()
}

// TestRemoveRefusals: an unknown node is 404; a removal that would leave a
// partition without a quorum of live voters is 409 and changes nothing.
func TestRemoveRefusals(t *testing.T) {
	t.Parallel()
	c := startProcCluster(t, 3)
	cli := goClient(t, c.nodes[0])
	if err := cli.RemoveNode(ctxT(t), "nobody"); !errors.Is(err, client.ErrUnknownNode) {
		t.Errorf("removing an unknown node: %v, want ErrUnknownNode", err)
	}
	if err := cli.RemoveNode(ctxT(t), ""); !errors.Is(err, client.ErrInvalidInput) {
		t.Errorf("removing the empty ID: %v, want ErrInvalidInput", err)
	}
	c.procs[2].Kill()
	if err := cli.RemoveNode(ctxT(t), "p2"); !errors.Is(err, client.ErrWouldLoseQuorum) {
		t.Errorf("removing p2 while p3 is down: %v, want ErrWouldLoseQuorum", err)
	}
	// Nothing changed: p2 still votes everywhere and the cluster serves.
	waitVoters(t, c.nodes[0], time.Second, "p1", "p2", "p3")
	lock(t, c.procs[0].Client(), "still-served", "owner")
}

// TestJoinRefusals starts nodes whose settings contradict the cluster's:
// each exits 1 with a message saying why, creates nothing in its data
// directory, and leaves the cluster's configuration as it was.
func TestJoinRefusals(t *testing.T) {
	t.Parallel()
	c := startProcCluster(t, 3)
	for _, tc := range []struct {
		name string
		id   string
		args []string
		want []string
	}{
		{"partition count", "p4", []string{"--partitions", "5"}, []string{"has 3 partitions", "--partitions is 5"}},
		{"log store", "p4", []string{"--log-store", "boltdb"}, []string{"uses --log-store wal", "--log-store is boltdb"}},
		{"an ID the cluster has", "p2", nil, []string{`"p2"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := c.joinNode(tc.id, tc.args...)
			p := n.Start(t)
			if code := p.Wait(20 * time.Second); code != 1 {
				t.Fatalf("exit code %d, want 1; output:\n%s", code, p.Output())
			}
			for _, w := range append(tc.want, "cannot join the cluster") {
				if !strings.Contains(p.Output(), w) {
					t.Errorf("output does not say %q:\n%s", w, p.Output())
				}
			}
			if _, err := os.Stat(filepath.Join(n.DataDir, "node.json")); err == nil {
				t.Error("the refused node wrote node.json")
			}
		})
	}
	waitVoters(t, c.nodes[0], time.Second, "p1", "p2", "p3")
	for _, n := range status(t, c.nodes[0]).Nodes {
		if n.Role != wire.RoleVoter && n.Role != wire.RoleNone {
			t.Errorf("node %s has role %q after the refused joins", n.ID, n.Role)
		}
	}
}

// TestReplaceDeadNode loses a node and its disk for good, starts a new
// node with --join in its place, and checks that the dead member is
// removed automatically once it has been failed longer than
// --dead-node-timeout, with every lock and token kept and new tokens
// higher.
func TestReplaceDeadNode(t *testing.T) {
	t.Parallel()
	c := startProcCluster(t, 3, "--dead-node-timeout", "2s")
	kept := map[string]int64{}
	for i := range 6 {
		res := fmt.Sprintf("kept/%d", i)
		kept[res] = lock(t, c.procs[i%3].Client(), res, "keeper")
	}
	load := startLoad(t, goClient(t, c.nodes[0], c.nodes[1]), 4)

	c.procs[2].Kill()
	if err := os.RemoveAll(c.nodes[2].DataDir); err != nil {
		t.Fatal(err)
	}
	// With two live voters of three the cluster must not shrink by
	// itself: it waits for a replacement.
	time.Sleep(4 * time.Second)
	waitVoters(t, c.nodes[0], time.Second, "p1", "p2", "p3")

	n4 := c.joinNode("p4", "--dead-node-timeout", "2s")
	p4 := n4.StartReady(t)
	waitVoters(t, c.nodes[0], 20*time.Second, "p1", "p2", "p4")
	load.end(t)
	for res, tok := range kept {
		expectHeld(t, p4.Client(), res, "keeper", tok)
		rep, err := p4.Client().TryUnlock(ctxT(t), testutil.LockRequest{Resource: res, Owner: "keeper", Durability: testutil.Persistent})
		if err != nil || rep.Type != testutil.Unlocked {
			t.Fatalf("unlock %s: %v %v", res, rep, err)
		}
		if next := lock(t, p4.Client(), res, "successor"); next <= tok {
			t.Errorf("%s: the grant after the replacement got token %d, not above %d", res, next, tok)
		}
	}
}

// TestRemovedWhileDown removes a node that is stopped, then starts it
// again with its old data directory: the removal never reached its log, so
// the cluster tells it; it stops serving without disturbing the cluster
// (it never gets past a pre-vote), and from then on refuses to start.
func TestRemovedWhileDown(t *testing.T) {
	t.Parallel()
	c := startProcCluster(t, 3)
	tok := lock(t, c.procs[0].Client(), "kept", "keeper")
	c.procs[2].Stop()
	if err := goClient(t, c.nodes[0]).RemoveNode(ctxT(t), "p3"); err != nil {
		t.Fatalf("remove the stopped p3: %v", err)
	}
	waitVoters(t, c.nodes[1], 5*time.Second, "p1", "p2")

	p3 := c.nodes[2].Start(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body, err := p3.Client().Get(ctxT(t), wire.PathReadyz)
		if err == nil && code == 503 && strings.Contains(string(body), "removed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the removed node's /readyz: %d %s %v, want 503 naming the removal; its log:\n%s", code, body, err, p3.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(p3.Output(), "removed from the cluster") {
		t.Errorf("the removed node does not say it was removed:\n%s", p3.Output())
	}
	time.Sleep(2 * time.Second)
	expectNoElections(t, c.procs[:2], p3)
	expectHeld(t, c.procs[1].Client(), "kept", "keeper", tok)
	p3.Stop()
	p3 = c.nodes[2].Start(t)
	expectExit(t, p3, 1, "removed from its cluster")
}

// TestLeadersFollowMembership: a node that joins takes its share of the
// partition leaderships within 5 s of becoming ready, and a node being
// removed hands its leaderships over before it goes.
func TestLeadersFollowMembership(t *testing.T) {
	t.Parallel()
	c := startProcCluster(t, 3, "--partitions", "6")
	n4 := c.joinNode("p4")
	p4 := n4.StartReady(t)
	ready := time.Now()
	spread := func(st *client.Status) (map[string]int, bool) {
		count := map[string]int{}
		for _, n := range st.Nodes {
			if n.Role == wire.RoleVoter {
				count[n.ID] = 0
			}
		}
		for _, p := range st.Partitions {
			if p.Leader == "" {
				return count, false
			}
			count[p.Leader]++
		}
		lo, hi := len(st.Partitions), 0
		for _, n := range count {
			lo, hi = min(lo, n), max(hi, n)
		}
		return count, hi-lo <= 1
	}
	for {
		count, ok := spread(status(t, c.nodes[0]))
		if ok && count["p4"] >= 1 {
			t.Logf("leaders spread %v %v after p4 was ready", count, time.Since(ready).Round(10*time.Millisecond))
			break
		}
		if time.Since(ready) > 5*time.Second {
			t.Fatalf("leaders %v not spread over four nodes within 5 s of p4 being ready", count)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := goClient(t, c.nodes[0]).RemoveNode(ctxT(t), "p4"); err != nil {
		t.Fatal(err)
	}
	st := waitVoters(t, c.nodes[0], 5*time.Second, "p1", "p2", "p3")
	for _, p := range st.Partitions {
		if p.Leader == "p4" {
			t.Errorf("partition %d is still led by the removed p4", p.ID)
		}
	}
	if !strings.Contains(p4.Output(), "moving a leadership off this node before its removal") {
		t.Errorf("p4 did not hand its leaderships over before its removal:\n%s", p4.Output())
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		count, ok := spread(status(t, c.nodes[0]))
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaders %v not spread over three nodes within 5 s of the removal", count)
		}
	}
}
