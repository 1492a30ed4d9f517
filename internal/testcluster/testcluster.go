// Package testcluster runs a Kahuna cluster of real servers inside one test
// process: each node is a full server.Server on its own 127.0.0.1 ports with
// short Raft and gossip timings, and the harness can kill, restart and
// isolate nodes while the test drives them over HTTP.
package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/server"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Options shape a cluster.
type Options struct {
	Nodes      int
	Partitions int
	// LogStore is every node's Raft log engine (default: the server's).
	LogStore partition.LogStore
	// Order is the order nodes start in (default 0, 1, …); Stagger is
	// the pause between starts.
	Order   []int
	Stagger time.Duration
	// Mutate may adjust each node's configuration.
	Mutate func(i int, cfg *server.Config)
}

// Node is one member of the cluster.
type Node struct {
	ID     string
	Dir    string
	HTTP   string
	Raft   string
	Gossip string
	cfg    server.Config
	log    *testutil.SyncBuffer

	mu  sync.Mutex
	srv *server.Server
}

// config is the configuration the node starts with.
func (n *Node) config() server.Config {
	n.mu.Lock()
	defer n.mu.Unlock()
	cfg := n.cfg
	cfg.Join = append([]string(nil), n.cfg.Join...)
	return cfg
}

// Server returns the running server, or nil while the node is down.
func (n *Node) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Client is an HTTP client for the node's API.
func (n *Node) Client() *testutil.Client { return testutil.NewClient("http://" + n.HTTP) }

// Cluster is the running set of nodes. Nodes grows when a node joins
// (Join); code that runs while nodes may join reads it through Node and
// Len.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
	opts  Options
	// mu guards Nodes' growth (Join).
	mu sync.Mutex
}

// all is a snapshot of Nodes.
func (c *Cluster) all() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Nodes[:len(c.Nodes):len(c.Nodes)]
}

// Node is node i; safe while nodes join.
func (c *Cluster) Node(i int) *Node { return c.all()[i] }

// Len is the number of nodes ever started, joined ones included.
func (c *Cluster) Len() int { return len(c.all()) }

// Start forms a cluster and waits until every node is ready.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Partitions == 0 {
		opts.Partitions = opts.Nodes
	}
	c := &Cluster{t: t, opts: opts}
	var joins []string
	for i := range opts.Nodes {
		n := &Node{
			ID:     fmt.Sprintf("n%d", i+1),
			Dir:    t.TempDir(),
			HTTP:   testutil.FreeAddr(t),
			Raft:   testutil.FreeAddr(t),
			Gossip: testutil.FreeAddr(t),
			log:    &testutil.SyncBuffer{},
		}
		joins = append(joins, n.Gossip)
		c.Nodes = append(c.Nodes, n)
	}
	for i, n := range c.Nodes {
		n.cfg = server.Config{
			NodeID:          n.ID,
			DataDir:         n.Dir,
			HTTPAddr:        n.HTTP,
			RaftAddr:        n.Raft,
			GossipAddr:      n.Gossip,
			Join:            joins,
			BootstrapExpect: opts.Nodes,
			Partitions:      opts.Partitions,
			LogStore:        opts.LogStore,
			Logger:          slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", n.ID),
			Raft:            partition.FastRaftTimings(),
			Gossip:          membership.FastTimings(),
			BalanceInterval: 200 * time.Millisecond,
		}
		if opts.Mutate != nil {
			opts.Mutate(i, &n.cfg)
		}
	}
	t.Cleanup(c.shutdown)
	order := opts.Order
	if order == nil {
		for i := range c.Nodes {
			order = append(order, i)
		}
	}
	for k, i := range order {
		if k > 0 {
			time.Sleep(opts.Stagger)
		}
		c.StartNode(i)
	}
	c.WaitReady(20 * time.Second)
	// Tests reason about who leads what; let the balancer finish first.
	c.WaitFor(20*time.Second, "partition leaders are balanced", c.Balanced)
	return c
}

// StartNode starts (or restarts, on its old data directory and ports) node i.
func (c *Cluster) StartNode(i int) {
	c.t.Helper()
	if err := c.TryStartNode(i); err != nil {
		c.t.Fatal(err)
	}
}

