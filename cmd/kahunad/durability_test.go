package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// The kill -9 test: concurrent clients lock, extend and unlock persistent
// locks while kahunad is killed; after each restart every acknowledged
// write must still be there, and fencing tokens must keep growing.

const (
	k9Workers    = 16
	k9PerWorker  = 4
	k9Ephemerals = 8
	k9Cycles     = 3
	k9Load       = 1500 * time.Millisecond
	k9ExpiresMs  = 600_000
)

type k9Op int

const (
	opLock k9Op = iota
	opExtend
	opUnlock
)

func (o k9Op) String() string { return [...]string{"try-lock", "try-extend", "try-unlock"}[o] }

// k9Pending is a request whose outcome the client does not know: it was in
// flight when the process died, or it answered MustRetry.
type k9Pending struct {
	op   k9Op
	send int64 // unix ms, taken before sending
	why  string
}

// k9Resource is the client's model of one persistent lock. Only one worker
// touches a resource, so the model is exact for every acknowledged reply.
type k9Resource struct {
	name  string
	owner string
	held  bool
	token int64
	// lb is a lower bound of the lock's expiry (unix ms): the send time of
	// the acknowledged grant or extend that set it, plus expiresMs.
	lb int64
	// maxSeen is the largest fencing token any reply showed for the lock.
	maxSeen int64
	pending *k9Pending
	// acked counts acknowledged operations; hist keeps the last few, for
	// failure messages.
	acked int
	hist  []string
}

func (r *k9Resource) seen(token int64) { r.maxSeen = max(r.maxSeen, token) }

func (r *k9Resource) record(op k9Op, send int64, rep testutil.Reply) {
	if len(r.hist) == 6 {
		r.hist = r.hist[1:]
	}
	r.hist = append(r.hist, fmt.Sprintf("%s by %s sent at %d → %v", op, r.owner, send, rep))
}

type k9Stats struct {
	acked, pending, mustRetry atomic.Int64
}

// TestKill9Durability runs the kill -9 cycles against a single node and a
// three-node cluster (every node killed at once), with each log store.
func TestKill9Durability(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 cycles take about 15 s")
	}
	t.Parallel()
	for _, store := range partition.LogStores() {
		for _, nodes := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/nodes=%d", store, nodes), func(t *testing.T) {
				t.Parallel()
				kill9Cycles(t, store, nodes)
			})
		}
	}
}

// k9Target is the node or cluster under test.
type k9Target struct {
	t     *testing.T
	nodes []*testutil.Node
	procs []*testutil.Process
}

func startK9Target(t *testing.T, store partition.LogStore, size int) *k9Target {
	if size == 1 {
		n := testutil.NewNode(t, kahunadBin)
		n.Args = []string{"--partitions", "4", "--node-id", "k9", "--log-store", string(store)}
		return &k9Target{t: t, nodes: []*testutil.Node{n}, procs: []*testutil.Process{n.StartReady(t)}}
	}
	c := startProcCluster(t, size, "--log-store", string(store))
	return &k9Target{t: t, nodes: c.nodes, procs: c.procs}
}

// client is worker w's way in: workers are spread over the nodes, so a
// cluster also forwards.
func (k *k9Target) client(w int) *testutil.Client { return k.procs[w%len(k.procs)].Client() }

// killAll kill -9s every node at once.
func (k *k9Target) killAll() {
	var wg sync.WaitGroup
	for _, p := range k.procs {
		wg.Go(p.Kill)
	}
	wg.Wait()
}

// restartAll starts every node on its data directory and waits until all
// are ready.
func (k *k9Target) restartAll() {
	k.t.Helper()
	for i, n := range k.nodes {
		k.procs[i] = n.Start(k.t)
	}
	for _, p := range k.procs {
		if err := p.WaitReady(30 * time.Second); err != nil {
			k.t.Fatal(err)
		}
	}
}

func (k *k9Target) stopAll() {
	for _, p := range k.procs {
		p.Stop()
	}
}

