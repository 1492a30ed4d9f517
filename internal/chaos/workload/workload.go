// Package workload drives a Kahuna cluster the way many lock users at once
// would, and records every operation for the checkers: clients on a few hot
// resources and many cold ones, persistent and ephemeral, try-lock with and
// without waiting, extend, unlock, get-info and the odd force-unlock, with
// leases short enough to expire while faults are in the air. Every grant's
// fencing token goes to a FencedStore, as a careful user's would.
package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
	"github.com/kahuna-go/kahuna/internal/testutil"
)

// Config shapes a workload.
type Config struct {
	// Endpoints are the nodes' base URLs; each operation goes to a random
	// one, so most are forwarded to a partition leader.
	Endpoints []string
	// Live, if set, replaces Endpoints while the workload runs: each
	// operation goes to one of the URLs it returns at that moment, so
	// nodes that join the cluster get traffic and nodes that left it
	// stop getting it.
	Live func() []string
	// Clients is the number of concurrent clients, each with one
	// operation in flight at a time.
	Clients int
	// HotResources are contended by everyone (HotShare of the
	// operations); ColdResources rarely meet two clients.
	HotResources, ColdResources int
	// HotGeneration is how long the clients contend for one set of hot
	// resources before they move to fresh names: the linearizability
	// search is exponential in the worst case, and a hot lock of a long
	// run, with thousands of operations of unknown outcome, would not be
	// decided in time. Locks still held are used on until released.
	// A 1-minute generation of a 30-minute run left one lock of 90 (1,001
	// ops, 114 unknown) undecided where the others took milliseconds, so
	// the default is a third of that.
	HotGeneration time.Duration
	HotShare      float64
	// EphemeralShare of the operations use ephemeral locks.
	EphemeralShare float64
	// Leases are drawn from [MinTTL, MaxTTL]; a waiting try-lock waits up
	// to MaxWait.
	MinTTL, MaxTTL, MaxWait time.Duration
	// OpTimeout bounds one request (plus its wait); a request that runs
	// out has an unknown outcome.
	OpTimeout time.Duration
	// ForceUnlockShare of the operations are operator force-unlocks.
	ForceUnlockShare float64
	// Seed makes the choices (not the timing) repeatable.
	Seed int64
	// NewClient makes the client of a node's base URL (nil:
	// testutil.NewClient); a cluster with TLS and tokens needs its own.
	NewClient func(base string) *testutil.Client
}

// WithDefaults fills the zero fields with the values the suite uses.
func (c Config) WithDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Clients, 12)
	def(&c.HotResources, 3)
	def(&c.ColdResources, 40)
	if c.HotShare == 0 {
		c.HotShare = 0.6
	}
	if c.EphemeralShare == 0 {
		c.EphemeralShare = 0.25
	}
	if c.ForceUnlockShare == 0 {
		c.ForceUnlockShare = 0.01
	}
	defD(&c.MinTTL, 300*time.Millisecond)
	defD(&c.MaxTTL, 1500*time.Millisecond)
	defD(&c.MaxWait, time.Second)
	defD(&c.OpTimeout, 2*time.Second)
	defD(&c.HotGeneration, 20*time.Second)
	return c
}

// generation is the hot generation at elapsed time into a run.
func (c Config) generation(elapsed time.Duration) int {
	if c.HotGeneration <= 0 {
		return 0
	}
	return int(elapsed / c.HotGeneration)
}

// hotName names hot resource i of generation g.
func hotName(g, i int) string { return fmt.Sprintf("hot/%d/%d", g, i) }

// Resources are the names the workload used in a run of elapsed time,
// hot ones first.
func (c Config) Resources(elapsed time.Duration) []string {
	c = c.WithDefaults()
	var out []string
	for g := range c.generation(elapsed) + 1 {
		for i := range c.HotResources {
			out = append(out, hotName(g, i))
		}
	}
	for i := range c.ColdResources {
		out = append(out, fmt.Sprintf("cold/%d", i))
	}
	return out
}

// Run drives the cluster until ctx ends, recording into rec and writing
// every grant's token to store. Operations in flight when ctx ends are
// allowed to finish (within OpTimeout), so the history ends cleanly.
func Run(ctx context.Context, cfg Config, rec *chaos.Recorder, store *FencedStore) {
	cfg = cfg.WithDefaults()
	nodes := Dial(cfg.Endpoints, cfg.NewClient)
	if cfg.Live != nil {
		nodes = DialLive(cfg.Live, cfg.NewClient)
	}
	defer nodes.Close()
	var wg sync.WaitGroup
	for id := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{
				id: id, cfg: cfg, rec: rec, store: store, nodes: nodes,
				rng:  rand.New(rand.NewSource(cfg.Seed*1000 + int64(id))),
				held: map[chaos.LockKey]holding{},
			}
			for ctx.Err() == nil {
				c.step()
			}
		}()
	}
	wg.Wait()
}

