package partition

import (
	"slices"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/fsm"
)

// TestMembershipChanges adds two nodes to a running partition as
// non-voters at once (Raft serializes the changes; neither is lost),
// promotes one, and removes both again; the committed configuration and
// its index follow.
func TestMembershipChanges(t *testing.T) {
	eachLogStore(t, func(t *testing.T, store LogStore) {
		n1 := startSingle(t, 1, withStore(store, nil))
		g := n1.set.Group(0)
		tok := n1.do(Persistent, tryLock("before-join", "a", time.Hour)).Token

		n2 := startNode(t, "n2", t.TempDir(), "127.0.0.1:0", 1, withStore(store, nil))
		n3 := startNode(t, "n3", t.TempDir(), "127.0.0.1:0", 1, withStore(store, nil))
		// Two changes at once: Raft takes one after the other, and the
		// second applies to the configuration the first produced.
		errs := make(chan error, 2)
		go func() { errs <- g.AddNonvoter("n2", n2.addr) }()
		go func() { errs <- g.AddNonvoter("n3", n3.addr) }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		c1 := mustConfig(t, g)
		if !slices.Equal(c1.Voters(), []string{"n1"}) || !slices.Equal(c1.NonVoters(), []string{"n2", "n3"}) {
			t.Fatalf("after adding two non-voters at once: voters %v non-voters %v", c1.Voters(), c1.NonVoters())
		}
		// A non-voter catches up without voting, and learns the committed
		// configuration with its index.
		// Raft advances its applied index before the FSM goroutine has
		// seen the entries, so the committed configuration is waited for,
		// not read at the moment the index arrives.
		g2 := n2.set.Group(0)
		var cc Configuration
		waitFor(t, 10*time.Second, "the non-voter has the log and the committed configuration", func() bool {
			var err error
			cc, err = g2.CommittedConfiguration()
			return err == nil && g2.Status().AppliedIndex >= g.Status().CommitIndex &&
				cc.Index > 0 && slices.Equal(cc.NonVoters(), []string{"n2", "n3"})
		})
		if in, voter := mustConfig(t, g2).Has("n2"); !in || voter {
			t.Fatalf("n2 sees itself in=%v voter=%v, want a non-voter", in, voter)
		}

		if err := g.AddVoter("n2", n2.addr); err != nil {
			t.Fatal(err)
		}
		c2 := mustConfig(t, g)
		if !slices.Equal(c2.Voters(), []string{"n1", "n2"}) || !slices.Equal(c2.NonVoters(), []string{"n3"}) {
			t.Fatalf("after promotion: voters %v non-voters %v", c2.Voters(), c2.NonVoters())
		}
		if r := n1.do(Persistent, tryLock("after-promotion", "a", time.Hour)); r.Outcome != fsm.Locked {
			t.Fatalf("a write with two voters: %+v", r)
		}

		for _, id := range []string{"n2", "n3"} {
			if err := g.RemoveServer(id); err != nil {
				t.Fatal(err)
			}
		}
		if c := mustConfig(t, g); !slices.Equal(c.Voters(), []string{"n1"}) || len(c.NonVoters()) != 0 {
			t.Fatalf("after removal: voters %v non-voters %v", c.Voters(), c.NonVoters())
		}
		after, err := g.CommittedConfiguration()
		if err != nil || after.Index <= cc.Index {
			t.Fatalf("the leader's committed configuration after the removals: %+v %v, want an index above %d", after, err, cc.Index)
		}
		if r := n1.get(Persistent, "before-join"); r.Token != tok {
			t.Fatalf("the lock taken before the changes: %+v, want token %d", r, tok)
		}
	})
}
func mustConfig(t *testing.T, g *Group) Configuration {
	t.Helper()
	c, err := g.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
