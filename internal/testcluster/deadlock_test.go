package testcluster

import (
	"context"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
)

// TestElectionAfterAPromotionALaggingVoterMissed: a voter S misses the
// promotion of a new node N (it was cut off), N receives an entry that
// the other old voter O does not (O is cut off then), and the leader
// dies. The three live voters of four are a quorum, yet no leader is ever
// elected: O and S lack N's last entry, so N does not vote for them; S,
// whose configuration does not have N as a voter, refuses N's vote
// requests (hashicorp/raft rejects vote requests from servers that are
// not voters in its own latest configuration); S's log is the shortest.
// The membership nemesis of the chaos suite ran into this.
func TestElectionAfterAPromotionALaggingVoterMissed(t *testing.T) {
	c := Start(t, Options{Nodes: 3, Partitions: 1})
	l := c.LeaderIndex(0)
	if l < 0 {
		t.Fatal("no leader")
	}
	o, s := (l+1)%3, (l+2)%3
	cl := c.Node(l).Client()
	defer cl.Close()
	c.Cut(func(a, b int) bool { return a == s || b == s })
	n, err := c.Join("n4", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.WaitFor(20*time.Second, "n4 is a voter", func() bool {
		st, err := c.Node(l).Client().Status(Ctx(t))
		return err == nil && len(st.Partitions) == 1 && len(st.Partitions[0].Voters) == 4
	})
	before := lockRetrying(t, cl, lockReq("before", "a", time.Hour))
	// O cut off too: the next entry reaches N only.
	c.Cut(func(a, b int) bool { return a == s || b == s || a == o || b == o })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, _ = cl.TryLock(ctx, lockReq("only-on-n4", "a", time.Hour))
	cancel()
	c.Kill(l)
	c.Cut(func(a, b int) bool { return false })
	deadline := time.Now().Add(15 * time.Second)
	for c.LeaderIndex(0) < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no leader 15 s after the old one died; live voters %s, %s, %s", c.Node(o).ID, c.Node(s).ID, c.Node(n).ID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The new leader has every acknowledged write.
	nl := c.Node(c.LeaderIndex(0)).Client()
	defer nl.Close()
	info := expect(t, testutil.Got)(nl.GetInfo(Ctx(t), testutil.LockRequest{Resource: "before", Durability: testutil.Persistent}))
	if info.Owner != "a" || info.Token() != before.Token() {
		t.Fatalf("get-info of the lock taken before the failure: %v; want owner a, token %d", info, before.Token())
	}
}
