// Package client is the Go client of Kahuna, the distributed lock service.
//
// A Client talks to one or more Kahuna nodes over the REST API. Any node
// accepts any request, so the client simply moves to the next endpoint when
// one stops answering, and it retries answers that mean "try again" (a
// leader election, an unknown outcome) with jittered backoff for as long as
// the caller's context allows. Lock operations are idempotent for the same
// owner, which is what makes those retries safe. Given several endpoints,
// it sends each lock request straight to its partition's leader, saving the
// hop a node would take to forward it (see Config.NoLeaderRouting).
//
//	c, err := client.New(client.Config{Endpoints: []string{"http://10.0.0.1:8082", "http://10.0.0.2:8082"}})
//	lock, err := c.Lock(ctx, "db-migration", client.WithLease(time.Minute))
//	defer lock.Unlock(context.Background())
//	store.Write(data, lock.Token()) // the store rejects tokens older than the newest it saw
package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Durability selects the lock namespace. The zero value is Persistent.
type Durability int

const (
	// Persistent locks are committed to a quorum before the reply and
	// survive crashes and restarts. The default.
	Persistent Durability = iota
	// Ephemeral locks live in the partition leader's memory only: fast,
	// but lost when the leader changes or restarts.
	Ephemeral
)

// wire is the durability's number on the wire (1 persistent, 0 ephemeral).
func (d Durability) wire() int {
	if d == Ephemeral {
		return int(wire.Ephemeral)
	}
	return int(wire.Persistent)
}

func durabilityOf(w wire.Durability) Durability {
	if w == wire.Ephemeral {
		return Ephemeral
	}
	return Persistent
}

func (d Durability) String() string { return wire.Durability(d.wire()).String() }

// Errors. Check them with errors.Is.
var (
	// ErrBusy: another owner holds the lock. The error is a *BusyError
	// that names the holder.
	ErrBusy = errors.New("kahuna: lock held by another owner")
	// ErrNotOwner: the lock is held, but not by this owner.
	ErrNotOwner = errors.New("kahuna: lock held by another owner, not yours")
	// ErrNotFound: there is no live lock (never taken, released or
	// expired).
	ErrNotFound = errors.New("kahuna: lock does not exist")
	// ErrUnavailable: no node could serve the request before the context
	// ended (no endpoint answered, or every answer was "try again").
	ErrUnavailable = errors.New("kahuna: service unavailable")
	// ErrInvalidInput: the server rejected the request's fields.
	ErrInvalidInput = errors.New("kahuna: invalid input")
	// ErrLost: a kept-alive lock could not be extended before its lease
	// ran out, or the server no longer has it.
	ErrLost = errors.New("kahuna: lock lost")
	// ErrUnauthorized: the server wants a token (Config.Token) and got
	// none, or one it does not know (HTTP 401). Not retried.
	ErrUnauthorized = errors.New("kahuna: unauthorized")
	// ErrForbidden: the token's role or prefixes do not allow the request
	// (HTTP 403). Not retried.
	ErrForbidden = errors.New("kahuna: forbidden")
)

