package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/placement"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// silentListener accepts connections and never answers: a machine that
// died without closing its sockets, as far as a client can tell.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, conn); conn.Close() }()
		}
	}()
	return ln.Addr().String()
}

// clientWithClock returns a routing client whose routing clock the test
// moves: it reads the returned nanoseconds.
func clientWithClock(t *testing.T, cfg Config) (*Client, *atomic.Int64) {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	now := new(atomic.Int64)
	now.Store(time.Now().UnixNano())
	c.routes.now = func() time.Time { return time.Unix(0, now.Load()) }
	return c, now
}

// TestUnreachableLeaderIsSkippedForAWhile: the status still names a dead
// node as partition 0's leader. The first request routed there waits out
// its attempt and falls over to the live node; requests after it go
// straight to the live node until the cool-down ends.
func TestUnreachableLeaderIsSkippedForAWhile(t *testing.T) {
	dead := silentListener(t)
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.PathClusterStatus {
			host := r.Host
			_ = json.NewEncoder(w).Encode(wire.ClusterStatus{Type: wire.Got, ServedFrom: "a",
				Nodes: []wire.NodeStatus{
					{ID: "a", HTTPAddr: host, State: wire.NodeAlive},
					{ID: "b", HTTPAddr: dead, State: wire.NodeAlive},
				},
				Partitions: []wire.PartitionStatus{{ID: 0, Leader: "b"}, {ID: 1, Leader: "a"}},
			})
			return
		}
		fmt.Fprint(w, `{"type":5,"servedFrom":"a"}`)
	}))
	t.Cleanup(live.Close)

	c, now := clientWithClock(t, Config{Endpoints: []string{live.URL, "http://" + dead}, AttemptTimeout: 300 * time.Millisecond})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resource := func(p int) *wire.LockRequest {
		for i := 0; ; i++ {
			if r := fmt.Sprintf("r-%d", i); placement.Partition(r, 2) == p {
				return &wire.LockRequest{Resource: &r}
			}
		}
	}
	timed := func(p int) time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := c.call(ctx, wire.PathGetInfo, resource(p), 0); err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
		return time.Since(start)
	}

	// The first reply (unrouted) makes the client read the status.
	timed(1)
	waitUntil(t, "the client reads the cluster status", func() bool { return c.routes.table.Load() != nil })
	if d := timed(0); d < 300*time.Millisecond {
		t.Fatalf("the request routed to the dead leader took %v; it must have waited out its attempt there", d)
	}
	for range 5 {
		if d := timed(0); d > 200*time.Millisecond {
			t.Fatalf("a request during the cool-down took %v: it went to the dead endpoint again", d)
		}
	}
	now.Add(int64(unreachableFor + time.Second))
	if d := timed(0); d < 300*time.Millisecond {
		t.Fatalf("after the cool-down the request took %v; routing to the named leader must resume", d)
	}
}

// TestNoRefreshAfterClose: a reply landing while the client closes must
// not start a status read that outlives it.
func TestNoRefreshAfterClose(t *testing.T) {
	var fetched atomic.Bool
	r := newRouting([]string{"http://127.0.0.1:1", "http://127.0.0.1:2"}, time.Now, func(context.Context, int) (*wire.ClusterStatus, error) {
		fetched.Store(true)
		return nil, context.Canceled
	})
	r.close()
	r.refresh()
	r.wg.Wait()
	if fetched.Load() {
		t.Fatal("a refresh ran after close")
	}
}

