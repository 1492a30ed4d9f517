// Package api is Kahuna's HTTP interface: the REST endpoints of the
// contract, wire-compatible with the original Kahuna. Handlers decode and
// validate, hand the request to the router, and encode the outcome; they
// hold no lock logic.
package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/kahuna-go/kahuna/pkg/auth"
	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Backend executes requests; *router.Router is the production one.
type Backend interface {
	NodeID() string
	Execute(ctx context.Context, req router.Request) (router.Response, error)
	List(ctx context.Context, d partition.Durability, prefix, after string, limit int) ([]router.Entry, bool, error)
}

// Cluster answers the cluster status and readiness endpoints.
type Cluster interface {
	Status() wire.ClusterStatus
	// Ready reports whether this node can serve, and why not.
	Ready() (bool, string)
	// RemoveNode removes a node from every partition (CONTRACT §7).
	RemoveNode(ctx context.Context, id string) error
}

// Observer counts requests (pkg/metrics). op is the request's name as
// router.Op and the list endpoint spell it.
type Observer interface {
	Request(op string, outcome wire.Type, forwarded bool, took time.Duration)
	// Refused is a request whose token may not touch its resource.
	Refused(op string, took time.Duration)
}

// nopObserver counts nothing.
type nopObserver struct{}

func (nopObserver) Request(string, wire.Type, bool, time.Duration) {}
func (nopObserver) Refused(string, time.Duration)                  {}

// Handler serves the API.
type Handler struct {
	backend Backend
	cluster Cluster
	obs     Observer
	log     *slog.Logger
	mux     http.Handler
	bufs    sync.Pool
	// allowed lists each path's methods for the Allow header of a 405.
	allowed     map[string]string
	bodyTimeout time.Duration
	jsonType    []string // the Content-Type header of every reply
}

// Config tunes the handler; zero values take the defaults.
type Config struct {
	Logger *slog.Logger
	// Auth checks bearer tokens (--auth-file); nil lets every request in.
	Auth *auth.Store
	// BodyTimeout bounds reading one request body (default 30 s), so a
	// client trickling bytes cannot hold a connection. It is per request
	// and ends with the body: a server-wide http.Server.ReadTimeout would
	// also cancel requests that wait for a lock longer than it.
	BodyTimeout time.Duration
	// Metrics serves GET /metrics; nil serves none.
	Metrics http.Handler
	// Observer is told of every lock and list request answered; nil
	// tells no one.
	Observer Observer
	// UI serves the dashboard under /ui/, and / redirects there; nil
	// serves none.
	UI http.Handler
}

// New returns the API handler.
func New(backend Backend, cluster Cluster, cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = 30 * time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	h := &Handler{backend: backend, cluster: cluster, obs: cfg.Observer, log: cfg.Logger, bodyTimeout: cfg.BodyTimeout,
		jsonType: []string{"application/json"}}
	h.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	r := chi.NewRouter()
	r.Use(h.recoverer)
	// Tokens and roles before any handler; a lock request's resource and
	// a list's prefix are checked once the handler has decoded them.
	r.Use(cfg.Auth.Middleware(nil))
	r.NotFound(h.notFound)
	r.MethodNotAllowed(h.methodNotAllowed)
	h.allowed = map[string]string{}
	route := func(method, path string, fn http.HandlerFunc) {
		r.Method(method, path, fn)
		if h.allowed[path] != "" {
			h.allowed[path] += ", "
		}
		h.allowed[path] += method
	}
	route(http.MethodPost, wire.PathTryLock, h.lockOp(router.TryLock))
	route(http.MethodPost, wire.PathTryExtend, h.lockOp(router.Extend))
	route(http.MethodPost, wire.PathTryUnlock, h.lockOp(router.Unlock))
	route(http.MethodPost, wire.PathGetInfo, h.lockOp(router.GetInfo))
	route(http.MethodPost, wire.PathForceUnlock, h.lockOp(router.ForceUnlock))
	route(http.MethodGet, wire.PathList, h.list)
	route(http.MethodGet, wire.PathClusterStatus, h.status)
	route(http.MethodPost, wire.PathRemoveNode, h.removeNode)
	route(http.MethodGet, wire.PathOpenAPI, h.openapi)
	if cfg.Metrics != nil {
		route(http.MethodGet, wire.PathMetrics, cfg.Metrics.ServeHTTP)
	}
	if cfg.UI != nil {
		r.Handle(wire.PathUI+"*", http.StripPrefix(wire.PathUI[:len(wire.PathUI)-1], cfg.UI))
		r.Get("/ui", http.RedirectHandler(wire.PathUI, http.StatusMovedPermanently).ServeHTTP)
		r.Get("/", http.RedirectHandler(wire.PathUI, http.StatusFound).ServeHTTP)
	}
	// Load balancers often probe health with HEAD.
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		route(m, wire.PathLivez, h.livez)
		route(m, wire.PathReadyz, h.readyz)
	}
	h.mux = r
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// writeJSON writes v, encoded with encoding/json, for the endpoints off the
// hot path.
func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own wire types are encoded; this cannot happen.
		http.Error(w, `{"type":99,"error":"encoding reply failed"}`, http.StatusInternalServerError)
		return
	}
	h.writeBody(w, status, body)
}