// BusyError is returned when another owner holds the lock.
type BusyError struct {
	Resource string
	// Holder is the owner that holds the lock.
	Holder string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("kahuna: lock %q held by %q", e.Resource, e.Holder)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// ServerError is a reply the client does not map to a sentinel: type 99
// (the server failed) or an unknown type.
type ServerError struct {
	Type    int
	Message string
	Node    string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("kahuna: server error (type %d) from %s: %s", e.Type, e.Node, e.Message)
}

// Config configures a Client. The zero value talks to a local node.
type Config struct {
	// Endpoints are base URLs of Kahuna nodes, e.g.
	// "http://10.0.0.1:8082". Default: http://127.0.0.1:8082.
	Endpoints []string
	// HTTPClient sends the requests; default: a client with keep-alive
	// connections and no overall timeout (contexts bound each call).
	HTTPClient *http.Client
	// DefaultLease is the lease of locks taken without WithLease.
	// Default: one minute.
	DefaultLease time.Duration
	// MinBackoff and MaxBackoff bound the jittered wait between retries.
	// Defaults: 50 ms and 2 s.
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one HTTP attempt (beyond any server-side wait)
	// when the caller's context has no earlier deadline. Default: 10 s.
	AttemptTimeout time.Duration
	// TLS configures HTTPS endpoints (https://...): the CA to trust and a
	// client certificate when the server requires one. Ignored when
	// HTTPClient is set.
	TLS *tls.Config
	// Token is sent as "Authorization: Bearer <Token>" with every
	// request, for a cluster started with --auth-file. Empty: none.
	Token string
	// Jitter returns a number in [0, 1) for retry jitter; tests set it.
	// Default: math/rand/v2.
	Jitter func() float64
	// NoLeaderRouting sends every request to the current endpoint and lets
	// that node forward it. By default, with more than one endpoint, the
	// client learns which node leads each partition (GET
	// /v1/cluster/status) and sends lock requests straight there, saving
	// the forwarding hop; only leaders whose advertised HTTP address is
	// one of Endpoints are used.
	NoLeaderRouting bool
}

// Client is safe for concurrent use.
type Client struct {
	cfg       Config
	endpoints []string
	http      *http.Client
	// current is the endpoint that answered last; requests start there.
	current atomic.Uint32
	owned   bool // the HTTP client is ours to close
	// routes is nil with one endpoint or when routing is off.
	routes *routing
}

// New returns a client. It does not contact the server.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		cfg.Endpoints = []string{"http://127.0.0.1:8082"}
	}
	endpoints := make([]string, 0, len(cfg.Endpoints))
	for _, e := range cfg.Endpoints {
		e = strings.TrimRight(strings.TrimSpace(e), "/")
		if e == "" {
			continue
		}
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			e = "http://" + e
		}
		endpoints = append(endpoints, e)
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: no endpoints", ErrInvalidInput)
	}
	if cfg.DefaultLease == 0 {
		cfg.DefaultLease = time.Minute
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	if cfg.AttemptTimeout == 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	c := &Client{cfg: cfg, endpoints: endpoints, http: cfg.HTTPClient}
	if len(endpoints) > 1 && !cfg.NoLeaderRouting {
		c.routes = newRouting(endpoints, time.Now, c.statusFrom)
	}
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		if cfg.TLS != nil {
			tr.TLSClientConfig = cfg.TLS.Clone()
		}
		c.http = &http.Client{Transport: tr}
		c.owned = true
	}
	return c, nil
}

// authorize adds the bearer token, if any.
func (c *Client) authorize(req *http.Request) {
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
}

// Close releases idle connections.
func (c *Client) Close() {
	c.routes.close()
	if c.owned {
		c.http.CloseIdleConnections()
	}
}

// Endpoints returns the nodes the client talks to.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// NewOwner returns a random owner ID: 16 random bytes, base64, the way the
// original Kahuna clients make them.
func NewOwner() string {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; fall back to
		// a time-based ID rather than panicking.
		return fmt.Sprintf("owner-%d", time.Now().UnixNano())
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

// call posts one request and returns the first final answer: a node that
// does not answer is skipped for the next, and "must retry" answers are
// retried with jittered backoff until ctx ends (see withRetries). The first
// attempt goes to the resource's partition leader when the client knows
// it. wait is the server-side wait the request carries, added to the
// per-attempt timeout.
func (c *Client) call(ctx context.Context, path string, req *wire.LockRequest, wait time.Duration) (*wire.LockResponse, error) {
	// The reflection-free encoder writes what json.Marshal would. 96 bytes
	// hold every key and the numbers of a usual request besides the
	// strings, so that the buffer seldom grows.
	size := 96 + len(*req.Resource)
	if req.Owner != nil {
		size += len(*req.Owner)
	}
	payload := req.AppendJSON(make([]byte, 0, size))
	first, leader := c.routes.lookup(*req.Resource)
	var out *wire.LockResponse
	err := c.withRetries(ctx, first, func(ctx context.Context, endpoint int) (bool, error) {
		if endpoint == first {
			defer c.routes.watch(endpoint, wait)()
		}
		resp, err := c.post(ctx, c.endpoints[endpoint]+path, payload, wait)
		if err != nil {
			if ctx.Err() == nil && !isAuthError(err) {
				c.routes.unreachable(endpoint)
			}
			return false, err
		}
		c.routes.answered(leader, resp.ServedFrom)
		if resp.Type == wire.MustRetry {
			return false, fmt.Errorf("%s answered must-retry: %s", resp.ServedFrom, resp.Error)
		}
		out = resp
		return true, nil
	})
	return out, err
}

func (c *Client) post(ctx context.Context, url string, payload []byte, wait time.Duration) (*wire.LockResponse, error) {
	// The attempt's own deadline only matters when it comes before the
	// caller's; otherwise ctx bounds the attempt already, and a context
	// derived per attempt would only add allocations and locking.
	actx := ctx
	deadline := time.Now().Add(wait + c.cfg.AttemptTimeout)
	if d, ok := ctx.Deadline(); !ok || d.After(deadline) {
		var cancel context.CancelFunc
		actx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	c.authorize(req)
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

func (c *Client) do(req *http.Request) (*wire.LockResponse, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, wire.MaxBodyBytes))
	if err != nil {
		return nil, err
	}
	if err := authError(resp, raw); err != nil {
		return nil, err
	}
	var out wire.LockResponse
	if err := wire.DecodeLockResponse(raw, &out); err != nil {
		return nil, fmt.Errorf("kahuna: %s answered HTTP %d with an unreadable body: %q", req.URL.Host, resp.StatusCode, truncate(raw, 200))
	}
	return &out, nil
}

// authError turns a 401 or 403 into ErrUnauthorized or ErrForbidden with
// the server's message.
func authError(resp *http.Response, body []byte) error {
	var sentinel error
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		sentinel = ErrUnauthorized
	case http.StatusForbidden:
		sentinel = ErrForbidden
	default:
		return nil
	}
	var msg struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Error == "" {
		msg.Error = "HTTP " + resp.Status
	}
	return fmt.Errorf("%w: %s", sentinel, msg.Error)
}