// TryStartNode is StartNode returning its error, for callers outside the
// test goroutine.
func (c *Cluster) TryStartNode(i int) error {
	n := c.Node(i)
	var srv *server.Server
	var err error
	// A restarted node's ports may linger for a moment.
	for try := 0; try < 50; try++ {
		if srv, err = server.New(n.config()); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", n.ID, err)
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	return nil
}

// Join starts a new node that joins the running cluster the way an
// operator adds one (CONTRACT §7): an empty data directory, its own ports,
// the given ID, Join naming every other node's gossip address and no
// BootstrapExpect, so it learns the partition count and log store from
// the cluster. Options.Mutate and then mutate (if not nil) adjust its
// configuration. It returns the node's index once its server runs (it has
// found the cluster); the partition leaders make it a voter afterwards.
func (c *Cluster) Join(id string, mutate func(cfg *server.Config)) (int, error) {
	n := &Node{
		ID:     id,
		Dir:    c.t.TempDir(),
		HTTP:   testutil.FreeAddr(c.t),
		Raft:   testutil.FreeAddr(c.t),
		Gossip: testutil.FreeAddr(c.t),
		log:    &testutil.SyncBuffer{},
	}
	var joins []string
	for _, m := range c.all() {
		joins = append(joins, m.Gossip)
	}
	n.cfg = server.Config{
		NodeID:          n.ID,
		DataDir:         n.Dir,
		HTTPAddr:        n.HTTP,
		RaftAddr:        n.Raft,
		GossipAddr:      n.Gossip,
		Join:            joins,
		Logger:          slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", n.ID),
		Raft:            partition.FastRaftTimings(),
		Gossip:          membership.FastTimings(),
		BalanceInterval: 200 * time.Millisecond,
	}
	c.mu.Lock()
	i := len(c.Nodes)
	c.Nodes = append(c.Nodes, n)
	c.mu.Unlock()
	if c.opts.Mutate != nil {
		c.opts.Mutate(i, &n.cfg)
	}
	if mutate != nil {
		mutate(&n.cfg)
		// mutate may move the node, e.g. to a dead node's addresses.
		n.HTTP, n.Raft, n.Gossip = n.cfg.HTTPAddr, n.cfg.RaftAddr, n.cfg.GossipAddr
	}
	srv, err := server.New(n.config())
	if err != nil {
		return i, fmt.Errorf("start %s: %w", n.ID, err)
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	return i, nil
}

// SetJoin replaces the gossip addresses node i joins through at its next
// start, e.g. when the nodes it was started with have left.
func (c *Cluster) SetJoin(i int, addrs []string) {
	n := c.Node(i)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cfg.Join = append([]string(nil), addrs...)
}

// StartOnce starts node i on its data directory once, without
// TryStartNode's retries, and returns server.New's error: a node that must
// refuse to start (a removed one, say) says so at once.
func (c *Cluster) StartOnce(i int) error {
	n := c.Node(i)
	srv, err := server.New(n.config())
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	return nil
}

// Kill stops node i the way a crash looks to the others.
func (c *Cluster) Kill(i int) { c.stop(i, false) }

// Stop shuts node i down cleanly.
func (c *Cluster) Stop(i int) { c.stop(i, true) }

func (c *Cluster) stop(i int, clean bool) {
	n := c.Node(i)
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv == nil {
		return
	}
	if clean {
		srv.Close()
	} else {
		srv.Abort()
	}
}

// Isolate cuts node i's Raft and forwarding traffic, or restores it.
func (c *Cluster) Isolate(i int, on bool) { c.Node(i).Server().Isolate(on) }

// Partition splits the cluster's internal network into groups of node
// indexes: nodes talk only within their group. Nodes left out of every
// group are cut off from everyone. Partition() heals everything.
func (c *Cluster) Partition(groups ...[]int) {
	group := map[int]int{}
	for g, members := range groups {
		for _, i := range members {
			group[i] = g + 1
		}
	}
	c.Cut(func(a, b int) bool {
		if len(groups) == 0 {
			return false
		}
		return group[a] == 0 || group[a] != group[b]
	})
}

// Cut blocks traffic between every pair a, b of nodes for which cut(a, b)
// is true (asked both ways round; either answer cuts the pair). It can draw
// any topology, e.g. a bridge where one node still reaches both sides.
func (c *Cluster) Cut(cut func(a, b int) bool) {
	nodes := c.all()
	for a, n := range nodes {
		var blocked []string
		for b, m := range nodes {
			if a != b && (cut(a, b) || cut(b, a)) {
				blocked = append(blocked, m.Raft)
			}
		}
		if srv := n.Server(); srv != nil {
			srv.BlockPeers(blocked)
		}
	}
}

// Running are the indexes of the nodes that are up.
func (c *Cluster) Running() []int {
	var out []int
	for i, n := range c.all() {
		if n.Server() != nil {
			out = append(out, i)
		}
	}
	return out
}

// WaitReady waits until every running node answers /readyz with 200. On
// timeout it also logs what each node that was not ready last said.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	var why map[string]string
	// Fatal unwinds through this defer, so the reasons reach the log.
	defer func() {
		if len(why) > 0 {
			c.t.Logf("not ready: %v", why)
		}
	}()
	c.WaitFor(timeout, "every running node is ready", func() bool {
		why = c.notReady()
		return len(why) == 0
	})
}

// notReady asks every running node's /readyz and returns, by node ID, the
// reason of each one that is not ready.
func (c *Cluster) notReady() map[string]string {
	why := make(map[string]string)
	for _, i := range c.Running() {
		n := c.Node(i)
		resp, err := http.Get("http://" + n.HTTP + "/readyz")
		if err != nil {
			why[n.ID] = err.Error()
			continue
		}
		var h wire.Health
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
		case err != nil:
			why[n.ID] = fmt.Sprintf("%s (unreadable body: %v)", resp.Status, err)
		default:
			why[n.ID] = h.Reason
		}
	}
	return why
}

