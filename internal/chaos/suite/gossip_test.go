package suite

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/netlab"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// TestNodesMeetAgainAfterALongPartition splits five kahunad processes 3/2
// for long enough that each side's gossip declares the other failed, then
// heals the network. memberlist never contacts a failed node again and
// neither side is alone, so before nodes sought out failed members the
// halves stayed apart: the two nodes of the minority were never ready
// again (their partition leaders "not reachable"), and the majority's
// dead-node timeout removed them from the cluster although they were back.
// Now every node must be ready within seconds of the heal, see all five
// alive, and all five must still be voters after the dead-node timeout;
// a second split, longer than that timeout, removes the minority, which
// must learn so once the network heals.
func TestNodesMeetAgainAfterALongPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("five processes")
	}
	if err := netlab.Available(); err != nil {
		t.Skipf("needs network namespaces: %v", err)
	}
	const deadNode = 20 * time.Second
	p := startProcesses(t, 5, 5, true, false, partition.DefaultLogStore, deadNode)
	minority := func(i int) bool { return i >= 3 }
	if err := p.Cut(func(a, b int) bool { return minority(a) != minority(b) }); err != nil {
		t.Fatal(err)
	}
	// Each side sees the other failed: the majority's dead-node clock runs.
	failedAt := waitUntil(t, 30*time.Second, "each side sees the other failed", func() (bool, string) {
		for i := range 5 {
			st, err := p.web.statusOf(p.node(i).node.HTTPAddr)
			if err != nil {
				return false, err.Error()
			}
			for j := range 5 {
				if minority(i) != minority(j) && nodeState(st, p.ID(j)) != wire.NodeFailed {
					return false, fmt.Sprintf("%s sees %s %s", p.ID(i), p.ID(j), nodeState(st, p.ID(j)))
				}
			}
		}
		return true, ""
	})
	// Let the split's gossip die down: nothing queued may carry news
	// across once the network is back.
	time.Sleep(3 * time.Second)
	if err := p.Cut(nil); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	if err := p.WaitReady(15 * time.Second); err != nil {
		t.Fatalf("not every node is ready within 15 s of the heal: %v", err)
	}
	waitUntil(t, 15*time.Second, "every node sees all five alive", func() (bool, string) {
		for i := range 5 {
			st, err := p.web.statusOf(p.node(i).node.HTTPAddr)
			if err != nil {
				return false, err.Error()
			}
			for j := range 5 {
				if s := nodeState(st, p.ID(j)); s != wire.NodeAlive {
					return false, fmt.Sprintf("%s sees %s %s", p.ID(i), p.ID(j), s)
				}
			}
		}
		return true, ""
	})
	t.Logf("gossip whole again %v after the heal", time.Since(healed).Round(100*time.Millisecond))
	// Past the dead-node timeout of the failures seen during the split:
	// nobody was removed.
	time.Sleep(time.Until(failedAt.Add(deadNode + 5*time.Second)))
	cfgs, err := p.Config(0)
	if err != nil {
		t.Fatal(err)
	}
	for part, c := range cfgs {
		if len(c.Voters) != 5 {
			t.Fatalf("partition %d has voters %v after the heal; want all five", part, c.Voters)
		}
	}

	// A split that outlasts the dead-node timeout is the minority's
	// death as far as the majority can tell: it removes them. Once the
	// network heals, the removed nodes must hear of it (they reach out to
	// the members they still list) and stop serving, not linger unready
	// with a stale configuration.
	if err := p.Cut(func(a, b int) bool { return minority(a) != minority(b) }); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, deadNode+60*time.Second, "the majority removes the minority", func() (bool, string) {
		cfgs, err := p.Config(0)
		if err != nil {
			return false, err.Error()
		}
		for part, c := range cfgs {
			if len(c.Voters)+len(c.NonVoters) != 3 {
				return false, fmt.Sprintf("partition %d: voters %v, non-voters %v", part, c.Voters, c.NonVoters)
			}
		}
		return true, ""
	})
	if err := p.Cut(nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the removed nodes know it", func() (bool, string) {
		for i := 3; i < 5; i++ {
			ready, reason, err := p.Ready(i)
			if err != nil || ready || !strings.Contains(reason, "removed") {
				return false, fmt.Sprintf("%s: ready %v, %q, %v", p.ID(i), ready, reason, err)
			}
		}
		return true, ""
	})
	for i := range 3 {
		if ready, reason, err := p.Ready(i); !ready {
			t.Errorf("%s is not ready after the removal: %q %v", p.ID(i), reason, err)
		}
	}
}

func nodeState(st wire.ClusterStatus, id string) string {
	i := slices.IndexFunc(st.Nodes, func(n wire.NodeStatus) bool { return n.ID == id })
	if i < 0 {
		return "absent"
	}
	return st.Nodes[i].State
}

// waitUntil polls cond until it holds, failing the test with cond's last
// reason after timeout; it returns when cond first held.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Time {
	t.Helper()
	var why string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var ok bool
		if ok, why = cond(); ok {
			return time.Now()
		}
	}
	t.Fatalf("not within %v: %s (%s)", timeout, what, why)
	return time.Time{}
}
