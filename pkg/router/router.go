// Package router sends each lock request to the leader of the resource's
// partition: it runs the request on this node when the node leads the
// partition, hands it to a Forwarder when another node does, and holds it
// while the partition has no leader.
package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// Errors the API maps to "must retry".
var (
	// ErrNoLeader: the partition had no reachable leader within the wait.
	ErrNoLeader = errors.New("router: partition has no leader")
	// ErrStopped: this node stopped serving (it was removed from the
	// cluster); another node serves the request.
	ErrStopped = errors.New("router: this node no longer serves requests")
)

// Op is a request kind.
type Op uint8

const (
	TryLock Op = iota + 1
	Extend
	Unlock
	ForceUnlock
	GetInfo
)

func (o Op) String() string {
	switch o {
	case TryLock:
		return "try-lock"
	case Extend:
		return "try-extend"
	case Unlock:
		return "try-unlock"
	case ForceUnlock:
		return "force-unlock"
	case GetInfo:
		return "get-info"
	default:
		return fmt.Sprintf("op(%d)", uint8(o))
	}
}

// Request is one lock operation, already validated by the API.
type Request struct {
	Op         Op
	Resource   string
	Owner      string
	TTL        time.Duration
	Durability partition.Durability
	Wait       time.Duration
}

// Response is a request's result and the node that executed it.
type Response struct {
	Result     fsm.Result
	ServedFrom string
}

// Forwarder runs requests on another node, the partition's leader, which
// executes them there and never forwards them again. leaderAddr is the
// leader's internal (Raft) address. A single node needs none.
type Forwarder interface {
	Forward(ctx context.Context, leaderID, leaderAddr string, req Request) (Response, error)
	List(ctx context.Context, leaderID, leaderAddr string, partition int, d partition.Durability, prefix, after string, limit int) ([]fsm.Info, error)
}

// Router routes requests for one node.
type Router struct {
	nodeID     string
	parts      *partition.Set
	fwd        Forwarder
	leaderWait time.Duration
	log        *slog.Logger
	stopped    atomic.Bool
}

// Config configures a Router.
type Config struct {
	NodeID string
	Parts  *partition.Set
	// Forwarder may be nil on a single node.
	Forwarder Forwarder
	// LeaderWait is how long a request waits for a partition leader.
	LeaderWait time.Duration
	Logger     *slog.Logger
}

