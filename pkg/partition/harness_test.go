package partition

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/transport"
)

// node is one in-process node's partitions for tests.
type node struct {
	t    testing.TB
	id   string
	dir  string
	addr string
	cfg  Config
	mux  *transport.Mux
	set  *Set
}

func testConfig(id, dir string, count int) Config {
	return Config{
		NodeID:       id,
		Dir:          dir,
		Count:        count,
		Logger:       logging.Discard(),
		Raft:         FastRaftTimings(),
		Tick:         time.Hour, // tests that want ticks set it
		ApplyTimeout: 2 * time.Second,
	}
}

// eachLogStore runs test once per log store, as a subtest named after it.
// Tests of what must survive a restart, a snapshot or a failover use it, so
// that every engine passes the same checks.
func eachLogStore(t *testing.T, test func(t *testing.T, store LogStore)) {
	for _, store := range LogStores() {
		t.Run(string(store), func(t *testing.T) { test(t, store) })
	}
}

// withStore returns mutate with the log store set first.
func withStore(store LogStore, mutate func(*Config)) func(*Config) {
	return func(c *Config) {
		c.LogStore = store
		if mutate != nil {
			mutate(c)
		}
	}
}

// startNode opens a node's partitions on addr ("127.0.0.1:0" for a fresh
// port). mutate may adjust the config.
func startNode(t testing.TB, id, dir, addr string, count int, mutate func(*Config)) *node {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	mux := transport.NewMux(ln, nil, logging.Discard())
	mux.SetNodeID(id)
	go mux.Serve()
	cfg := testConfig(id, dir, count)
	cfg.Mux = mux
	if mutate != nil {
		mutate(&cfg)
	}
	set, err := Open(cfg)
	if err != nil {
		mux.Close()
		t.Fatal(err)
	}
	n := &node{t: t, id: id, dir: dir, addr: ln.Addr().String(), cfg: cfg, mux: mux, set: set}
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	if n.set == nil {
		return
	}
	if err := n.set.Close(); err != nil {
		n.t.Errorf("close %s: %v", n.id, err)
	}
	n.mux.Close()
	n.set = nil
}

// startSingle starts a bootstrapped single-node set and waits until it
// serves every partition.
func startSingle(t testing.TB, count int, mutate func(*Config)) *node {
	t.Helper()
	n := startNode(t, "n1", t.TempDir(), "127.0.0.1:0", count, mutate)
	n.bootstrapAlone()
	n.waitServing()
	return n
}

func (n *node) bootstrapAlone() {
	n.t.Helper()
	err := n.set.Bootstrap([]raft.Server{{ID: raft.ServerID(n.id), Address: raft.ServerAddress(n.addr)}})
	if err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) waitServing() {
	n.t.Helper()
	waitFor(n.t, 10*time.Second, "node serves every partition", n.set.Serving)
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (n *node) do(d Durability, c fsm.Command) fsm.Result {
	n.t.Helper()
	res, err := n.set.For(c.Resource).Do(context.Background(), Request{Cmd: c, Durability: d})
	if err != nil {
		n.t.Fatalf("%v %v %q: %v", d, c.Op, c.Resource, err)
	}
	return res
}

func (n *node) get(d Durability, resource string) fsm.Result {
	n.t.Helper()
	res, err := n.set.For(resource).Get(context.Background(), d, resource)
	if err != nil {
		n.t.Fatalf("get %v %q: %v", d, resource, err)
	}
	return res
}

func tryLock(res, owner string, ttl time.Duration) fsm.Command {
	return fsm.Command{Op: fsm.OpTryLock, Resource: res, Owner: owner, TTL: ttl.Milliseconds()}
}

func extendCmd(res, owner string, ttl time.Duration) fsm.Command {
	return fsm.Command{Op: fsm.OpExtend, Resource: res, Owner: owner, TTL: ttl.Milliseconds()}
}

func unlockCmd(res, owner string) fsm.Command {
	return fsm.Command{Op: fsm.OpUnlock, Resource: res, Owner: owner}
}