func kill9Cycles(t *testing.T, store partition.LogStore, size int) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	target := startK9Target(t, store, size)

	res := make([][]*k9Resource, k9Workers)
	for w := range res {
		for i := range k9PerWorker {
			res[w] = append(res[w], &k9Resource{name: fmt.Sprintf("k9/w%02d/r%d", w, i), owner: fmt.Sprintf("w%02d-c0", w), maxSeen: -1})
		}
	}
	ephMax := make([]int64, k9Ephemerals)
	for i := range ephMax {
		ephMax[i] = -1
	}

	for cycle := range k9Cycles {
		lockEphemerals(t, target.client(cycle), ephMax, cycle)

		var stats k9Stats
		var wg sync.WaitGroup
		for w := range k9Workers {
			wg.Go(func() {
				k9Worker(t, target.client(w), res[w], rand.New(rand.NewPCG(seed, uint64(cycle*k9Workers+w))), &stats)
			})
		}
		time.Sleep(k9Load) // the load runs this long; then the crash
		target.killAll()
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		t.Logf("cycle %d: %d acknowledged operations, %d unknown outcomes at the kill, %d MustRetry",
			cycle, stats.acked.Load(), stats.pending.Load(), stats.mustRetry.Load())

		target.restartAll()
		c := target.client(cycle + 1)
		for i := range ephMax {
			rep := retry101(t, func(ctx context.Context) (testutil.Reply, error) {
				return c.GetInfo(ctx, testutil.LockRequest{Resource: ephName(i), Durability: testutil.Ephemeral})
			})
			if rep.Type != testutil.LockDoesNotExist {
				t.Errorf("ephemeral %s after restart: %v, want LockDoesNotExist", ephName(i), rep)
			}
		}
		var vwg sync.WaitGroup
		for w := range k9Workers {
			vwg.Go(func() {
				for _, r := range res[w] {
					k9Verify(t, target.client(w), r)
					k9Regrant(t, target.client(w), r, fmt.Sprintf("w%02d-c%d", w, cycle+1))
				}
			})
		}
		vwg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	lockEphemerals(t, target.client(0), ephMax, k9Cycles)
	target.stopAll()
}

func ephName(i int) string { return fmt.Sprintf("k9/eph/%d", i) }

// lockEphemerals takes every ephemeral lock for a new owner; each token
// must be larger than any earlier one of that lock. Ephemeral locks live in
// their leader's memory and go with a leader change — right after a
// restart the balancer still moves leaders — so a lock found gone is taken
// again, but only if some partition's leader or term changed meanwhile.
func lockEphemerals(t *testing.T, c *testutil.Client, maxTok []int64, cycle int) {
	t.Helper()
	for i := range maxTok {
		req := testutil.LockRequest{Resource: ephName(i), Owner: fmt.Sprintf("eph-c%d", cycle), ExpiresMs: k9ExpiresMs, Durability: testutil.Ephemeral}
		for attempt := 1; ; attempt++ {
			before := leadershipOf(t, c)
			rep := retry101(t, func(ctx context.Context) (testutil.Reply, error) { return c.TryLock(ctx, req) })
			if rep.Type != testutil.Locked || rep.Token() <= maxTok[i] {
				t.Fatalf("ephemeral try-lock %s (cycle %d): %v, want Locked with a token above %d", req.Resource, cycle, rep, maxTok[i])
			}
			maxTok[i] = rep.Token()
			info := retry101(t, func(ctx context.Context) (testutil.Reply, error) {
				return c.GetInfo(ctx, testutil.LockRequest{Resource: req.Resource, Durability: testutil.Ephemeral})
			})
			if info.Type == testutil.Got && info.Token() == rep.Token() && info.Owner == req.Owner {
				break
			}
			if after := leadershipOf(t, c); info.Type == testutil.LockDoesNotExist && attempt < 5 && after != before {
				t.Logf("ephemeral %s went with a leader change (%s → %s); taking it again", req.Resource, before, after)
				continue
			}
			t.Fatalf("ephemeral get-info %s: %v, want Got %s token %d", req.Resource, info, req.Owner, rep.Token())
		}
	}
}

// leadershipOf is every partition's leader and term as c's node sees them.
func leadershipOf(t *testing.T, c *testutil.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range st.Partitions {
		fmt.Fprintf(&b, "%d:%s@%d ", p.ID, p.Leader, p.Term)
	}
	return strings.TrimSpace(b.String())
}