// New returns a router.
func New(cfg Config) *Router {
	if cfg.LeaderWait == 0 {
		cfg.LeaderWait = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Router{
		nodeID:     cfg.NodeID,
		parts:      cfg.Parts,
		fwd:        cfg.Forwarder,
		leaderWait: cfg.LeaderWait,
		log:        cfg.Logger,
	}
}

// NodeID is the ID of the node this router runs on.
func (r *Router) NodeID() string { return r.nodeID }

// Stop makes every later request fail with ErrStopped.
func (r *Router) Stop() { r.stopped.Store(true) }

// Execute runs req on the partition leader.
func (r *Router) Execute(ctx context.Context, req Request) (Response, error) {
	if r.stopped.Load() {
		return Response{}, ErrStopped
	}
	g := r.parts.For(req.Resource)
	var resp Response
	err := r.onLeader(ctx, g, func(ctx context.Context, local bool, leaderID, leaderAddr string) error {
		if !local {
			var err error
			resp, err = r.fwd.Forward(ctx, leaderID, leaderAddr, req)
			return err
		}
		res, err := ExecuteLocal(ctx, g, req)
		resp = Response{Result: res, ServedFrom: r.nodeID}
		return err
	})
	return resp, err
}

// ExecuteLocal runs req on g, which this node must lead. A node that
// receives a forwarded request calls it directly, never forwarding again.
func ExecuteLocal(ctx context.Context, g *partition.Group, req Request) (fsm.Result, error) {
	if req.Op == GetInfo {
		return g.Get(ctx, req.Durability, req.Resource)
	}
	cmd := fsm.Command{Resource: req.Resource, Owner: req.Owner, TTL: req.TTL.Milliseconds()}
	switch req.Op {
	case TryLock:
		cmd.Op = fsm.OpTryLock
	case Extend:
		cmd.Op = fsm.OpExtend
	case Unlock:
		cmd.Op = fsm.OpUnlock
	case ForceUnlock:
		cmd.Op = fsm.OpForceUnlock
	default:
		return fsm.Result{}, fmt.Errorf("%w: operation %v", partition.ErrInvalid, req.Op)
	}
	return g.Do(ctx, partition.Request{Cmd: cmd, Durability: req.Durability, Wait: req.Wait})
}

// onLeader calls fn once the partition's leader is known: with local set
// when this node serves the partition, otherwise with the leader's identity
// if a forwarder is configured. fn returning partition.ErrNotLeader means
// leadership moved before the request was applied; it is retried until the
// leader wait runs out.
func (r *Router) onLeader(ctx context.Context, g *partition.Group, fn func(ctx context.Context, local bool, leaderID, leaderAddr string) error) error {
	// The common case, a partition led here, needs no timer.
	if g.IsLeader() {
		if err := fn(ctx, true, r.nodeID, ""); !errors.Is(err, partition.ErrNotLeader) {
			return err
		}
	}
	timer := time.NewTimer(r.leaderWait)
	defer timer.Stop()
	// Some waits end without a leadership change to announce it: a leader
	// that is still establishing its term, or one that refused requests
	// during a leadership transfer that then failed. Look again now and
	// then, too.
	poll := time.NewTicker(r.leaderWait / 30)
	defer poll.Stop()
	for {
		// Take the change channel before looking, so a change between the
		// look and the wait is not missed.
		changed := g.Changed()
		var err error
		tried := false
		if g.IsLeader() {
			err, tried = fn(ctx, true, r.nodeID, ""), true
		} else if id, addr := g.Leader(); id != "" && id != r.nodeID && r.fwd != nil {
			err, tried = forwardUntilChange(ctx, changed, func(ctx context.Context) error { return fn(ctx, false, id, addr) }), true
		}
		if tried && !errors.Is(err, partition.ErrNotLeader) {
			return err
		}
		select {
		case <-changed:
		case <-poll.C:
		case <-timer.C:
			if err != nil {
				return fmt.Errorf("%w: partition %d: %w", ErrNoLeader, g.ID(), err)
			}
			return fmt.Errorf("%w: partition %d", ErrNoLeader, g.ID())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// forwardUntilChange runs a forwarded call that is cut short if this node
// sees the partition's leadership change meanwhile: a leader that vanished
// without closing its connections would otherwise hold the call until its
// timeout. The outcome of a call cut short is unknown.
func forwardUntilChange(ctx context.Context, changed <-chan struct{}, call func(context.Context) error) error {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-fctx.Done():
		}
	}()
	err := call(fctx)
	if err != nil && fctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("%w: the partition leader changed while the request was forwarded", partition.ErrUnknownOutcome)
	}
	return err
}

// Entry is one lock of a list.
type Entry struct {
	fsm.Info
	Durability partition.Durability
}

// List returns up to limit live locks of one durability whose resource has
// the prefix and sorts after the cursor resource, across all partitions, in
// resource order. more reports whether further locks follow.
func (r *Router) List(ctx context.Context, d partition.Durability, prefix, after string, limit int) (entries []Entry, more bool, err error) {
	if r.stopped.Load() {
		return nil, false, ErrStopped
	}
	for _, g := range r.parts.Groups() {
		err := r.onLeader(ctx, g, func(ctx context.Context, local bool, leaderID, leaderAddr string) error {
			// One more than asked tells whether another page follows.
			var infos []fsm.Info
			var err error
			if local {
				infos, err = g.List(ctx, d, prefix, after, limit+1)
			} else {
				infos, err = r.fwd.List(ctx, leaderID, leaderAddr, g.ID(), d, prefix, after, limit+1)
			}
			for _, in := range infos {
				entries = append(entries, Entry{Info: in, Durability: d})
			}
			return err
		})
		if err != nil {
			return nil, false, err
		}
	}
	slices.SortFunc(entries, func(a, b Entry) int { return cmp.Compare(a.Resource, b.Resource) })
	if len(entries) > limit {
		return entries[:limit], true, nil
	}
	return entries, false, nil
}

// ExecuteHere runs req on this node only: it answers partition.ErrNotLeader
// when this node does not lead the resource's partition. Forwarded requests
// come in through it, which is what keeps forwarding to one hop.
func (r *Router) ExecuteHere(ctx context.Context, req Request) (fsm.Result, error) {
	return ExecuteLocal(ctx, r.parts.For(req.Resource), req)
}

// ListHere lists one partition on this node only, like ExecuteHere.
func (r *Router) ListHere(ctx context.Context, p int, d partition.Durability, prefix, after string, limit int) ([]fsm.Info, error) {
	if p < 0 || p >= r.parts.Count() {
		return nil, fmt.Errorf("%w: partition %d of %d", partition.ErrInvalid, p, r.parts.Count())
	}
	return r.parts.Group(p).List(ctx, d, prefix, after, limit)
}

// Parts exposes the node's partitions for status pages.
func (r *Router) Parts() *partition.Set { return r.parts }
