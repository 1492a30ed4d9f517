package testcluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/server"
)

// TestReplacementAtTheDeadNodesAddress: a node dies for good and its
// replacement (a new ID, an empty data directory) comes up at the same
// addresses, as a replacement machine given the old one's IP would. Raft
// refuses two servers at one address, so the newcomer was never added, and
// with two live voters of three the dead-node timeout may not remove the
// dead one: the cluster stayed one failure away from unavailable for good
// (the 30-minute chaos run, whose replacements reuse freed network
// namespaces, found it). The newcomer proves it holds the address — it
// answers there as itself — so the dead entry goes first, then the
// newcomer is added and promoted, and nothing acknowledged is lost.
func TestReplacementAtTheDeadNodesAddress(t *testing.T) {
	c := Start(t, Options{Nodes: 3})
	cl := c.Node(0).Client()
	defer cl.Close()
	var held []testutil.Reply
	for i := range 20 {
		held = append(held, lockRetrying(t, cl, lockReq(fmt.Sprintf("kept/%d", i), "a", time.Hour)))
	}
	dead := c.Node(2)
	c.Kill(2)
	n4, err := c.Join("n4", func(cfg *server.Config) {
		cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr = dead.HTTP, dead.Raft, dead.Gossip
	})
	if err != nil {
		t.Fatal(err)
	}
	waitVoters(t, cl, 30*time.Second, "n1", "n2", "n4")
	c.WaitReady(15 * time.Second)
	via := c.Node(n4).Client()
	defer via.Close()
	for i, h := range held {
		info := expect(t, testutil.Got)(via.GetInfo(Ctx(t), testutil.LockRequest{Resource: fmt.Sprintf("kept/%d", i), Durability: testutil.Persistent}))
		if info.Owner != "a" || info.Token() != h.Token() {
			t.Fatalf("kept/%d after the replacement: %v; want owner a, token %d", i, info, h.Token())
		}
	}
}

// TestReplacementAtADeadAddressWaitsForAQuorum: while removing the dead
// member whose address the newcomer took would leave its partitions
// without a live quorum (another voter is down too), nothing is removed
// and the newcomer waits; once that voter is back, the replacement goes
// through. Meanwhile the newcomer hears none of the Raft messages meant for
// the dead member (it would answer them with a blank log), so n1 alone
// leads nothing.
func TestReplacementAtADeadAddressWaitsForAQuorum(t *testing.T) {
	c := Start(t, Options{Nodes: 3})
	cl := c.Node(0).Client()
	defer cl.Close()
	held := lockRetrying(t, cl, lockReq("kept", "a", time.Hour))
	dead := c.Node(2)
	c.Kill(1)
	c.Kill(2)
	n4, err := c.Join("n4", func(cfg *server.Config) {
		cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr = dead.HTTP, dead.Raft, dead.Gossip
	})
	if err != nil {
		t.Fatal(err)
	}
	// Several autopilot rounds (200 ms apart): n3 must stay.
	time.Sleep(3 * time.Second)
	for p, voters := range configsOf(t, c.Node(0).Server()) {
		if !slices.Contains(voters, "n3") {
			t.Fatalf("partition %d dropped n3 with n2 down, leaving voters %v", p, voters)
		}
	}
	for _, g := range c.Node(n4).Server().Partitions().Groups() {
		if st := g.Status(); st.Term != 0 || st.LastIndex != 0 {
			t.Fatalf("n4 took Raft messages meant for n3 in partition %d: term %d, last index %d", st.ID, st.Term, st.LastIndex)
		}
	}
	for _, g := range c.Node(0).Server().Partitions().Groups() {
		if st := g.Status(); st.Serving {
			t.Fatalf("n1 serves partition %d with n2 down and n3 dead", st.ID)
		}
	}
	c.StartNode(1)
	waitVoters(t, cl, 30*time.Second, "n1", "n2", "n4")
	info := expect(t, testutil.Got)(cl.GetInfo(Ctx(t), testutil.LockRequest{Resource: "kept", Durability: testutil.Persistent}))
	if info.Owner != "a" || info.Token() != held.Token() {
		t.Fatalf("kept after the replacement: %v; want owner a, token %d", info, held.Token())
	}
}

// configsOf reads every partition's latest voters from srv itself (a node
// without a quorum still answers for its own configuration).
func configsOf(t *testing.T, srv *server.Server) [][]string {
	t.Helper()
	var out [][]string
	for _, g := range srv.Partitions().Groups() {
		cfg, err := g.Configuration()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cfg.Voters())
	}
	return out
}

// waitVoters waits until every partition, as cl's node reports it, has
// exactly the voters want and no non-voters.
func waitVoters(t *testing.T, cl *testutil.Client, timeout time.Duration, want ...string) {
	t.Helper()
	slices.Sort(want)
	last := "no answer yet"
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st, err := cl.Status(Ctx(t))
		if err != nil {
			last = err.Error()
			continue
		}
		done := true
		for _, p := range st.Partitions {
			voters := slices.Sorted(slices.Values(p.Voters))
			if !slices.Equal(voters, want) || len(p.NonVoters) > 0 {
				last = fmt.Sprintf("partition %d: voters %v, non-voters %v", p.ID, voters, p.NonVoters)
				done = false
				break
			}
		}
		if done {
			return
		}
	}
	t.Fatalf("voters %v not reached within %v; last seen: %s", want, timeout, last)
}

// TestNoMemberOnAnotherNodesWord: gossip can name a joining node at an
// address where some other node answers — in the chaos run, a node removed
// a moment before, whose stale "joining" record still circulated while its
// replacement already held its address. The cluster added the stale ID as
// a non-voter on the strength of the replacement's reply and replicated
// to the replacement under that ID. Now a probe counts only when the node
// that answers is the one asked for, so the ghost is never added.
func TestNoMemberOnAnotherNodesWord(t *testing.T) {
	c := Start(t, Options{Nodes: 3})
	// A node of another cluster answers at the ghost's address.
	other := Start(t, Options{Nodes: 1, Mutate: func(_ int, cfg *server.Config) { cfg.Join = nil }})
	ghost, err := membership.Start(membership.Config{
		NodeID:     "ghost",
		BindAddr:   testutil.FreeAddr(t),
		HTTPAddr:   other.Node(0).HTTP,
		RaftAddr:   other.Node(0).Raft,
		Partitions: 3,
		LogStore:   string(partition.DefaultLogStore),
		Joining:    true,
		Join:       []string{c.Node(0).Gossip},
		Timings:    membership.FastTimings(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Kill()
	cl := c.Node(0).Client()
	defer cl.Close()
	considered := func() bool {
		for i := range 3 {
			if strings.Contains(c.Logs(i), "node=ghost") {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) || !considered() {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("no autopilot ever looked at the ghost: the test proves nothing")
		}
		st, err := cl.Status(Ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Partitions {
			if slices.Contains(p.NonVoters, "ghost") || slices.Contains(p.Voters, "ghost") {
				t.Fatalf("partition %d took in the ghost: voters %v, non-voters %v", p.ID, p.Voters, p.NonVoters)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