// getBuf and putBuf recycle request and reply buffers: lock requests are
// small and frequent, and the pool keeps the hot path light on garbage.
func (h *Handler) getBuf() *[]byte { return h.bufs.Get().(*[]byte) }

func (h *Handler) putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		h.bufs.Put(b)
	}
}

// smallReply is the size below which net/http sets Content-Length itself:
// its per-response write buffer is 2 KiB.
const smallReply = 2048

// writeLock writes a lock reply with the reflection-free encoder.
func (h *Handler) writeLock(w http.ResponseWriter, status int, r *wire.LockResponse) {
	bp := h.getBuf()
	body := r.AppendJSON(*bp)
	h.writeBody(w, status, body)
	*bp = body
	h.putBuf(bp)
}

// writeBody writes a JSON reply body with its headers.
func (h *Handler) writeBody(w http.ResponseWriter, status int, body []byte) {
	hdr := w.Header()
	// The key is canonical already: skip Set's canonicalization. net/http
	// copies header values before it writes them, so sharing is safe.
	hdr["Content-Type"] = h.jsonType
	// net/http works out the length of a reply that fits its 2 KiB write
	// buffer by itself, without allocating; only longer ones need it here.
	if len(body) >= smallReply {
		hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	w.WriteHeader(status)
	w.Write(body)
}

func (h *Handler) fail(w http.ResponseWriter, status int, t wire.Type, msg string) {
	h.writeLock(w, status, &wire.LockResponse{Type: t, ServedFrom: h.backend.NodeID(), Error: msg})
}

// lockOp serves the five POST lock endpoints.
func (h *Handler) lockOp(op router.Op) http.HandlerFunc {
	name := op.String()
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		t, forwarded, refused := h.serveLockOp(op, w, r)
		if refused {
			h.obs.Refused(name, time.Since(start))
			return
		}
		h.obs.Request(name, t, forwarded, time.Since(start))
	}
}

// serveLockOp answers one lock request and says how: the reply's type,
// whether another node served it, or that its token was refused.
func (h *Handler) serveLockOp(op router.Op, w http.ResponseWriter, r *http.Request) (t wire.Type, forwarded, refused bool) {
	var in wire.LockRequest
	if e := h.readLockRequest(w, r, &in); e != nil {
		h.fail(w, e.status, wire.InvalidInput, e.msg)
		return wire.InvalidInput, false, false
	}
	req, e := toRequest(op, &in)
	if e != nil {
		h.fail(w, e.status, wire.InvalidInput, e.msg)
		return wire.InvalidInput, false, false
	}
	if err := auth.CheckResource(r.Context(), req.Resource); err != nil {
		auth.WriteError(w, err)
		return 0, false, true
	}
	if op == router.ForceUnlock {
		h.logAdmin(r, "force-unlock", "resource", req.Resource, "durability", req.Durability.String())
	}
	resp, err := h.backend.Execute(r.Context(), req)
	if err != nil {
		t, msg := h.errorType(err)
		h.fail(w, http.StatusOK, t, msg)
		return t, false, false
	}
	out := reply(op, resp)
	h.writeLock(w, http.StatusOK, &out)
	return out.Type, resp.ServedFrom != h.backend.NodeID(), false
}

