package client

import (
	"context"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kahuna-go/kahuna/pkg/leaders"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// minRouteRefresh bounds how often the client re-reads the cluster status:
// through an election every reply may show a forwarded request, and one
// status read per half second is plenty to follow leadership.
const minRouteRefresh = 500 * time.Millisecond

// unreachableFor is how long the client stops routing to an endpoint that
// failed to answer. A crashed machine may keep leading in the last status
// until an election ends; meanwhile requests go the plain way, to the
// endpoint that answered last, instead of each waiting on a dead one.
const unreachableFor = 5 * time.Second

// overdueAfter is how long past its server-side wait a routed attempt may
// go unanswered before its endpoint counts as unreachable for the requests
// that follow. A healthy leader answers in milliseconds (at most ~3 s while
// its partition has no leader); a machine that died without closing its
// sockets never does, and the attempt itself only gives up after
// Config.AttemptTimeout.
const overdueAfter = 2 * time.Second

// routing sends each lock request first to the endpoint of its partition's
// leader, learnt from GET /v1/cluster/status. A request that goes elsewhere
// is forwarded by the server, so routing only saves work: it never changes
// an answer.
type routing struct {
	addrs []string // the client's endpoints as host:port
	now   func() time.Time
	fetch func(ctx context.Context, endpoint int) (*wire.ClusterStatus, error)

	table atomic.Pointer[leaders.Map]
	// downUntil holds, per endpoint, when routing to it may resume (unix ns).
	downUntil []atomic.Int64
	overdue   time.Duration // overdueAfter; tests shorten it

	ctx    context.Context // ends with the client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	// A refresh runs while busy; last is when the latest began, and from
	// the endpoint the next one asks, round robin, so that a node cut off
	// from the cluster cannot keep the map stale.
	busy   bool
	last   time.Time
	from   int
	closed bool
}

func newRouting(endpoints []string, now func() time.Time, fetch func(ctx context.Context, endpoint int) (*wire.ClusterStatus, error)) *routing {
	addrs := make([]string, len(endpoints))
	for i, e := range endpoints {
		if u, err := url.Parse(e); err == nil {
			addrs[i] = leaders.Addr(u)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &routing{addrs: addrs, now: now, fetch: fetch, ctx: ctx, cancel: cancel,
		downUntil: make([]atomic.Int64, len(endpoints)), overdue: overdueAfter}
}

// lookup returns the endpoint to try first for resource and the node that
// should answer from it; -1 and "" when the map has no route.
func (r *routing) lookup(resource string) (int, string) {
	if r == nil {
		return -1, ""
	}
	e, node, ok := r.table.Load().Lookup(resource)
	if !ok || r.now().UnixNano() < r.downUntil[e].Load() {
		return -1, ""
	}
	return e, node
}

// unreachable is told that endpoint e did not answer.
func (r *routing) unreachable(e int) {
	if r == nil {
		return
	}
	r.downUntil[e].Store(r.now().Add(unreachableFor).UnixNano())
}

// watch marks endpoint e unreachable if the routed attempt it is about to
// get, which carries a server-side wait, is still unanswered overdue after
// it; call the returned func when the attempt ends.
func (r *routing) watch(e int, wait time.Duration) (done func() bool) {
	return time.AfterFunc(wait+r.overdue, func() { r.unreachable(e) }).Stop
}

// answered is told which node served a request routed to expect (""
// when unrouted). A mismatch means leadership moved, or the map is
// missing or behind: refresh it — unless the request was unrouted because
// its leader is known to live at an address we were not given, where a
// refresh would change nothing.
func (r *routing) answered(expect, servedFrom string) {
	if r == nil || servedFrom == expect {
		return
	}
	if expect == "" && r.table.Load().Elsewhere(servedFrom) {
		return
	}
	r.refresh()
}

// refresh re-reads the status in the background, at most once per
// minRouteRefresh and one at a time.
func (r *routing) refresh() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.closed || r.busy || now.Sub(r.last) < minRouteRefresh {
		return
	}
	r.busy, r.last = true, now
	from := r.from
	r.from = (r.from + 1) % len(r.addrs)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
		defer cancel()
		// A failed read changes nothing: the next mismatch asks the next
		// endpoint.
		if st, err := r.fetch(ctx, from); err == nil {
			r.table.Store(leaders.FromStatus(st, r.addrs))
		}
		r.mu.Lock()
		r.busy = false
		r.mu.Unlock()
	}()
}

func (r *routing) close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}
