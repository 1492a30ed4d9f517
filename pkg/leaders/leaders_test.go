package leaders

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/kahuna-go/kahuna/pkg/placement"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

func status(leaders ...string) *wire.ClusterStatus {
	st := &wire.ClusterStatus{Nodes: []wire.NodeStatus{
		{ID: "n1", HTTPAddr: "10.0.0.1:8082", State: wire.NodeAlive},
		{ID: "n2", HTTPAddr: "10.0.0.2:8082", State: wire.NodeAlive},
		{ID: "n3", HTTPAddr: "172.17.0.3:8082", State: wire.NodeAlive}, // advertised on a network the client does not use
		{ID: "n4", HTTPAddr: "10.0.0.4:8082", State: wire.NodeSuspect},
	}}
	for p, l := range leaders {
		st.Partitions = append(st.Partitions, wire.PartitionStatus{ID: p, Leader: l})
	}
	return st
}

// resourceIn returns a resource of partition p among n.
func resourceIn(p, n int) string {
	for i := 0; ; i++ {
		if r := fmt.Sprintf("r-%d", i); placement.Partition(r, n) == p {
			return r
		}
	}
}

func TestRoutesOnlyToLeadersAmongTheEndpoints(t *testing.T) {
	addrs := []string{"10.0.0.2:8082", "10.0.0.1:8082", "localhost:8082", "10.0.0.4:8082"}
	m := FromStatus(status("n1", "n2", "n3", "", "n4"), addrs)
	cases := []struct {
		partition int
		endpoint  int
		node      string
		ok        bool
	}{
		{0, 1, "n1", true},
		{1, 0, "n2", true},
		{2, -1, "", false}, // n3's address is not one of ours
		{3, -1, "", false}, // no leader
		{4, -1, "", false}, // its leader may be down
	}
	for _, c := range cases {
		e, node, ok := m.Lookup(resourceIn(c.partition, 5))
		if e != c.endpoint || node != c.node || ok != c.ok {
			t.Errorf("partition %d: got (%d, %q, %v), want (%d, %q, %v)", c.partition, e, node, ok, c.endpoint, c.node, c.ok)
		}
	}
	if m.Routed() != 2 || m.Partitions() != 5 {
		t.Errorf("Routed %d of %d, want 2 of 5", m.Routed(), m.Partitions())
	}
	if !m.Elsewhere("n3") || m.Elsewhere("n1") || m.Elsewhere("n2") || m.Elsewhere("n4") || m.Elsewhere("n9") {
		t.Error("Elsewhere must hold exactly for live nodes without an endpoint")
	}
}

func TestEmptyMapsRouteNothing(t *testing.T) {
	var nilMap *Map
	for name, m := range map[string]*Map{
		"nil":           nilMap,
		"no partitions": FromStatus(&wire.ClusterStatus{}, []string{"10.0.0.1:8082"}),
		// A reply that numbers its partitions past their count is not
		// trusted for that partition.
		"bad id": FromStatus(&wire.ClusterStatus{
			Nodes:      []wire.NodeStatus{{ID: "n1", HTTPAddr: "10.0.0.1:8082", State: wire.NodeAlive}},
			Partitions: []wire.PartitionStatus{{ID: 5, Leader: "n1"}},
		}, []string{"10.0.0.1:8082"}),
	} {
		if _, _, ok := m.Lookup("anything"); ok || m.Routed() != 0 {
			t.Errorf("%s: routes something", name)
		}
	}
}

func TestAddr(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8082": "127.0.0.1:8082",
		"http://kahuna":         "kahuna:80",
		"https://kahuna":        "kahuna:443",
		"http://[::1]:8082/":    "[::1]:8082",
		"http://[::1]":          "[::1]:80",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := Addr(u); got != want {
			t.Errorf("Addr(%s) = %s, want %s", in, got, want)
		}
	}
}