// errorType maps an execution error to a reply type and message.
func (h *Handler) errorType(err error) (wire.Type, string) {
	switch {
	case errors.Is(err, partition.ErrInvalid):
		return wire.InvalidInput, err.Error()
	case errors.Is(err, router.ErrNoLeader),
		errors.Is(err, router.ErrStopped),
		errors.Is(err, partition.ErrNotLeader),
		errors.Is(err, partition.ErrUnknownOutcome),
		errors.Is(err, partition.ErrTryAgain),
		errors.Is(err, partition.ErrClosed):
		return wire.MustRetry, err.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return wire.MustRetry, "request cancelled: " + err.Error()
	default:
		h.log.Error("request failed", "err", err)
		return wire.Errored, err.Error()
	}
}

func int64p(v uint64) *int64 {
	i := int64(v)
	return &i
}

// FormatTime renders unix milliseconds the way every timestamp of the API
// looks: RFC 3339, UTC, millisecond precision.
func FormatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// reply turns a result into the wire reply for op.
func reply(op router.Op, resp router.Response) wire.LockResponse {
	res := resp.Result
	out := wire.LockResponse{ServedFrom: resp.ServedFrom}
	switch res.Outcome {
	case fsm.Locked:
		out.Type = wire.Locked
		out.FencingToken = int64p(res.Token)
	case fsm.Busy:
		out.Type = wire.Busy
		out.Owner = res.Owner
	case fsm.Extended:
		out.Type = wire.Extended
		out.FencingToken = int64p(res.Token)
	case fsm.Unlocked:
		out.Type = wire.Unlocked
	case fsm.Got:
		out.Type = wire.Got
		out.Owner = res.Owner
		out.FencingToken = int64p(res.Token)
		out.Expires = &wire.HLC{L: res.ExpiresAt}
		out.AcquiredAt = FormatTime(res.AcquiredAt)
		out.ExpiresAt = FormatTime(res.ExpiresAt)
		out.ExpiresInMs = &res.ExpiresIn
	case fsm.NotFound:
		out.Type = wire.LockDoesNotExist
	case fsm.NotOwner:
		out.Type = wire.InvalidOwner
	case fsm.Invalid:
		out.Type = wire.InvalidInput
		out.Error = "the lock service rejected the " + op.String() + " command"
	default:
		out.Type = wire.Errored
		out.Error = fmt.Sprintf("unexpected outcome %v", res.Outcome)
	}
	return out
}

// list serves GET /v1/locks.
func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t, refused := h.serveList(w, r)
	if refused {
		h.obs.Refused("list", time.Since(start))
		return
	}
	h.obs.Request("list", t, false, time.Since(start))
}

