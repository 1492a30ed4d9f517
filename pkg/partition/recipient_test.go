package partition

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAStrangerAtADeadVotersAddressHearsNothing: n2, a voter, dies and a
// fresh node n9 starts at its address. hashicorp/raft dials by address, so
// without the recipient check n9 answered the appends and votes meant for
// n2 with a blank log — n1 then committed with n9 standing in for n2, the
// lost-disk case Raft forbids. Now n9 refuses them: it hears nothing, and
// n1 cannot commit until n2 itself is back.
func TestAStrangerAtADeadVotersAddressHearsNothing(t *testing.T) {
	n1 := startSingle(t, 1, nil)
	g := n1.set.Group(0)
	n2 := startNode(t, "n2", t.TempDir(), "127.0.0.1:0", 1, nil)
	if err := g.AddVoter("n2", n2.addr); err != nil {
		t.Fatal(err)
	}
	kept := n1.do(Persistent, tryLock("kept", "a", time.Hour))
	waitFor(t, 10*time.Second, "n2 has the lock", func() bool {
		return n2.set.Group(0).Status().AppliedIndex >= g.Status().CommitIndex
	})
	n2.stop()
	n9 := startNode(t, "n9", t.TempDir(), n2.addr, 1, nil)

	// Three seconds are many heartbeat and election rounds at these
	// timings; no write may commit in them.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		res, err := n1.set.For("late").Do(ctx, Request{Cmd: tryLock("late", "b", time.Hour), Durability: Persistent})
		cancel()
		if err == nil {
			t.Fatalf("a write committed with n2 dead and n9 at its address: %+v", res)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := n9.set.Group(0).Status(); st.Term != 0 || st.LastIndex != 0 {
		t.Fatalf("n9 took messages meant for n2: term %d, last index %d", st.Term, st.LastIndex)
	}
	if st := g.Status(); st.State == "Leader" {
		t.Fatalf("n1 still leads without a quorum: %+v", st)
	}

	// n2 itself back at its address: the pair commits again, the lock and
	// its token intact.
	n9.stop()
	n2 = startNode(t, "n2", n2.dir, n2.addr, 1, nil)
	var leader *node
	waitFor(t, 10*time.Second, "a leader of n1 and n2", func() bool {
		for _, n := range []*node{n1, n2} {
			if n.set.Group(0).Status().Serving {
				leader = n
				return true
			}
		}
		return false
	})
	if got := leader.get(Persistent, "kept"); got.Token != kept.Token || got.Owner != "a" {
		t.Fatalf("kept after n2's return: %+v, want owner a, token %d", got, kept.Token)
	}
	var lastErr error
	waitFor(t, 10*time.Second, "a write with n1 and n2 back", func() bool {
		_, lastErr = leader.set.For("late").Do(context.Background(), Request{Cmd: tryLock("late", "b", time.Hour), Durability: Persistent})
		if lastErr != nil && !errors.Is(lastErr, ErrNotLeader) {
			t.Fatalf("a write with n1 and n2 back: %v", lastErr)
		}
		return lastErr == nil
	})
}
