package client_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testcluster"
	"github.com/kahuna-go/kahuna/pkg/client"
	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/placement"
	"github.com/kahuna-go/kahuna/pkg/server"
)

// TestMain runs one single-node server for the examples, which find it
// through KAHUNA_ENDPOINTS like any program using EndpointsFromEnv.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kahuna-client-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err := server.New(server.Config{
		NodeID: "example", DataDir: dir,
		HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
		Logger: logging.Discard(), Raft: partition.FastRaftTimings(), Gossip: membership.FastTimings(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("KAHUNA_ENDPOINTS", "http://"+srv.HTTPAddr())
	c, _ := client.New(client.Config{Endpoints: client.EndpointsFromEnv()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	for {
		if _, err := c.ClusterStatus(ctx); err == nil {
			if ready, _ := srv.Ready(); ready {
				break
			}
		}
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "example server not ready")
			os.Exit(1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	code := m.Run()
	srv.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newClient(t *testing.T, endpoints ...string) *client.Client {
	t.Helper()
	if len(endpoints) == 0 {
		endpoints = client.EndpointsFromEnv()
	}
	c, err := client.New(client.Config{Endpoints: endpoints, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// fresh returns a resource name no earlier run of the tests used, since the
// package's server outlives a test (and go test -count=N reruns them).
func fresh(name string) string {
	return fmt.Sprintf("%s/%x", name, rand.Uint64())
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestLockLifecycle(t *testing.T) {
	c := newClient(t)
	ctx := ctxFor(t, 10*time.Second)
	for _, d := range []client.Durability{client.Persistent, client.Ephemeral} {
		res := "lifecycle/" + d.String()
		l, err := c.TryLock(ctx, res, client.WithDurability(d), client.WithLease(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if raw, err := base64.StdEncoding.DecodeString(l.Owner()); err != nil || len(raw) != 16 {
			t.Fatalf("generated owner %q", l.Owner())
		}
		if l.Token() < 1 || l.Resource() != res || l.Durability() != d || time.Until(l.ExpiresAt()) < 50*time.Second {
			t.Fatalf("lock %+v", l)
		}
		// The same owner asking again gets the same grant.
		again, err := c.TryLock(ctx, res, client.WithDurability(d), client.WithOwner(l.Owner()))
		if err != nil || again.Token() != l.Token() {
			t.Fatalf("idempotent retry: %v %v", again, err)
		}
		_, err = c.TryLock(ctx, res, client.WithDurability(d), client.WithOwner("someone-else"))
		var busy *client.BusyError
		if !errors.Is(err, client.ErrBusy) || !errors.As(err, &busy) || busy.Holder != l.Owner() {
			t.Fatalf("second owner: %v", err)
		}
		info, err := c.GetInfo(ctx, res, d)
		if err != nil || info.Owner != l.Owner() || info.Token != l.Token() || info.ExpiresIn <= 0 || info.ExpiresAt.Before(time.Now()) {
			t.Fatalf("get-info %+v %v", info, err)
		}
		if err := l.Extend(ctx, 2*time.Minute); err != nil || time.Until(l.ExpiresAt()) < 110*time.Second {
			t.Fatalf("extend: %v, expires %v", err, l.ExpiresAt())
		}
		if _, err := c.Extend(ctx, res, "stranger", time.Minute, d); !errors.Is(err, client.ErrNotOwner) {
			t.Fatalf("extend by a stranger: %v", err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-l.Done():
		default:
			t.Fatal("Done not closed after Unlock")
		}
		if l.Err() != nil {
			t.Fatalf("Err after Unlock: %v", l.Err())
		}
		if _, err := c.GetInfo(ctx, res, d); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("get-info after unlock: %v", err)
		}
		// Unlocking twice is harmless.
		if err := l.Unlock(ctx); err != nil {
			t.Fatalf("second unlock: %v", err)
		}
	}
	if _, err := c.TryLock(ctx, ""); !errors.Is(err, client.ErrInvalidInput) {
		t.Fatalf("empty resource: %v", err)
	}
	if err := c.ForceUnlock(ctx, "never-locked", client.Persistent); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("force-unlock of nothing: %v", err)
	}
}

func TestLockWaitsForTheHolder(t *testing.T) {
	c := newClient(t)
	ctx := ctxFor(t, 10*time.Second)
	res := fresh("wait/me")
	holder, err := c.TryLock(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, func() { holder.Unlock(context.Background()) })
	start := time.Now()
	l, err := c.Lock(ctx, res, client.WithWait(5*time.Second))
	if err != nil || l.Token() <= holder.Token() {
		t.Fatalf("waiter: %v %v", l, err)
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Fatalf("got the lock after %v", el)
	}
	// A wait that runs out names the holder.
	start = time.Now()
	_, err = c.Lock(ctx, res, client.WithWait(300*time.Millisecond))
	var busy *client.BusyError
	if !errors.As(err, &busy) || busy.Holder != l.Owner() || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("timed-out wait: %v after %v", err, time.Since(start))
	}
	// So does a context that ends.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Lock(short, res); !errors.Is(err, client.ErrBusy) && !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("context deadline: %v", err)
	}
}

func TestListWalksEveryPage(t *testing.T) {
	c := newClient(t)
	ctx := ctxFor(t, 10*time.Second)
	for i := range 7 {
		if _, err := c.TryLock(ctx, fmt.Sprintf("list/%d", i), client.WithOwner("lister")); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for info, err := range c.List(ctx, client.ListOptions{Prefix: "list/", PageSize: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		if info.Owner != "lister" || info.Token < 1 {
			t.Fatalf("entry %+v", info)
		}
		got = append(got, info.Resource)
	}
	if fmt.Sprint(got) != "[list/0 list/1 list/2 list/3 list/4 list/5 list/6]" {
		t.Fatalf("listed %v", got)
	}
	// Stopping early is fine.
	for range c.List(ctx, client.ListOptions{Prefix: "list/", PageSize: 2}) {
		break
	}
}

func deadEndpoint(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestEndpointFailoverAndUnavailable(t *testing.T) {
	dead := deadEndpoint(t)
	c := newClient(t, dead, client.EndpointsFromEnv()[0])
	if _, err := c.TryLock(ctxFor(t, 5*time.Second), fresh("failover")); err != nil {
		t.Fatalf("with one dead endpoint: %v", err)
	}
	only := newClient(t, dead)
	start := time.Now()
	_, err := only.TryLock(ctxFor(t, 500*time.Millisecond), fresh("failover"))
	if !errors.Is(err, client.ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Fatalf("no live endpoint: %v after %v", err, time.Since(start))
	}
}

// resourceIn returns a resource of partition p among n.
func resourceIn(p, n int) string {
	for i := 0; ; i++ {
		if r := fmt.Sprintf("ka-%d", i); placement.Partition(r, n) == p {
			return r
		}
	}
}

// TestKeepAliveThroughLeaderKill holds a kept-alive lock with a short lease
// in a three-node cluster and kills its partition's leader: the keep-alive
// must ride out the election, so the lock is never lost, and the client
// keeps working through the surviving endpoints.
func TestKeepAliveThroughLeaderKill(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Nodes: 3})
	var endpoints []string
	for _, n := range tc.Nodes {
		endpoints = append(endpoints, "http://"+n.HTTP)
	}
	c := newClient(t, endpoints...)
	ctx := ctxFor(t, 30*time.Second)
	res := resourceIn(0, 3)
	l, err := c.TryLock(ctx, res, client.WithLease(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	l.KeepAlive()
	time.Sleep(600 * time.Millisecond)
	tc.Kill(tc.LeaderIndex(0))
	// Three leases later the lock is still ours.
	select {
	case <-l.Done():
		t.Fatalf("keep-alive lost the lock across a leader kill: %v", l.Err())
	case <-time.After(4500 * time.Millisecond):
	}
	info, err := c.GetInfo(ctx, res, client.Persistent)
	if err != nil || info.Owner != l.Owner() || info.Token != l.Token() {
		t.Fatalf("after the failover: %+v %v", info, err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestKeepAliveReportsLoss force-unlocks a kept-alive lock, as an operator
// would; the holder must learn it through Done and Err.
func TestKeepAliveReportsLoss(t *testing.T) {
	c := newClient(t)
	ctx := ctxFor(t, 10*time.Second)
	res := fresh("lost")
	l, err := c.TryLock(ctx, res, client.WithLease(600*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	l.KeepAlive()
	if err := c.ForceUnlock(ctx, res, client.Persistent); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("loss not reported")
	}
	if !errors.Is(l.Err(), client.ErrLost) || !errors.Is(l.Err(), client.ErrNotFound) {
		t.Fatalf("Err = %v", l.Err())
	}
	// Someone else can take it now.
	if _, err := c.TryLock(ctx, res); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsNoEndpoints(t *testing.T) {
	if _, err := client.New(client.Config{Endpoints: []string{" ", ""}}); !errors.Is(err, client.ErrInvalidInput) {
		t.Fatalf("err %v", err)
	}
	if got := client.ParseEndpoints(" http://a:1, ,b:2,"); fmt.Sprint(got) != "[http://a:1 b:2]" {
		t.Fatalf("ParseEndpoints %v", got)
	}
}