// serveList answers one listing and says how: the reply's type, or that
// its token was refused.
func (h *Handler) serveList(w http.ResponseWriter, r *http.Request) (t wire.Type, refused bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.listFail(w, wire.InvalidInput, "query string is malformed: "+err.Error())
		return wire.InvalidInput, false
	}
	limit := wire.DefaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > wire.MaxListLimit {
			h.listFail(w, wire.InvalidInput, fmt.Sprintf("limit must be an integer between 1 and %d, got %q", wire.MaxListLimit, s))
			return wire.InvalidInput, false
		}
		limit = n
	}
	d := partition.Persistent
	if s := q.Get("durability"); s != "" {
		n, err := strconv.Atoi(s)
		if err == nil {
			d, err = partition.ParseDurability(n)
		}
		if err != nil {
			h.listFail(w, wire.InvalidInput, fmt.Sprintf("durability must be 0 (ephemeral) or 1 (persistent), got %q", s))
			return wire.InvalidInput, false
		}
	}
	prefix := q.Get("prefix")
	if len(prefix) > wire.MaxResourceBytes {
		h.listFail(w, wire.InvalidInput, fmt.Sprintf("prefix is %d bytes; the limit is %d", len(prefix), wire.MaxResourceBytes))
		return wire.InvalidInput, false
	}
	after := ""
	if s := q.Get("cursor"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 || len(b) > wire.MaxResourceBytes {
			h.listFail(w, wire.InvalidInput, "cursor is not one this server handed out")
			return wire.InvalidInput, false
		}
		after = string(b)
	}
	// A token limited to prefixes sees only its own locks: one prefix
	// narrows the listing, several filter it (a page may then come back
	// short; its cursor still moves on).
	allowed := func(string) bool { return true }
	if id, ok := auth.FromContext(r.Context()); ok {
		narrowed, ok := id.ListPrefixes(prefix)
		if !ok {
			auth.WriteError(w, fmt.Errorf("%w: token %q may not list locks under %q", auth.ErrForbidden, id.Name, prefix))
			return 0, true
		}
		if len(narrowed) == 1 {
			prefix = narrowed[0]
		} else {
			allowed = id.AllowsResource
		}
	}
	entries, more, err := h.backend.List(r.Context(), d, prefix, after, limit)
	if err != nil {
		t, msg := h.errorType(err)
		h.listFail(w, t, msg)
		return t, false
	}
	out := wire.ListResponse{Type: wire.Got, ServedFrom: h.backend.NodeID(), Locks: make([]wire.LockInfo, 0, len(entries))}
	for _, e := range entries {
		if !allowed(e.Resource) {
			continue
		}
		out.Locks = append(out.Locks, wire.LockInfo{
			Resource:     e.Resource,
			Owner:        e.Owner,
			FencingToken: int64(e.Token),
			Durability:   wire.Durability(e.Durability),
			AcquiredAt:   FormatTime(e.AcquiredAt),
			ExpiresAt:    FormatTime(e.ExpiresAt),
			ExpiresInMs:  e.ExpiresIn,
		})
	}
	if more && len(entries) > 0 {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(entries[len(entries)-1].Resource))
	}
	h.writeJSON(w, http.StatusOK, out)
	return wire.Got, false
}

func (h *Handler) listFail(w http.ResponseWriter, t wire.Type, msg string) {
	h.writeJSON(w, http.StatusOK, wire.ListResponse{Type: t, ServedFrom: h.backend.NodeID(), Error: msg, Locks: []wire.LockInfo{}})
}

// logAdmin records an admin action with the name of the token that asked
// for it (never the token).
func (h *Handler) logAdmin(r *http.Request, action string, args ...any) {
	who := "anyone (auth is off)"
	if id, ok := auth.FromContext(r.Context()); ok {
		who = id.Name
	}
	h.log.Info("admin action", append([]any{"action", action, "token", who, "remote", r.RemoteAddr}, args...)...)
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	h.writeJSON(w, http.StatusOK, h.cluster.Status())
}

func (h *Handler) livez(w http.ResponseWriter, r *http.Request) {
	h.writeJSON(w, http.StatusOK, wire.Health{Status: "live", ServedFrom: h.backend.NodeID()})
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	if ok, why := h.cluster.Ready(); !ok {
		h.writeJSON(w, http.StatusServiceUnavailable, wire.Health{Status: "not ready", ServedFrom: h.backend.NodeID(), Reason: why})
		return
	}
	h.writeJSON(w, http.StatusOK, wire.Health{Status: "ready", ServedFrom: h.backend.NodeID()})
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.fail(w, http.StatusNotFound, wire.InvalidInput, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", h.allowed[r.URL.Path])
	h.fail(w, http.StatusMethodNotAllowed, wire.InvalidInput, fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path))
}

// recoverer turns a handler panic into a 500 reply instead of a dropped
// connection, and logs it.
func (h *Handler) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.log.Error("handler panic", "path", r.URL.Path, "panic", v)
				h.fail(w, http.StatusInternalServerError, wire.Errored, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