// isAuthError reports an error that no retry can cure.
func isAuthError(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// replyError turns a negative reply into the matching error.
func replyError(resource string, r *wire.LockResponse) error {
	switch r.Type {
	case wire.Busy:
		return &BusyError{Resource: resource, Holder: r.Owner}
	case wire.InvalidOwner:
		return ErrNotOwner
	case wire.LockDoesNotExist:
		return ErrNotFound
	case wire.InvalidInput:
		return fmt.Errorf("%w: %s", ErrInvalidInput, r.Error)
	default:
		return &ServerError{Type: int(r.Type), Message: r.Error, Node: r.ServedFrom}
	}
}

// options of one lock call.
type options struct {
	owner      string
	lease      time.Duration
	durability Durability
	wait       time.Duration
}

// Option adjusts a lock call.
type Option func(*options)

// WithOwner sets the owner ID; default: a random one (see NewOwner).
// Reusing an owner makes a repeated try-lock return the same grant.
func WithOwner(owner string) Option { return func(o *options) { o.owner = owner } }

// WithLease sets the lease; default Config.DefaultLease (one minute).
func WithLease(d time.Duration) Option { return func(o *options) { o.lease = d } }

// WithDurability picks the namespace; default Persistent.
func WithDurability(d Durability) Option { return func(o *options) { o.durability = d } }

// WithWait bounds how long Lock waits for a held lock (it also ends with
// the context). TryLock ignores it.
func WithWait(d time.Duration) Option { return func(o *options) { o.wait = d } }

func (c *Client) options(opts []Option) options {
	o := options{lease: c.cfg.DefaultLease, durability: Persistent}
	for _, f := range opts {
		f(&o)
	}
	if o.owner == "" {
		o.owner = NewOwner()
	}
	return o
}

func ms(d time.Duration) *int64 {
	v := d.Milliseconds()
	return &v
}

func strp(s string) *string { return &s }

func intp(v int) *int { return &v }

// lockRequest builds a request body.
func lockRequest(resource string, o options) *wire.LockRequest {
	return &wire.LockRequest{
		Resource:   strp(resource),
		Owner:      strp(o.owner),
		ExpiresMs:  ms(o.lease),
		Durability: intp(o.durability.wire()),
	}
}

// TryLock takes the lock if it is free and returns ErrBusy (a *BusyError
// naming the holder) if another owner holds it. It does not wait for the
// holder, but it does retry elections and unknown outcomes until ctx ends.
func (c *Client) TryLock(ctx context.Context, resource string, opts ...Option) (*Lock, error) {
	o := c.options(opts)
	return c.acquire(ctx, resource, o, 0)
}

// maxServerWait is the longest wait one request asks of the server; longer
// waits are a series of requests, which also survive leader changes.
const maxServerWait = 30 * time.Second

// Lock waits until it holds the lock, the wait set with WithWait runs out,
// or ctx ends. The waiting happens on the server, in a first-come,
// first-served line per lock; the client re-queues across leader changes.
// When the wait ends without the lock, the error is ErrBusy naming the
// holder.
func (c *Client) Lock(ctx context.Context, resource string, opts ...Option) (*Lock, error) {
	o := c.options(opts)
	var deadline time.Time
	if o.wait > 0 {
		deadline = time.Now().Add(o.wait)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	for {
		wait := maxServerWait
		if !deadline.IsZero() {
			wait = min(wait, time.Until(deadline))
		}
		if wait <= 0 {
			// Out of time: one last look names the holder.
			return c.acquire(ctx, resource, o, 0)
		}
		l, err := c.acquire(ctx, resource, o, wait)
		if !errors.Is(err, ErrBusy) || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return l, err
		}
	}
}

func (c *Client) acquire(ctx context.Context, resource string, o options, wait time.Duration) (*Lock, error) {
	req := lockRequest(resource, o)
	if wait > 0 {
		req.WaitMs = ms(wait)
	}
	sent := time.Now()
	r, err := c.call(ctx, wire.PathTryLock, req, wait)
	if err != nil {
		return nil, err
	}
	if r.Type != wire.Locked {
		return nil, replyError(resource, r)
	}
	if r.FencingToken == nil {
		return nil, &ServerError{Type: int(r.Type), Message: "Locked reply without a fencing token", Node: r.ServedFrom}
	}
	return newLock(c, resource, o, *r.FencingToken, sent), nil
}

// Info describes a live lock.
type Info struct {
	Resource   string
	Owner      string
	Token      int64
	Durability Durability
	AcquiredAt time.Time
	ExpiresAt  time.Time
	// ExpiresIn is the lease left when the server answered.
	ExpiresIn time.Duration
	// ServedFrom is the node that answered.
	ServedFrom string
}

// GetInfo reads a lock. Persistent reads are linearizable. A missing,
// released or expired lock is ErrNotFound.
func (c *Client) GetInfo(ctx context.Context, resource string, d Durability) (*Info, error) {
	r, err := c.call(ctx, wire.PathGetInfo, &wire.LockRequest{Resource: strp(resource), Durability: intp(d.wire())}, 0)
	if err != nil {
		return nil, err
	}
	if r.Type != wire.Got {
		return nil, replyError(resource, r)
	}
	info := &Info{Resource: resource, Owner: r.Owner, Durability: d, ServedFrom: r.ServedFrom}
	if r.FencingToken != nil {
		info.Token = *r.FencingToken
	}
	if r.ExpiresInMs != nil {
		info.ExpiresIn = time.Duration(*r.ExpiresInMs) * time.Millisecond
	}
	info.AcquiredAt, _ = time.Parse(time.RFC3339Nano, r.AcquiredAt)
	info.ExpiresAt, _ = time.Parse(time.RFC3339Nano, r.ExpiresAt)
	return info, nil
}

// ForceUnlock releases a lock whoever holds it: an operator's tool for a
// stuck lock. ErrNotFound if there was no live lock.
func (c *Client) ForceUnlock(ctx context.Context, resource string, d Durability) error {
	r, err := c.call(ctx, wire.PathForceUnlock, &wire.LockRequest{Resource: strp(resource), Durability: intp(d.wire())}, 0)
	if err != nil {
		return err
	}
	if r.Type != wire.Unlocked {
		return replyError(resource, r)
	}
	return nil
}

// Unlock releases a lock held by owner; for a lock held through a *Lock,
// use its Unlock. ErrNotOwner if another owner holds it, ErrNotFound if
// nobody does.
func (c *Client) Unlock(ctx context.Context, resource, owner string, d Durability) error {
	return c.unlock(ctx, resource, owner, d)
}

// Extend moves the lease of a lock held by owner to lease from now and
// returns its fencing token.
func (c *Client) Extend(ctx context.Context, resource, owner string, lease time.Duration, d Durability) (int64, error) {
	r, err := c.call(ctx, wire.PathTryExtend, lockRequest(resource, options{owner: owner, lease: lease, durability: d}), 0)
	if err != nil {
		return 0, err
	}
	if r.Type != wire.Extended {
		return 0, replyError(resource, r)
	}
	if r.FencingToken == nil {
		return 0, nil
	}
	return *r.FencingToken, nil
}

func (c *Client) unlock(ctx context.Context, resource, owner string, d Durability) error {
	req := &wire.LockRequest{Resource: strp(resource), Owner: strp(owner), Durability: intp(d.wire())}
	r, err := c.call(ctx, wire.PathTryUnlock, req, 0)
	if err != nil {
		return err
	}
	if r.Type != wire.Unlocked {
		return replyError(resource, r)
	}
	return nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// EndpointsFromEnv returns the endpoints listed in KAHUNA_ENDPOINTS
// (comma-separated), the variable kahuna-cli reads too; nil when it is
// unset, which New takes as the local default.
func EndpointsFromEnv() []string {
	return ParseEndpoints(os.Getenv("KAHUNA_ENDPOINTS"))
}

// ParseEndpoints splits a comma-separated endpoint list, dropping blanks.
func ParseEndpoints(list string) []string {
	var out []string
	for _, e := range strings.Split(list, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
