package membership

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// cuttable is a gossip transport whose outgoing traffic to some addresses
// can be dropped, the way a network partition drops it. Both ends of a
// cut drop, so nothing crosses it either way.
type cuttable struct {
	memberlist.Transport
	mu      sync.Mutex
	blocked map[string]bool
}

func (c *cuttable) cut(addrs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocked = map[string]bool{}
	for _, a := range addrs {
		c.blocked[a] = true
	}
}

func (c *cuttable) isCut(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked[addr]
}

func (c *cuttable) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.isCut(addr) {
		return time.Now(), nil // lost on the way, as UDP would be
	}
	return c.Transport.WriteTo(b, addr)
}

func (c *cuttable) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if c.isCut(addr) {
		return nil, fmt.Errorf("dial %s: network is unreachable (cut by the test)", addr)
	}
	return c.Transport.DialTimeout(addr, timeout)
}

func startCuttable(t *testing.T, id, addr string, wanted func(string) bool, join ...string) (*Membership, *cuttable) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: p})
	if err != nil {
		t.Fatal(err)
	}
	tr := &cuttable{Transport: nt}
	// Probes more patient than FastTimings': on a loaded machine under
	// -race a 50 ms probe timeout declares live nodes failed, and the test
	// is about nodes that really are cut off.
	timings := FastTimings()
	timings.ProbeInterval, timings.ProbeTimeout = 200*time.Millisecond, 150*time.Millisecond
	m, err := Start(Config{
		NodeID: id, BindAddr: addr, HTTPAddr: "http-" + id, RaftAddr: "raft-" + id,
		Partitions: 3, Join: join, Timings: timings,
		transport: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.SetWanted(wanted)
	t.Cleanup(func() { m.Kill() })
	return m, tr
}

// TestSidesOfAHealedPartitionFindEachOther splits five nodes 3/2 until
// each side sees the other failed, then heals the network: memberlist
// never contacts a failed node again by itself, and neither side is alone
// (the join loop's cue), so without reconnecting the two halves would stay
// apart for good. A node no longer wanted (removed from the cluster while
// failed) is not sought out.
func TestSidesOfAHealedPartitionFindEachOther(t *testing.T) {
	addrs := make([]string, 5)
	for i := range addrs {
		addrs[i] = freeAddr(t)
	}
	// n6 is wanted until it has been removed (below); before, a live n6
	// that a loaded machine's probe declared failed is called back too.
	var n6Removed atomic.Bool
	wanted := func(id string) bool { return id != "n6" || !n6Removed.Load() }
	nodes := make([]*Membership, 5)
	trans := make([]*cuttable, 5)
	for i := range nodes {
		nodes[i], trans[i] = startCuttable(t, fmt.Sprintf("n%d", i+1), addrs[i], wanted, addrs[0])
	}
	// n6 is a member that fails and is removed: nobody should dial it
	// again.
	a6 := freeAddr(t)
	n6, _ := startCuttable(t, "n6", a6, wanted, addrs[0])
	all := "n1=alive n2=alive n3=alive n4=alive n5=alive n6=alive "
	// Six nodes gossiping their way together under -race on a busy
	// machine can take a while; this is not what the test measures.
	for _, n := range nodes {
		waitStates(t, n, all, "sees six alive nodes", 30*time.Second)
	}
	n6Removed.Store(true)
	n6.Kill()
	for _, n := range nodes {
		waitFor(t, n.cfg.NodeID+" sees n6 failed", func() bool {
			m, _ := n.Member("n6")
			return m.State == StateFailed
		})
	}

	side := func(i int) []string {
		if i < 3 {
			return addrs[3:]
		}
		return addrs[:3]
	}
	for i, tr := range trans {
		tr.cut(side(i)...)
	}
	healed := "n1=alive n2=alive n3=alive n4=alive n5=alive n6=failed "
	split := []string{
		"n1=alive n2=alive n3=alive n4=failed n5=failed n6=failed ",
		"n1=failed n2=failed n3=failed n4=alive n5=alive n6=failed ",
	}
	for i, n := range nodes {
		waitStates(t, n, split[i/3], "sees the other side failed", 10*time.Second)
	}
	// Long enough that the broadcasts of the split have been sent and
	// nothing queued would carry news across once it heals.
	time.Sleep(2 * time.Second)
	for _, tr := range trans {
		tr.cut()
	}
	for _, n := range nodes {
		waitStates(t, n, healed, "sees the other side alive again", 10*time.Second)
	}
	// n6 comes back at its old address: still unwanted, so nobody calls
	// it; it is alive only once it joins by itself.
	n6, _ = startCuttable(t, "n6", a6, wanted)
	time.Sleep(time.Second)
	if m, _ := nodes[0].Member("n6"); m.State != StateFailed {
		t.Fatalf("n1 reached n6, which it does not want: %s", states(nodes[0]))
	}
}

// waitStates waits until n sees the members in the states want, and tells
// what it saw last if it never does.
func waitStates(t *testing.T, n *Membership, want, what string, within time.Duration) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if last = states(n); last == want {
			return
		}
	}
	t.Fatalf("%s never %s within %v: it sees %q", n.cfg.NodeID, what, within, last)
}