// retry101 runs f until it answers something other than MustRetry, for up
// to 10 s; a transport error fails the test.
func retry101(t *testing.T, f func(context.Context) (testutil.Reply, error)) testutil.Reply {
	rep, _ := retry101Seen(t, f)
	return rep
}

// retry101Seen is retry101 that also says whether some answer was 101: an
// attempt answered 101 may have taken effect, so the next one may find its
// work done.
func retry101Seen(t *testing.T, f func(context.Context) (testutil.Reply, error)) (testutil.Reply, bool) {
	deadline := time.Now().Add(10 * time.Second)
	retried := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rep, err := f(ctx)
		cancel()
		if err != nil {
			t.Errorf("request failed: %v", err)
			return testutil.Reply{Type: -1}, retried
		}
		if rep.Type != testutil.MustRetry || time.Now().After(deadline) {
			return rep, retried
		}
		retried = true
		time.Sleep(20 * time.Millisecond)
	}
}

// k9Worker runs random operations on its own resources until a request
// fails (the process died) or none is left with a known state.
func k9Worker(t *testing.T, c *testutil.Client, rs []*k9Resource, rng *rand.Rand, stats *k9Stats) {
	for {
		var live []*k9Resource
		for _, r := range rs {
			if r.pending == nil {
				live = append(live, r)
			}
		}
		if len(live) == 0 {
			return
		}
		r := live[rng.IntN(len(live))]
		op := opLock
		x := rng.IntN(100)
		switch {
		case r.held && x < 10:
			op = opLock // an idempotent retry
		case r.held && x < 55:
			op = opExtend
		case r.held:
			op = opUnlock
		case x < 80:
			op = opLock
		case x < 90:
			op = opExtend
		default:
			op = opUnlock
		}
		req := testutil.LockRequest{Resource: r.name, Owner: r.owner, ExpiresMs: k9ExpiresMs, Durability: testutil.Persistent}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		send := time.Now().UnixMilli()
		var rep testutil.Reply
		var err error
		switch op {
		case opLock:
			rep, err = c.TryLock(ctx, req)
		case opExtend:
			rep, err = c.TryExtend(ctx, req)
		case opUnlock:
			rep, err = c.TryUnlock(ctx, req)
		}
		cancel()
		if err != nil {
			r.pending = &k9Pending{op: op, send: send, why: err.Error()}
			stats.pending.Add(1)
			return
		}
		if rep.Type == testutil.MustRetry {
			r.pending = &k9Pending{op: op, send: send, why: rep.String()}
			stats.mustRetry.Add(1)
			continue
		}
		stats.acked.Add(1)
		r.acked++
		r.record(op, send, rep)
		if !k9Apply(t, r, op, send, rep) {
			return
		}
	}
}

// k9Apply checks an acknowledged reply against the model and updates it.
func k9Apply(t *testing.T, r *k9Resource, op k9Op, send int64, rep testutil.Reply) bool {
	bad := func(want string) bool {
		t.Errorf("%s %s (owner %s, held %v token %d): %v, want %s", op, r.name, r.owner, r.held, r.token, rep, want)
		return false
	}
	switch {
	case op == opLock && rep.Type != testutil.Locked:
		return bad("Locked")
	case op == opLock && r.held:
		if rep.Token() != r.token {
			return bad(fmt.Sprintf("the same token %d (idempotent retry)", r.token))
		}
	case op == opLock:
		if rep.Token() <= r.maxSeen {
			return bad(fmt.Sprintf("a new token above %d", r.maxSeen))
		}
		r.held, r.token, r.lb = true, rep.Token(), send+k9ExpiresMs
	case op == opExtend && r.held:
		if rep.Type != testutil.Extended || rep.Token() != r.token {
			return bad(fmt.Sprintf("Extended with token %d", r.token))
		}
		r.lb = send + k9ExpiresMs
	case op == opUnlock && r.held:
		if rep.Type != testutil.Unlocked {
			return bad("Unlocked")
		}
		r.held = false
	default: // extend or unlock of a free lock
		if rep.Type != testutil.LockDoesNotExist {
			return bad("LockDoesNotExist")
		}
	}
	if rep.FencingToken != nil {
		r.seen(rep.Token())
	}
	return true
}

