package client_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testcluster"
	"github.com/kahuna-go/kahuna/pkg/client"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// hostRecorder remembers the host of every try-lock the client sends.
type hostRecorder struct {
	next  http.RoundTripper
	mu    sync.Mutex
	hosts []string
}

func (r *hostRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == wire.PathTryLock {
		r.mu.Lock()
		r.hosts = append(r.hosts, req.URL.Host)
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// take returns the hosts recorded since the last take.
func (r *hostRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hosts
	r.hosts = nil
	return h
}

func recordingClient(t *testing.T, endpoints []string, noRouting bool) (*client.Client, *hostRecorder) {
	t.Helper()
	rec := &hostRecorder{next: http.DefaultTransport.(*http.Transport).Clone()}
	c, err := client.New(client.Config{
		Endpoints: endpoints, HTTPClient: &http.Client{Transport: rec},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		NoLeaderRouting: noRouting,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, rec
}

// TestLockRequestsGoStraightToTheLeader checks that a client given every
// node sends each try-lock to its partition's leader, so no node forwards
// it, and follows the leadership when the leader is killed; with routing
// off, requests stay on one endpoint and are forwarded.
func TestLockRequestsGoStraightToTheLeader(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Nodes: 3})
	var endpoints []string
	for _, n := range tc.Nodes {
		endpoints = append(endpoints, "http://"+n.HTTP)
	}
	c, rec := recordingClient(t, endpoints, false)
	ctx := ctxFor(t, 60*time.Second)
	// cycle takes and releases res and returns the hosts its try-locks
	// went to (more than one if an attempt failed over).
	cycle := func(c *client.Client, rec *hostRecorder, res string) []string {
		t.Helper()
		rec.take()
		l, err := c.TryLock(ctx, res, client.WithLease(10*time.Second))
		if err != nil {
			t.Fatalf("try-lock %s: %v", res, err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatalf("unlock %s: %v", res, err)
		}
		return rec.take()
	}
	leaderHost := func(p int) string {
		if i := tc.LeaderIndex(p); i >= 0 {
			return tc.Nodes[i].HTTP
		}
		return "no leader"
	}
	resources := []string{resourceIn(0, 3), resourceIn(1, 3), resourceIn(2, 3)}

	// The first requests teach the client the leaders; then every try-lock
	// must go straight to its leader. A spurious election on a loaded
	// machine moves a leader and excuses a miss: then start over.
	for attempt := 1; ; attempt++ {
		tc.WaitFor(5*time.Second, "try-locks routed to every leader", func() bool {
			for p, res := range resources {
				if !slices.Equal(cycle(c, rec, res), []string{leaderHost(p)}) {
					return false
				}
			}
			return true
		})
		leaders := tc.Leaders()
		miss := ""
		for range 10 {
			for p, res := range resources {
				if got := cycle(c, rec, res); miss == "" && !slices.Equal(got, []string{leaderHost(p)}) {
					miss = fmt.Sprintf("try-lock of partition %d went to %v, its leader is at %s", p, got, leaderHost(p))
				}
			}
		}
		if miss == "" {
			break
		}
		if slices.Equal(tc.Leaders(), leaders) || attempt == 3 {
			t.Fatalf("%s (leaders %v, before %v, attempt %d)", miss, tc.Leaders(), leaders, attempt)
		}
	}

	// Kill partition 0's leader: requests keep succeeding (the dead
	// endpoint is skipped, a survivor forwards) and the client learns the
	// new leader.
	var killed int
	tc.WaitFor(10*time.Second, "partition 0 has a leader", func() bool {
		killed = tc.LeaderIndex(0)
		return killed >= 0
	})
	tc.Kill(killed)
	tc.WaitFor(10*time.Second, "try-locks of partition 0 routed to its new leader", func() bool {
		got := cycle(c, rec, resources[0])
		return tc.LeaderIndex(0) >= 0 && slices.Equal(got, []string{leaderHost(0)})
	})

	// With routing off the client stays on the endpoint that answered.
	var alive []string
	for _, i := range tc.Running() {
		alive = append(alive, endpoints[i])
	}
	plain, prec := recordingClient(t, alive, true)
	want := []string{tc.Nodes[tc.Running()[0]].HTTP}
	for range 3 {
		for _, res := range resources {
			if got := cycle(plain, prec, res); !slices.Equal(got, want) {
				t.Fatalf("without routing a try-lock of %s went to %v, want %v", res, got, want)
			}
		}
	}
}