// holding is a lock a client believes it may hold. An unknown token means
// the try-lock's outcome was unknown.
type holding struct {
	owner string
	token int64
	known bool
}

type client struct {
	id    int
	cfg   Config
	rec   *chaos.Recorder
	store *FencedStore
	nodes *Nodes
	rng   *rand.Rand
	seq   int
	held  map[chaos.LockKey]holding
}

func (c *client) step() {
	if len(c.held) > 0 && c.rng.Float64() < 0.45 {
		c.useHeld()
		return
	}
	k := c.pickLock()
	switch r := c.rng.Float64(); {
	case r < c.cfg.ForceUnlockShare:
		c.do(chaos.Op{Kind: chaos.ForceUnlock, Resource: k.Resource, Durability: k.Durability})
		delete(c.held, k)
	case r < 0.35:
		c.do(chaos.Op{Kind: chaos.GetInfo, Resource: k.Resource, Durability: k.Durability})
	default:
		if _, ok := c.held[k]; ok {
			c.do(chaos.Op{Kind: chaos.GetInfo, Resource: k.Resource, Durability: k.Durability})
			return
		}
		c.seq++
		op := chaos.Op{Kind: chaos.TryLock, Resource: k.Resource, Durability: k.Durability,
			Owner: fmt.Sprintf("c%d.%d", c.id, c.seq), TTL: c.ttl()}
		if c.rng.Float64() < 0.4 {
			op.Wait = time.Duration(c.rng.Int63n(int64(c.cfg.MaxWait)))
		}
		done := c.do(op)
		switch {
		case done.Is(chaos.TypeLocked):
			c.held[k] = holding{owner: op.Owner, token: done.Token, known: true}
			c.write(k, c.held[k])
		case !done.Definite:
			c.held[k] = holding{owner: op.Owner}
		}
	}
}

// useHeld works under one held lock (a write to the fenced store), then
// extends or releases it.
func (c *client) useHeld() {
	keys := make([]chaos.LockKey, 0, len(c.held))
	for k := range c.held {
		keys = append(keys, k)
	}
	// Map order is random but not seeded; sort for repeatable choices.
	sortKeys(keys)
	k := keys[c.rng.Intn(len(keys))]
	h := c.held[k]
	if h.known {
		c.write(k, h)
	}
	if c.rng.Float64() < 0.5 {
		done := c.do(chaos.Op{Kind: chaos.Extend, Resource: k.Resource, Durability: k.Durability, Owner: h.owner, TTL: c.ttl()})
		switch {
		case done.Is(chaos.TypeExtended):
			c.held[k] = holding{owner: h.owner, token: done.Token, known: true}
		case done.Definite:
			delete(c.held, k) // expired, taken over or force-unlocked
		}
		return
	}
	c.do(chaos.Op{Kind: chaos.Unlock, Resource: k.Resource, Durability: k.Durability, Owner: h.owner})
	delete(c.held, k) // if the outcome is unknown, the lease ends it
}

func (c *client) write(k chaos.LockKey, h holding) {
	_ = c.store.Write(k, h.owner, h.token) // a stale token is counted, not fatal
}

func (c *client) pickLock() chaos.LockKey {
	var name string
	if c.cfg.ColdResources == 0 || (c.cfg.HotResources > 0 && c.rng.Float64() < c.cfg.HotShare) {
		name = hotName(c.cfg.generation(c.rec.Now()), c.rng.Intn(c.cfg.HotResources))
	} else {
		name = fmt.Sprintf("cold/%d", c.rng.Intn(c.cfg.ColdResources))
	}
	d := chaos.Persistent
	if c.rng.Float64() < c.cfg.EphemeralShare {
		d = chaos.Ephemeral
	}
	return chaos.LockKey{Resource: name, Durability: d}
}

func (c *client) ttl() time.Duration {
	span := c.cfg.MaxTTL - c.cfg.MinTTL
	d := c.cfg.MinTTL
	if span > 0 {
		d += time.Duration(c.rng.Int63n(int64(span)))
	}
	return d.Truncate(time.Millisecond)
}

// do sends op to a random node and records it. Told to retry (101), the
// client pauses before its next operation, as pkg/client backs off: a
// node that stopped serving (removed from the cluster) answers 101 at
// once, and clients that did not pause would spin on it, filling the
// history with operations of unknown outcome.
func (c *client) do(op chaos.Op) chaos.Op {
	op.Client = c.id
	done := c.nodes.Do(c.rec, c.rng.Intn(c.nodes.Len()), op, c.cfg.OpTimeout)
	if !done.Definite && done.Type == chaos.TypeMustRetry {
		time.Sleep(retryPause)
	}
	return done
}