// WaitFor polls cond until it holds or timeout passes.
func (c *Cluster) WaitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Leaders returns each partition's serving leader (empty while it has
// none), as the running nodes themselves report it.
func (c *Cluster) Leaders() []string {
	out := make([]string, c.opts.Partitions)
	for _, i := range c.Running() {
		srv := c.Node(i).Server()
		if srv == nil {
			continue
		}
		for p, g := range srv.Partitions().Groups() {
			if g.IsLeader() && p < len(out) {
				out[p] = c.Node(i).ID
			}
		}
	}
	return out
}

// LeaderIndex is the index of the node serving partition p, or -1.
func (c *Cluster) LeaderIndex(p int) int {
	id := c.Leaders()[p]
	for i, n := range c.all() {
		if n.ID == id {
			return i
		}
	}
	return -1
}

// Balanced reports whether every partition has a leader and leaders are
// spread over the running nodes with max − min ≤ 1.
func (c *Cluster) Balanced() bool {
	count := map[string]int{}
	for _, i := range c.Running() {
		count[c.Node(i).ID] = 0
	}
	for _, l := range c.Leaders() {
		if l == "" {
			return false
		}
		count[l]++
	}
	lo, hi := 1<<30, -1
	for _, n := range count {
		lo, hi = min(lo, n), max(hi, n)
	}
	return hi-lo <= 1
}

// Logs returns node i's log so far.
func (c *Cluster) Logs(i int) string { return c.Node(i).log.String() }

func (c *Cluster) shutdown() {
	var wg sync.WaitGroup
	for i := range c.all() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Kill(i)
		}()
	}
	wg.Wait()
	if c.t.Failed() {
		for i, n := range c.all() {
			c.t.Logf("---- log of %s ----\n%s", n.ID, tail(c.Logs(i), 60))
		}
	}
}

// Ctx is a context for one request in a test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func tail(s string, lines int) string {
	b := []byte(s)
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n++
			if n > lines {
				return string(b[i+1:])
			}
		}
	}
	return s
}

// EachLogStore runs test once per Raft log engine, as a subtest named
// after it: what must survive restarts, snapshots and failovers is checked
// against every engine by the same test.
func EachLogStore(t *testing.T, test func(t *testing.T, store partition.LogStore)) {
	for _, store := range partition.LogStores() {
		t.Run(string(store), func(t *testing.T) { test(t, store) })
	}
}