// TestMapFromACutOffNodeIsReplaced: the first status came from a node cut
// off from the others (it saw them suspect and knew no leader), so the map
// routes nothing. Replies served by the real leader must still bring a
// fresh status, or routing would stay off for good.
func TestMapFromACutOffNodeIsReplaced(t *testing.T) {
	var status atomic.Pointer[wire.ClusterStatus]
	var addrs [2]string
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.PathClusterStatus {
			_ = json.NewEncoder(w).Encode(status.Load())
			return
		}
		fmt.Fprint(w, `{"type":5,"servedFrom":"b"}`) // b leads; a forwards to it
	})
	for i := range addrs {
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		addrs[i] = srv.Listener.Addr().String()
	}
	cutOff := &wire.ClusterStatus{Type: wire.Got, ServedFrom: "a",
		Nodes: []wire.NodeStatus{
			{ID: "a", HTTPAddr: addrs[0], State: wire.NodeAlive},
			{ID: "b", HTTPAddr: addrs[1], State: wire.NodeSuspect},
		},
		Partitions: []wire.PartitionStatus{{ID: 0}},
	}
	status.Store(cutOff)

	c, now := clientWithClock(t, Config{Endpoints: []string{"http://" + addrs[0], "http://" + addrs[1]}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res := "r"
	read := func() {
		t.Helper()
		if _, err := c.call(ctx, wire.PathGetInfo, &wire.LockRequest{Resource: &res}, 0); err != nil {
			t.Fatal(err)
		}
	}

	read()
	waitUntil(t, "the cut-off node's map is read", func() bool { return c.routes.table.Load() != nil })
	if e, _ := c.routes.lookup(res); e >= 0 {
		t.Fatalf("a map without leaders routes to endpoint %d", e)
	}
	// Healed: b leads and everyone sees it.
	healed := *cutOff
	healed.Nodes = []wire.NodeStatus{
		{ID: "a", HTTPAddr: addrs[0], State: wire.NodeAlive},
		{ID: "b", HTTPAddr: addrs[1], State: wire.NodeAlive},
	}
	healed.Partitions = []wire.PartitionStatus{{ID: 0, Leader: "b"}}
	status.Store(&healed)
	now.Add(int64(minRouteRefresh))
	read()
	waitUntil(t, "requests routed to b", func() bool {
		e, node := c.routes.lookup(res)
		return e == 1 && node == "b"
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestOverdueRoutedAttemptStopsRoutingThere: a routed attempt to a leader
// that died silently hangs until its own timeout, but once it is overdue
// the requests after it no longer go there.
func TestOverdueRoutedAttemptStopsRoutingThere(t *testing.T) {
	dead := silentListener(t)
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.PathClusterStatus {
			_ = json.NewEncoder(w).Encode(wire.ClusterStatus{Type: wire.Got, ServedFrom: "a",
				Nodes: []wire.NodeStatus{
					{ID: "a", HTTPAddr: r.Host, State: wire.NodeAlive},
					{ID: "b", HTTPAddr: dead, State: wire.NodeAlive},
				},
				Partitions: []wire.PartitionStatus{{ID: 0, Leader: "b"}},
			})
			return
		}
		fmt.Fprint(w, `{"type":5,"servedFrom":"a"}`)
	}))
	t.Cleanup(live.Close)
	c, _ := clientWithClock(t, Config{Endpoints: []string{live.URL, "http://" + dead}, AttemptTimeout: time.Minute})
	c.routes.overdue = 100 * time.Millisecond
	res := "r"
	call := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := c.call(ctx, wire.PathGetInfo, &wire.LockRequest{Resource: &res}, 0)
		return err
	}
	if err := call(5 * time.Second); err != nil { // unrouted; brings the map
		t.Fatal(err)
	}
	waitUntil(t, "the map routes to b", func() bool { e, _ := c.routes.lookup(res); return e == 1 })
	// Routed to the silent b: the caller's deadline ends it, not an error
	// from b, so only the overdue watch can tell that b does not answer.
	if err := call(time.Second); err == nil {
		t.Fatal("a request routed to a silent leader succeeded")
	}
	start := time.Now()
	if err := call(5 * time.Second); err != nil || time.Since(start) > time.Second {
		t.Fatalf("the next request took %v (%v): it went to the silent endpoint again", time.Since(start), err)
	}
}