// k9Verify checks one resource after a restart against the model, then
// makes the model what the server shows.
func k9Verify(t *testing.T, c *testutil.Client, r *k9Resource) {
	info := retry101(t, func(ctx context.Context) (testutil.Reply, error) {
		return c.GetInfo(ctx, testutil.LockRequest{Resource: r.name, Durability: testutil.Persistent})
	})
	got := info.Type == testutil.Got
	if !got && info.Type != testutil.LockDoesNotExist {
		t.Errorf("get-info %s after restart: %v, want Got or LockDoesNotExist", r.name, info)
		return
	}
	state := fmt.Sprintf("%s: model held %v token %d expiry ≥ %d, max token seen %d, %d acknowledged operations",
		r.name, r.held, r.token, r.lb, r.maxSeen, r.acked)
	if pd := r.pending; pd != nil {
		state += fmt.Sprintf("; unknown outcome of %s sent at %d (%s)", pd.op, pd.send, pd.why)
	}
	if len(r.hist) > 0 {
		state += "; last acknowledged:\n\t\t" + strings.Join(r.hist, "\n\t\t")
	}
	fail := func(want string) {
		t.Errorf("after kill -9 and restart, get-info %v; want %s\n\t%s", info, want, state)
	}
	if got && info.Owner != r.owner {
		fail("owner " + r.owner)
	}
	pd := r.pending
	switch {
	case pd == nil && r.held:
		if !got || info.Token() != r.token || info.ExpiresL() < r.lb {
			fail(fmt.Sprintf("Got with the acknowledged token %d and expires.l ≥ %d", r.token, r.lb))
		}
	case pd == nil:
		if got {
			fail("LockDoesNotExist: the last acknowledged operation released it")
		}
	case r.held: // lock, extend or unlock of a held lock; only an unlock may have freed it
		if !got && pd.op != opUnlock {
			fail(fmt.Sprintf("Got: it was held with token %d and the unacknowledged %s cannot free it", r.token, pd.op))
		}
		if got && (info.Token() != r.token || info.ExpiresL() < r.lb) {
			fail(fmt.Sprintf("token %d and expires.l ≥ %d", r.token, r.lb))
		}
	default: // free; only an unacknowledged try-lock may have taken it
		if got && pd.op != opLock {
			fail(fmt.Sprintf("LockDoesNotExist: it was free and the unacknowledged %s cannot take it", pd.op))
		}
		if got && (info.Token() <= r.maxSeen || info.ExpiresL() < pd.send+k9ExpiresMs) {
			fail(fmt.Sprintf("a token above every one seen (%d) and expires.l ≥ %d", r.maxSeen, pd.send+k9ExpiresMs))
		}
	}
	r.pending, r.held = nil, got
	if got {
		r.token, r.lb = info.Token(), info.ExpiresL()
		r.seen(info.Token())
	}
}

// k9Regrant releases the resource and grants it to a new owner: the token
// must exceed every token ever seen for it.
func k9Regrant(t *testing.T, c *testutil.Client, r *k9Resource, owner string) {
	if r.held {
		rep, retried := retry101Seen(t, func(ctx context.Context) (testutil.Reply, error) {
			return c.TryUnlock(ctx, testutil.LockRequest{Resource: r.name, Owner: r.owner, Durability: testutil.Persistent})
		})
		// An unlock answered 101 (leadership lost during its commit) may
		// have released the lock; its retry then finds nothing to unlock.
		if rep.Type != testutil.Unlocked && !(retried && rep.Type == testutil.LockDoesNotExist) {
			t.Errorf("try-unlock %s by %s after restart: %v, want Unlocked", r.name, r.owner, rep)
			return
		}
	}
	send := time.Now().UnixMilli()
	rep := retry101(t, func(ctx context.Context) (testutil.Reply, error) {
		return c.TryLock(ctx, testutil.LockRequest{Resource: r.name, Owner: owner, ExpiresMs: k9ExpiresMs, Durability: testutil.Persistent})
	})
	if rep.Type != testutil.Locked || rep.Token() <= r.maxSeen {
		t.Errorf("fresh try-lock %s after restart: %v, want Locked with a token above %d", r.name, rep, r.maxSeen)
		return
	}
	r.owner, r.held, r.token, r.lb, r.acked, r.hist = owner, true, rep.Token(), send+k9ExpiresMs, 0, nil
	r.seen(rep.Token())
}
