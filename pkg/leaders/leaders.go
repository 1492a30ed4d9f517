// Package leaders tells a client which node leads each partition, so that a
// lock request can go straight to the node that executes it instead of being
// forwarded there: one network hop and the forwarding node's work saved.
//
// A map is advice, never a safety matter: a node that no longer leads
// forwards the request as it would any other, so a stale map costs a hop,
// not a wrong answer. Clients refresh it from GET /v1/cluster/status when a
// reply's servedFrom shows that a request was forwarded.
package leaders

import (
	"net"
	"net/url"
	"slices"

	"github.com/kahuna-go/kahuna/pkg/placement"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Map routes each partition to one of a client's endpoints.
type Map struct {
	// per partition: index into the client's endpoints, -1 if unrouted
	endpoint []int
	// per partition: the leader's node ID, "" if unrouted
	node []string
	// live nodes that advertise an address the client was not given
	elsewhere map[string]bool
}

// FromStatus builds a map from a cluster status reply. addrs are the
// client's endpoints as host:port (see Addr). A partition is routed only
// when its leader is alive in the gossip and advertises an HTTP address the
// client was given: an address the client was not given may be
// unreachable from it (NAT, a container network) and would need a scheme
// the client cannot know.
func FromStatus(st *wire.ClusterStatus, addrs []string) *Map {
	byNode := make(map[string]int, len(st.Nodes))
	elsewhere := make(map[string]bool)
	for _, n := range st.Nodes {
		if n.State != wire.NodeAlive {
			continue // suspect, failed or left: it may not answer
		}
		i := slices.Index(addrs, n.HTTPAddr)
		if n.HTTPAddr == "" || i < 0 {
			elsewhere[n.ID] = true
			continue
		}
		byNode[n.ID] = i
	}
	n := len(st.Partitions)
	m := &Map{endpoint: make([]int, n), node: make([]string, n), elsewhere: elsewhere}
	for i := range m.endpoint {
		m.endpoint[i] = -1
	}
	for _, p := range st.Partitions {
		if p.ID < 0 || p.ID >= n || p.Leader == "" {
			continue // a status without its partitions in order is not one to route by
		}
		if e, ok := byNode[p.Leader]; ok {
			m.endpoint[p.ID] = e
			m.node[p.ID] = p.Leader
		}
	}
	return m
}

// Lookup returns the endpoint of the node leading resource's partition and
// that node's ID; ok is false when the map has no route for it.
func (m *Map) Lookup(resource string) (endpoint int, node string, ok bool) {
	return m.ForPartition(placement.Partition(resource, m.Partitions()))
}

// ForPartition is Lookup for a partition number, for callers that computed
// it once per resource.
func (m *Map) ForPartition(p int) (endpoint int, node string, ok bool) {
	if m == nil || p < 0 || p >= len(m.endpoint) || m.endpoint[p] < 0 {
		return -1, "", false
	}
	return m.endpoint[p], m.node[p], true
}

// Elsewhere reports whether the status listed node as alive at an HTTP
// address the client was not given. A request it served unrouted says
// nothing new; one served by any other node the map has no route to means
// the map is behind (the status came from a node that was cut off, say, or
// before that node was elected).
func (m *Map) Elsewhere(node string) bool {
	return m != nil && m.elsewhere[node]
}

// Routed returns how many partitions have a route.
func (m *Map) Routed() int {
	if m == nil {
		return 0
	}
	n := 0
	for _, e := range m.endpoint {
		if e >= 0 {
			n++
		}
	}
	return n
}

// Partitions returns the partition count the map was built for.
func (m *Map) Partitions() int {
	if m == nil {
		return 0
	}
	return len(m.endpoint)
}

// Addr returns the host:port a base URL dials, with the scheme's default
// port when the URL names none, in the form nodes advertise their HTTP
// address.
func Addr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