// retryPause is how long a client waits after a 101: pkg/client's
// shortest back-off.
const retryPause = 50 * time.Millisecond

// Nodes are HTTP clients of the cluster's nodes, shared by all clients.
type Nodes struct {
	clients []*testutil.Client
	// live, if set, lists the nodes' URLs at each call; their clients
	// are made on first use and kept in byURL.
	live      func() []string
	newClient func(string) *testutil.Client
	mu        sync.Mutex
	byURL     map[string]*testutil.Client
}

// Dial returns clients for the given base URLs, made by newClient (nil:
// testutil.NewClient).
func Dial(endpoints []string, newClient func(string) *testutil.Client) *Nodes {
	n := &Nodes{newClient: orPlain(newClient)}
	for _, e := range endpoints {
		n.clients = append(n.clients, n.newClient(e))
	}
	return n
}

// DialLive returns clients for the URLs live returns, asked anew for each
// request: for a cluster whose members change.
func DialLive(live func() []string, newClient func(string) *testutil.Client) *Nodes {
	return &Nodes{live: live, newClient: orPlain(newClient), byURL: map[string]*testutil.Client{}}
}

// orPlain is newClient, or testutil.NewClient if it is nil.
func orPlain(newClient func(string) *testutil.Client) func(string) *testutil.Client {
	if newClient == nil {
		return testutil.NewClient
	}
	return newClient
}

// Len is the number of nodes (now, for DialLive).
func (n *Nodes) Len() int {
	if n.live != nil {
		return max(1, len(n.live()))
	}
	return len(n.clients)
}

// client is node i's client; with DialLive, i is taken modulo the nodes
// there are now, and nil means there are none.
func (n *Nodes) client(i int) *testutil.Client {
	if n.live == nil {
		return n.clients[i]
	}
	urls := n.live()
	if len(urls) == 0 {
		return nil
	}
	url := urls[i%len(urls)]
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.byURL[url]
	if c == nil {
		c = n.newClient(url)
		n.byURL[url] = c
	}
	return c
}

// Close drops idle connections.
func (n *Nodes) Close() {
	for _, c := range n.clients {
		c.Close()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.byURL {
		c.Close()
	}
}

// Do sends op to node i, recording it in rec, and returns the op as
// recorded. A request refused at connect time never reached a server and is
// dropped from the history (its Definite is false and Err says so).
func (n *Nodes) Do(rec *chaos.Recorder, i int, op chaos.Op, timeout time.Duration) chaos.Op {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+op.Wait)
	defer cancel()
	req := testutil.LockRequest{Resource: op.Resource, Owner: op.Owner, Durability: op.Durability, ExpiresMs: op.TTL.Milliseconds()}
	if op.Wait > 0 {
		req.WaitMs = testutil.Ms(op.Wait)
	}
	c := n.client(i)
	if c == nil {
		time.Sleep(10 * time.Millisecond)
		op.Err = "no node to send to"
		return op
	}
	call := map[chaos.Kind]func(context.Context, testutil.LockRequest) (testutil.Reply, error){
		chaos.TryLock: c.TryLock, chaos.Extend: c.TryExtend, chaos.Unlock: c.TryUnlock,
		chaos.GetInfo: c.GetInfo, chaos.ForceUnlock: c.ForceUnlock,
	}[op.Kind]
	h := rec.Begin(op)
	rep, err := call(ctx, req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		_ = rec.Cancel(h)
		op.Err = err.Error()
		return op
	}
	got := chaos.Reply{Type: rep.Type, Holder: rep.Owner, Node: rep.ServedFrom, Error: rep.Error}
	if t := rep.Token(); t >= 0 {
		got.Token = t
	}
	_ = rec.End(h, got, err)
	done := rec.Op(h)
	if done.Kind == chaos.TryLock && done.Wait > 0 && !done.Definite {
		// A waiter whose caller is gone has its grant released by the
		// server (docs/architecture.md, "Blocking acquire"): an unlock
		// this client never sent, which the checkers must allow.
		_ = rec.Imply(h, chaos.Op{Kind: chaos.Unlock, Resource: op.Resource, Durability: op.Durability, Owner: op.Owner},
			"the server releases a grant whose waiter left")
	}
	return done
}

func sortKeys(keys []chaos.LockKey) {
	slices.SortFunc(keys, func(a, b chaos.LockKey) int {
		if c := strings.Compare(a.Resource, b.Resource); c != 0 {
			return c
		}
		return a.Durability - b.Durability
	})
}
