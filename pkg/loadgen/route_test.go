package loadgen

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/placement"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// fakeCluster is three fake nodes that share one cluster status.
type fakeCluster struct {
	nodes  []*fakeLocks
	urls   []string
	status atomic.Pointer[wire.ClusterStatus]
}

func startFakeCluster(t *testing.T) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{}
	for _, name := range []string{"a", "b", "c"} {
		f := newFakeLocks()
		f.served = `,"servedFrom":"` + name + `"`
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == wire.PathClusterStatus {
				st := *fc.status.Load()
				st.ServedFrom = name
				_ = json.NewEncoder(w).Encode(st)
				return
			}
			f.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		fc.nodes = append(fc.nodes, f)
		fc.urls = append(fc.urls, srv.URL)
	}
	return fc
}

// setLeaders publishes a status whose partition p is led by leaders[p]; "d"
// is a node whose address is not among the endpoints.
func (fc *fakeCluster) setLeaders(leaders ...string) {
	st := &wire.ClusterStatus{Type: wire.Got, Nodes: []wire.NodeStatus{{ID: "d", HTTPAddr: "192.0.2.1:8082", State: wire.NodeAlive}}}
	for i, u := range fc.urls {
		st.Nodes = append(st.Nodes, wire.NodeStatus{ID: string(rune('a' + i)), HTTPAddr: strings.TrimPrefix(u, "http://"), State: wire.NodeAlive})
	}
	for p, l := range leaders {
		st.Partitions = append(st.Partitions, wire.PartitionStatus{ID: p, Leader: l})
	}
	fc.status.Store(st)
}

// routedConfig is a short routed run over the three nodes.
func (fc *fakeCluster) routedConfig() Config {
	cfg := testConfig(fc.urls[0])
	cfg.Endpoints = fc.urls
	cfg.Workers = 6
	cfg.Keys = 200
	cfg.RouteToLeader = true
	return cfg
}

// TestRunRoutesEachKeyToItsLeader checks that a routed run sends every key
// whose partition leader is one of the endpoints to that endpoint only,
// and keys of other partitions to the worker's own endpoint.
func TestRunRoutesEachKeyToItsLeader(t *testing.T) {
	fc := startFakeCluster(t)
	fc.setLeaders("c", "a", "b", "d")
	cfg := fc.routedConfig()
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.BadReplies != 0 || res.Failed() {
		t.Fatalf("unexpected failures: %+v", res)
	}
	leaderOf := []int{2, 0, 1, -1} // endpoint of each partition's leader
	var unrouted int
	for e, f := range fc.nodes {
		f.mu.Lock()
		for _, r := range f.resources {
			p := placement.Partition(r, 4)
			if leaderOf[p] < 0 {
				unrouted++
			} else if leaderOf[p] != e {
				t.Errorf("%s (partition %d) went to endpoint %d, its leader is %d", r, p, e, leaderOf[p])
			}
		}
		if res.Endpoints[fc.urls[e]] != uint64(f.requests) {
			t.Errorf("endpoint %d: result counts %d requests, the fake saw %d", e, res.Endpoints[fc.urls[e]], f.requests)
		}
		f.mu.Unlock()
	}
	if unrouted == 0 || res.Routed == 0 || res.Routed >= res.Requests || res.Misrouted != 0 {
		t.Fatalf("routed %d of %d requests, %d misrouted, %d try-locks unrouted: partition 3 must go unrouted, the rest routed",
			res.Routed, res.Requests, res.Misrouted, unrouted)
	}
}

// TestRunCountsMisroutedRequests has node c answer in a's name, as a node
// that lost leadership forwards: each of its replies is misrouted.
func TestRunCountsMisroutedRequests(t *testing.T) {
	fc := startFakeCluster(t)
	fc.setLeaders("a", "b", "c")
	fc.nodes[2].served = `,"servedFrom":"a"`
	res, err := Run(context.Background(), fc.routedConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := fc.nodes[2]
	c.mu.Lock()
	defer c.mu.Unlock()
	if res.Routed != res.Requests || c.requests == 0 || res.Misrouted != uint64(c.requests) {
		t.Fatalf("routed %d of %d, misrouted %d; c served %d", res.Routed, res.Requests, res.Misrouted, c.requests)
	}
}

func TestLeaderMapFollowsTheCluster(t *testing.T) {
	fc := startFakeCluster(t)
	fc.setLeaders("a", "b", "c")
	cfg := testConfig(fc.urls[0])
	cfg.Endpoints = fc.urls
	addrs := make([]string, len(fc.urls))
	for i, u := range fc.urls {
		pu, _ := url.Parse(u)
		addrs[i] = pu.Host
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := newLeaderRoutes(ctx, cfg, addrs)
	if err != nil {
		t.Fatal(err)
	}
	go r.follow(ctx, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	fc.setLeaders("b", "c", "a")
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := r.table.Load()
		if e, node, _ := m.ForPartition(0); e == 1 && node == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the map did not follow the new leaders")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A status from a cluster with another partition count is ignored.
	fc.setLeaders("c", "c")
	time.Sleep(100 * time.Millisecond)
	if got := r.table.Load().Partitions(); got != 3 {
		t.Fatalf("map now has %d partitions, want the cluster's 3", got)
	}
}

func TestRoutingNeedsAClusterStatus(t *testing.T) {
	fake := newFakeLocks() // answers 400 to GET /v1/cluster/status
	cfg := testConfig(startFake(t, fake))
	cfg.Endpoints = append(cfg.Endpoints, cfg.Endpoints[0])
	cfg.RouteToLeader = true
	_, err := Run(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "no cluster status") {
		t.Fatalf("want a clear error, got %v", err)
	}
}
