package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/kahuna-go/kahuna/pkg/api"
	"github.com/kahuna-go/kahuna/pkg/auth"
	"github.com/kahuna-go/kahuna/pkg/cluster"
	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// The tests below hold the server to openapi.json in both directions: every
// reply, good or bad, must match the document, and the document must refuse
// exactly the requests the server refuses as invalid input.

// loadSpec reads and validates the document the package embeds.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	data, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

// TestOpenAPIRoles checks that the role each operation documents in
// x-kahuna-role is the one the auth middleware asks for, and that the
// operations that need no token say so with an empty security list.
func TestOpenAPIRoles(t *testing.T) {
	doc := loadSpec(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			want := auth.RequiredRole(httptest.NewRequest(method, path, nil)).String()
			got, _ := op.Extensions["x-kahuna-role"].(string)
			if got != want {
				t.Errorf("%s %s: x-kahuna-role %q, the server asks for %q", method, path, got, want)
			}
			open := op.Security != nil && len(*op.Security) == 0
			if open != (want == auth.RoleNone.String()) {
				t.Errorf("%s %s: security %v does not match role %q", method, path, op.Security, want)
			}
		}
	}
}

// exchange is one request and what the server must answer.
type exchange struct {
	name         string
	method, path string
	body         string
	token        string
	status       int // the HTTP status the server must answer
	typ          int // the reply's "type", or noType
	// refused: the document does not accept this request. The server must
	// still answer it the way the document says it answers bad input.
	refused bool
	// blind: the document refuses the request, but the validator cannot
	// tell (it decodes JSON as encoding/json does, which is more lenient
	// than the server); its request is not checked, its reply is.
	blind bool
}

// noType marks a reply without a "type" field.
const noType = -1

// specChecker sends exchanges to a server and validates both sides.
type specChecker struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	base   string
}

func newChecker(t *testing.T, base string) *specChecker {
	t.Helper()
	doc := loadSpec(t)
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("openapi router: %v", err)
	}
	return &specChecker{t: t, doc: doc, router: r, base: base}
}

// bearerPresent is the validator's view of the bearer scheme: it can only
// tell whether a token was sent; the server decides whether it is good.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName != "bearer" {
		return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
	}
	scheme, token, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return errors.New("no bearer token")
	}
	return nil
}

func filterOptions() *openapi3filter.Options {
	return &openapi3filter.Options{
		AuthenticationFunc:    bearerPresent,
		IncludeResponseStatus: true, // a status the document does not list is drift too
		MultiError:            true,
		SkipSettingDefaults:   true,
	}
}

// reply is what a server answered.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (c *specChecker) newRequest(e exchange, base string) *http.Request {
	c.t.Helper()
	var body io.Reader = http.NoBody
	if e.body != "" {
		body = strings.NewReader(e.body)
	}
	req, err := http.NewRequest(e.method, base+e.path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if e.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	return req
}

func (c *specChecker) send(e exchange) reply {
	c.t.Helper()
	resp, err := http.DefaultClient.Do(c.newRequest(e, c.base))
	if err != nil {
		c.t.Fatalf("%s: %v", e.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s: reading the reply: %v", e.name, err)
	}
	return reply{resp.StatusCode, resp.Header, body}
}

// check sends e, checks the status and type it expects, and validates the
// request and the reply against the document. It returns the reply's JSON
// object (nil for a reply without a body).
func (c *specChecker) check(e exchange) map[string]any {
	c.t.Helper()
	got := c.send(e)
	if got.status != e.status {
		c.t.Fatalf("%s: HTTP %d, want %d: %s", e.name, got.status, e.status, got.body)
	}
	if err := c.validate(e, got); err != nil {
		c.t.Fatalf("%s: %v", e.name, err)
	}
	var m map[string]any
	if len(got.body) > 0 {
		if err := json.Unmarshal(got.body, &m); err != nil {
			c.t.Fatalf("%s: reply is not a JSON object: %s", e.name, got.body)
		}
	}
	switch {
	case e.typ == noType && m["type"] != nil:
		c.t.Fatalf("%s: reply has a type: %s", e.name, got.body)
	case e.typ != noType && m["type"] != float64(e.typ):
		c.t.Fatalf("%s: reply type %v, want %d: %s", e.name, m["type"], e.typ, got.body)
	}
	return m
}

// validate checks e's request and the reply against the document. A path
// or method the document does not list must get its NotFound or
// MethodNotAllowed response.
func (c *specChecker) validate(e exchange, got reply) error {
	ctx := context.Background()
	req := c.newRequest(e, "http://kahuna.test")
	route, params, err := c.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return c.validateComponent(req, "NotFound", http.StatusNotFound, got)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return c.validateComponent(req, "MethodNotAllowed", http.StatusMethodNotAllowed, got)
	case err != nil:
		return fmt.Errorf("finding the operation: %w", err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: filterOptions()}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	switch {
	case e.blind:
	case e.refused && reqErr == nil:
		return errors.New("the document accepts this request; the test says it should not")
	case !e.refused && reqErr != nil:
		return fmt.Errorf("the document refuses the request: %w", reqErr)
	}
	return validateReply(ctx, in, got)
}

func validateReply(ctx context.Context, in *openapi3filter.RequestValidationInput, got reply) error {
	err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 got.status,
		Header:                 got.header,
		Body:                   io.NopCloser(bytes.NewReader(got.body)),
		Options:                filterOptions(),
	})
	if err != nil {
		return fmt.Errorf("the reply %d %s does not match the document: %w", got.status, got.body, err)
	}
	return nil
}

// validateComponent checks a reply against one of the document's shared
// responses, for requests no operation describes.
func (c *specChecker) validateComponent(req *http.Request, name string, status int, got reply) error {
	ref := c.doc.Components.Responses[name]
	if ref == nil {
		return fmt.Errorf("the document has no %s response", name)
	}
	if got.status != status {
		return fmt.Errorf("HTTP %d for a request the document answers with %s (%d)", got.status, name, status)
	}
	op := &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, ref))}
	route := &routers.Route{Spec: c.doc, Path: req.URL.Path, PathItem: &openapi3.PathItem{}, Method: req.Method, Operation: op}
	in := &openapi3filter.RequestValidationInput{Request: req, Route: route, Options: filterOptions()}
	return validateReply(context.Background(), in, got)
}

func (c *specChecker) run(cases []exchange) {
	c.t.Helper()
	for _, e := range cases {
		c.check(e)
	}
}

func blind(e exchange) exchange {
	e.blind = true
	return e
}

// lockBody builds a lock request body.
func lockBody(fields ...any) string {
	m := map[string]any{}
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i].(string)] = fields[i+1]
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestOpenAPILockRepliesOfARealNode runs every outcome of the lock
// endpoints on a real single node and validates each exchange.
func TestOpenAPILockRepliesOfARealNode(t *testing.T) {
	c := newChecker(t, startServer(t))
	post := func(name, path, body string, typ wire.Type) exchange {
		return exchange{name: name, method: http.MethodPost, path: path, body: body, status: http.StatusOK, typ: int(typ)}
	}
	c.run([]exchange{
		post("lock", wire.PathTryLock, lockBody("resource", "orders/1", "owner", "alice", "expiresMs", 60000), wire.Locked),
		post("lock again", wire.PathTryLock, lockBody("resource", "orders/1", "owner", "alice", "expiresMs", 60000, "durability", 1), wire.Locked),
		post("busy", wire.PathTryLock, lockBody("resource", "orders/1", "owner", "bob", "expiresMs", 60000), wire.Busy),
		post("busy after a wait", wire.PathTryLock, lockBody("resource", "orders/1", "owner", "bob", "expiresMs", 60000, "waitMs", 50), wire.Busy),
		post("extend", wire.PathTryExtend, lockBody("resource", "orders/1", "owner", "alice", "expiresMs", 120000), wire.Extended),
		post("extend, waitMs ignored", wire.PathTryExtend, lockBody("resource", "orders/1", "owner", "alice", "expiresMs", 120000, "waitMs", -5), wire.Extended),
		post("extend by another owner", wire.PathTryExtend, lockBody("resource", "orders/1", "owner", "bob", "expiresMs", 1), wire.InvalidOwner),
		post("get-info", wire.PathGetInfo, lockBody("resource", "orders/1", "color", "blue"), wire.Got),
		post("get-info, null durability", wire.PathGetInfo, lockBody("resource", "orders/1", "durability", nil), wire.Got),
		post("get-info ephemeral", wire.PathGetInfo, lockBody("resource", "orders/1", "durability", 0), wire.LockDoesNotExist),
		post("unlock by another owner", wire.PathTryUnlock, lockBody("resource", "orders/1", "owner", "bob"), wire.InvalidOwner),
		post("unlock", wire.PathTryUnlock, lockBody("resource", "orders/1", "owner", "alice"), wire.Unlocked),
		post("unlock again", wire.PathTryUnlock, lockBody("resource", "orders/1", "owner", "alice"), wire.LockDoesNotExist),
		post("extend a free lock", wire.PathTryExtend, lockBody("resource", "orders/1", "owner", "alice", "expiresMs", 10), wire.LockDoesNotExist),
		post("ephemeral lock", wire.PathTryLock, lockBody("resource", "orders/2", "owner", "carol", "expiresMs", 60000, "durability", 0), wire.Locked),
		post("force-unlock", wire.PathForceUnlock, lockBody("resource", "orders/2", "durability", 0), wire.Unlocked),
		post("force-unlock again", wire.PathForceUnlock, lockBody("resource", "orders/2", "durability", 0), wire.LockDoesNotExist),
	})
}

// TestOpenAPIBadInputOfARealNode sends requests the document refuses and
// checks that the server refuses them too, the way the document says.
func TestOpenAPIBadInputOfARealNode(t *testing.T) {
	c := newChecker(t, startServer(t))
	field := func(name, path, body string) exchange {
		return exchange{name: name, method: http.MethodPost, path: path, body: body, status: http.StatusOK, typ: int(wire.InvalidInput), refused: true}
	}
	status := func(name, path, body string, status int) exchange {
		return exchange{name: name, method: http.MethodPost, path: path, body: body, status: status, typ: int(wire.InvalidInput), refused: true}
	}
	huge := lockBody("resource", strings.Repeat("x", wire.MaxBodyBytes), "owner", "a", "expiresMs", 1000)
	c.run([]exchange{
		field("no resource", wire.PathTryLock, lockBody("owner", "a", "expiresMs", 1000)),
		field("empty resource", wire.PathGetInfo, lockBody("resource", "")),
		field("null resource", wire.PathForceUnlock, lockBody("resource", nil)),
		field("resource too long", wire.PathGetInfo, lockBody("resource", strings.Repeat("r", wire.MaxResourceBytes+1))),
		field("no owner", wire.PathTryUnlock, lockBody("resource", "r")),
		field("owner too long", wire.PathTryLock, lockBody("resource", "r", "owner", strings.Repeat("o", wire.MaxOwnerBytes+1), "expiresMs", 1000)),
		field("no expiresMs", wire.PathTryExtend, lockBody("resource", "r", "owner", "a")),
		field("expiresMs 0", wire.PathTryLock, lockBody("resource", "r", "owner", "a", "expiresMs", 0)),
		field("expiresMs too large", wire.PathTryLock, lockBody("resource", "r", "owner", "a", "expiresMs", int64(wire.MaxExpiresMs)+1)),
		field("waitMs negative", wire.PathTryLock, lockBody("resource", "r", "owner", "a", "expiresMs", 1000, "waitMs", -1)),
		field("waitMs too large", wire.PathTryLock, lockBody("resource", "r", "owner", "a", "expiresMs", 1000, "waitMs", wire.MaxWaitMs+1)),
		field("durability 2", wire.PathGetInfo, lockBody("resource", "r", "durability", 2)),
		field("durability as a string", wire.PathTryLock, lockBody("resource", "r", "owner", "a", "expiresMs", 1000, "durability", "1")),
		field("expiresMs as a string", wire.PathTryLock, lockBody("resource", "r", "owner", "a", "expiresMs", "soon")),
		field("unused field of the wrong type", wire.PathTryUnlock, lockBody("resource", "r", "owner", "a", "expiresMs", "soon")),
		field("unused owner of the wrong type", wire.PathGetInfo, lockBody("resource", "r", "owner", 5)),
		field("an array", wire.PathTryLock, `["orders/42"]`),
		field("null", wire.PathGetInfo, `null`),
		status("empty body", wire.PathTryLock, "", http.StatusBadRequest),
		status("not JSON", wire.PathTryLock, `{resource: orders/42`, http.StatusBadRequest),
		// A body is one JSON value in UTF-8 (RFC 8259), and the document
		// says in words that integers have no fraction or exponent; the
		// validator decodes as encoding/json does, which stops after the
		// first value, repairs bad UTF-8 and takes 1000.0 for an integer.
		blind(status("trailing data", wire.PathTryLock, lockBody("resource", "r", "owner", "a", "expiresMs", 1000)+" x", http.StatusBadRequest)),
		blind(status("not UTF-8", wire.PathGetInfo, "{\"resource\":\"caf\xe9\"}", http.StatusBadRequest)),
		blind(field("expiresMs with a fraction", wire.PathTryLock, `{"resource":"r","owner":"a","expiresMs":1000.0}`)),
		blind(field("expiresMs with an exponent", wire.PathTryLock, `{"resource":"r","owner":"a","expiresMs":1e3}`)),
		status("too large", wire.PathTryLock, huge, http.StatusRequestEntityTooLarge),
		{name: "unknown path", method: http.MethodPost, path: "/v1/locks/try-steal", body: `{}`, status: http.StatusNotFound, typ: int(wire.InvalidInput)},
		{name: "trailing slash", method: http.MethodGet, path: wire.PathList + "/", status: http.StatusNotFound, typ: int(wire.InvalidInput)},
		{name: "GET a POST path", method: http.MethodGet, path: wire.PathTryLock, status: http.StatusMethodNotAllowed, typ: int(wire.InvalidInput)},
		{name: "DELETE a POST path", method: http.MethodDelete, path: wire.PathTryLock, status: http.StatusMethodNotAllowed, typ: int(wire.InvalidInput)},
		{name: "POST a GET path", method: http.MethodPost, path: wire.PathClusterStatus, body: `{}`, status: http.StatusMethodNotAllowed, typ: int(wire.InvalidInput)},
	})
}

// TestOpenAPIListStatusHealthOfARealNode pages through a listing and reads
// the status, health checks and the document itself on a real node.
func TestOpenAPIListStatusHealthOfARealNode(t *testing.T) {
	c := newChecker(t, startServer(t))
	for i := range 5 {
		c.check(exchange{name: "lock", method: http.MethodPost, path: wire.PathTryLock, status: http.StatusOK, typ: int(wire.Locked),
			body: lockBody("resource", fmt.Sprintf("app/%d", i), "owner", "o", "expiresMs", 60000)})
	}
	get := func(name, path string, status, typ int) exchange {
		return exchange{name: name, method: http.MethodGet, path: path, status: status, typ: typ}
	}
	pages, cursor := 0, ""
	for {
		m := c.check(get("list page", wire.PathList+"?prefix=app/&limit=2&durability=1"+cursor, http.StatusOK, int(wire.Got)))
		pages++
		next, ok := m["nextCursor"].(string)
		if !ok {
			break
		}
		cursor = "&cursor=" + next
	}
	if pages != 3 {
		t.Fatalf("5 locks in pages of 2 came in %d pages", pages)
	}
	c.run([]exchange{
		get("list all", wire.PathList, http.StatusOK, int(wire.Got)),
		get("list ephemeral", wire.PathList+"?durability=0", http.StatusOK, int(wire.Got)),
		{name: "limit 0", method: http.MethodGet, path: wire.PathList + "?limit=0", status: http.StatusOK, typ: int(wire.InvalidInput), refused: true},
		{name: "limit 1001", method: http.MethodGet, path: wire.PathList + "?limit=1001", status: http.StatusOK, typ: int(wire.InvalidInput), refused: true},
		{name: "durability 5", method: http.MethodGet, path: wire.PathList + "?durability=5", status: http.StatusOK, typ: int(wire.InvalidInput), refused: true},
		{name: "bad cursor", method: http.MethodGet, path: wire.PathList + "?cursor=!!", status: http.StatusOK, typ: int(wire.InvalidInput), refused: true},
		get("status", wire.PathClusterStatus, http.StatusOK, int(wire.Got)),
		get("livez", wire.PathLivez, http.StatusOK, noType),
		get("readyz", wire.PathReadyz, http.StatusOK, noType),
		{name: "HEAD livez", method: http.MethodHead, path: wire.PathLivez, status: http.StatusOK, typ: noType},
		{name: "HEAD readyz", method: http.MethodHead, path: wire.PathReadyz, status: http.StatusOK, typ: noType},
	})
	got := c.send(get("openapi", wire.PathOpenAPI, http.StatusOK, noType))
	c.check(get("openapi", wire.PathOpenAPI, http.StatusOK, noType))
	file, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.body, file) || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s serves %d bytes of %q, not openapi.json", wire.PathOpenAPI, len(got.body), got.header.Get("Content-Type"))
	}
}

// fakeBackend answers by the resource's first path element, so that a test
// can ask for the replies a single healthy node never gives.
type fakeBackend struct{}

func (fakeBackend) NodeID() string { return "n1" }

func (fakeBackend) Execute(_ context.Context, req router.Request) (router.Response, error) {
	switch kind, _, _ := strings.Cut(req.Resource, "/"); kind {
	case "retry":
		return router.Response{}, fmt.Errorf("fake: %w", router.ErrNoLeader)
	case "broken":
		return router.Response{}, errors.New("fake: the disk is on fire")
	case "refused":
		return router.Response{Result: fsm.Result{Outcome: fsm.Invalid}, ServedFrom: "n2"}, nil
	case "panic":
		panic("fake: a bug in a handler")
	}
	res := fsm.Result{Token: 7, Owner: "alice", AcquiredAt: 1795446893000, ExpiresAt: 1795446953000, ExpiresIn: 60000}
	switch req.Op {
	case router.TryLock:
		res.Outcome = fsm.Locked
	case router.Extend:
		res.Outcome = fsm.Extended
	case router.GetInfo:
		res.Outcome = fsm.Got
	default:
		res.Outcome = fsm.Unlocked
	}
	return router.Response{Result: res, ServedFrom: "n2"}, nil
}

func (fakeBackend) List(_ context.Context, d partition.Durability, prefix, _ string, limit int) ([]router.Entry, bool, error) {
	if prefix == "retry/" {
		return nil, false, fmt.Errorf("fake: %w", router.ErrNoLeader)
	}
	var out []router.Entry
	for _, r := range []string{"ci/a", "ci/b", "ops/c"} {
		if strings.HasPrefix(r, prefix) && len(out) < limit {
			out = append(out, router.Entry{Info: fsm.Info{Resource: r, Owner: "o", Token: 3, AcquiredAt: 1795446893000, ExpiresAt: 1795446953000, ExpiresIn: 60000}, Durability: d})
		}
	}
	return out, false, nil
}

// fakeCluster answers remove-node by the node's name and is ready unless
// told otherwise.
type fakeCluster struct{ notReady bool }

func (fakeCluster) Status() wire.ClusterStatus {
	n := func(id, state, role string) wire.NodeStatus {
		return wire.NodeStatus{ID: id, HTTPAddr: id + ":8082", RaftAddr: id + ":9082", GossipAddr: id + ":7946", State: state, Role: role}
	}
	return wire.ClusterStatus{
		Type: wire.Got, ServedFrom: "n1", Node: n("n1", wire.NodeAlive, wire.RoleVoter),
		Nodes: []wire.NodeStatus{n("n1", wire.NodeAlive, wire.RoleVoter), n("n2", wire.NodeSuspect, wire.RoleVoter), n("n3", wire.NodeAlive, wire.RoleNonVoter), n("n4", wire.NodeAlive, wire.RoleJoining)},
		Partitions: []wire.PartitionStatus{
			{ID: 0, Leader: "n1", State: "leader", Term: 3, CommitIndex: 20, AppliedIndex: 20, Voters: []string{"n1", "n2"}, NonVoters: []string{"n3"}, Locks: 2},
			{ID: 1, Leader: "", State: "candidate", Term: 4, CommitIndex: 9, AppliedIndex: 8, Voters: []string{"n1", "n2"}, NonVoters: []string{}},
		},
	}
}

func (c fakeCluster) Ready() (bool, string) {
	if c.notReady {
		return false, "partition 1 has no leader"
	}
	return true, ""
}

func (fakeCluster) RemoveNode(_ context.Context, id string) error {
	switch id {
	case "n9":
		return fmt.Errorf("%w: n9", cluster.ErrUnknownNode)
	case "n2":
		return fmt.Errorf("removing n2: %w", cluster.ErrWouldLoseQuorum)
	case "n3":
		return errors.New("no leader for partition 1")
	}
	return nil
}

// fakeServer serves the API over a fake backend and cluster.
func fakeServer(t *testing.T, cl fakeCluster, store *auth.Store) string {
	t.Helper()
	srv := httptest.NewServer(api.New(fakeBackend{}, cl, api.Config{Logger: logging.Discard(), Auth: store}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestOpenAPIFailureReplies covers what a healthy single node cannot show:
// errors of the lock service, membership outcomes, a node that is not
// ready, and a handler that panics.
func TestOpenAPIFailureReplies(t *testing.T) {
	c := newChecker(t, fakeServer(t, fakeCluster{}, nil))
	post := func(name, path, body string, status, typ int) exchange {
		return exchange{name: name, method: http.MethodPost, path: path, body: body, status: status, typ: typ}
	}
	huge := `{"node":"` + strings.Repeat("n", wire.MaxBodyBytes) + `"}`
	c.run([]exchange{
		post("must retry", wire.PathTryLock, lockBody("resource", "retry/1", "owner", "a", "expiresMs", 1000), http.StatusOK, int(wire.MustRetry)),
		post("errored", wire.PathTryExtend, lockBody("resource", "broken/1", "owner", "a", "expiresMs", 1000), http.StatusOK, int(wire.Errored)),
		post("refused by the lock service", wire.PathTryUnlock, lockBody("resource", "refused/1", "owner", "a"), http.StatusOK, int(wire.InvalidInput)),
		post("handler panic", wire.PathGetInfo, lockBody("resource", "panic/1"), http.StatusInternalServerError, int(wire.Errored)),
		post("forwarded get-info", wire.PathGetInfo, lockBody("resource", "r"), http.StatusOK, int(wire.Got)),
		{name: "list without a leader", method: http.MethodGet, path: wire.PathList + "?prefix=retry/", status: http.StatusOK, typ: int(wire.MustRetry)},
		{name: "status of a cluster", method: http.MethodGet, path: wire.PathClusterStatus, status: http.StatusOK, typ: int(wire.Got)},
		post("remove", wire.PathRemoveNode, `{"node":"n4"}`, http.StatusOK, noType),
		post("remove an unknown node", wire.PathRemoveNode, `{"node":"n9"}`, http.StatusNotFound, noType),
		post("remove below quorum", wire.PathRemoveNode, `{"node":"n2"}`, http.StatusConflict, noType),
		post("remove without a leader", wire.PathRemoveNode, `{"node":"n3"}`, http.StatusServiceUnavailable, noType),
		{name: "remove nobody", method: http.MethodPost, path: wire.PathRemoveNode, body: `{"node":""}`, status: http.StatusBadRequest, typ: noType, refused: true},
		{name: "remove, no node field", method: http.MethodPost, path: wire.PathRemoveNode, body: `{"id":"n4"}`, status: http.StatusBadRequest, typ: noType, refused: true},
		{name: "remove, not JSON", method: http.MethodPost, path: wire.PathRemoveNode, body: `n4`, status: http.StatusBadRequest, typ: noType, refused: true},
		{name: "remove, too large", method: http.MethodPost, path: wire.PathRemoveNode, body: huge, status: http.StatusRequestEntityTooLarge, typ: noType},
	})

	c = newChecker(t, fakeServer(t, fakeCluster{notReady: true}, nil))
	c.run([]exchange{
		{name: "not ready", method: http.MethodGet, path: wire.PathReadyz, status: http.StatusServiceUnavailable, typ: noType},
		{name: "HEAD not ready", method: http.MethodHead, path: wire.PathReadyz, status: http.StatusServiceUnavailable, typ: noType},
		{name: "live while not ready", method: http.MethodGet, path: wire.PathLivez, status: http.StatusOK, typ: noType},
	})
}

// TestOpenAPIAuthReplies runs the 401 and 403 replies of the token check
// and of the handlers' resource checks.
func TestOpenAPIAuthReplies(t *testing.T) {
	file := filepath.Join(t.TempDir(), "auth.json")
	tokens := `{"tokens":[
		{"name":"reader","token":"read-token","role":"read"},
		{"name":"ci","token":"ci-token","role":"lock","prefixes":["ci/"]},
		{"name":"root","token":"root-token","role":"admin"}]}`
	if err := os.WriteFile(file, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := auth.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	c := newChecker(t, fakeServer(t, fakeCluster{}, store))
	e := func(name, method, path, body, token string, status, typ int) exchange {
		return exchange{name: name, method: method, path: path, body: body, token: token, status: status, typ: typ}
	}
	lock := lockBody("resource", "ci/1", "owner", "a", "expiresMs", 1000)
	c.run([]exchange{
		e("no token", http.MethodPost, wire.PathTryLock, lock, "", http.StatusUnauthorized, int(wire.Errored)),
		e("unknown token", http.MethodGet, wire.PathClusterStatus, "", "guess", http.StatusUnauthorized, int(wire.Errored)),
		e("document without a token", http.MethodGet, wire.PathOpenAPI, "", "", http.StatusUnauthorized, int(wire.Errored)),
		e("document", http.MethodGet, wire.PathOpenAPI, "", "read-token", http.StatusOK, noType),
		e("read token locks", http.MethodPost, wire.PathTryLock, lock, "read-token", http.StatusForbidden, int(wire.Errored)),
		e("lock token locks", http.MethodPost, wire.PathTryLock, lock, "ci-token", http.StatusOK, int(wire.Locked)),
		e("resource outside the prefixes", http.MethodPost, wire.PathTryLock, lockBody("resource", "ops/1", "owner", "a", "expiresMs", 1000), "ci-token", http.StatusForbidden, int(wire.Errored)),
		e("list inside the prefixes", http.MethodGet, wire.PathList, "", "ci-token", http.StatusOK, int(wire.Got)),
		e("list outside the prefixes", http.MethodGet, wire.PathList+"?prefix=ops/", "", "ci-token", http.StatusForbidden, int(wire.Errored)),
		e("lock token force-unlocks", http.MethodPost, wire.PathForceUnlock, lockBody("resource", "ci/1"), "ci-token", http.StatusForbidden, int(wire.Errored)),
		e("admin force-unlocks", http.MethodPost, wire.PathForceUnlock, lockBody("resource", "ops/1"), "root-token", http.StatusOK, int(wire.Unlocked)),
		e("lock token removes a node", http.MethodPost, wire.PathRemoveNode, `{"node":"n4"}`, "ci-token", http.StatusForbidden, int(wire.Errored)),
		e("admin removes a node", http.MethodPost, wire.PathRemoveNode, `{"node":"n4"}`, "root-token", http.StatusOK, noType),
		e("livez needs no token", http.MethodGet, wire.PathLivez, "", "", http.StatusOK, noType),
		e("readyz needs no token", http.MethodGet, wire.PathReadyz, "", "", http.StatusOK, noType),
	})
}

// TestOpenAPIValidatorIsStrict feeds the validator replies that drift from
// the document in the ways a careless change would, and checks that each
// is caught, so that the tests above mean something.
func TestOpenAPIValidatorIsStrict(t *testing.T) {
	c := newChecker(t, "")
	h := func(kv ...string) http.Header {
		hdr := http.Header{"Content-Type": {"application/json"}}
		for i := 0; i+1 < len(kv); i += 2 {
			hdr.Set(kv[i], kv[i+1])
		}
		return hdr
	}
	lock := exchange{method: http.MethodPost, path: wire.PathTryLock, body: lockBody("resource", "r", "owner", "a", "expiresMs", 1000)}
	info := exchange{method: http.MethodPost, path: wire.PathGetInfo, body: lockBody("resource", "r")}
	status := exchange{method: http.MethodGet, path: wire.PathClusterStatus}
	const goodInfo = `{"type":4,"servedFrom":"n1","owner":"a","fencingToken":7,"expires":{"n":0,"l":1795446953000,"c":0},"acquiredAt":"2026-11-23T15:14:53.000Z","expiresAt":"2026-11-23T15:15:53.000Z","expiresInMs":60000}`
	for _, tc := range []struct {
		name string
		e    exchange
		got  reply
		ok   bool
	}{
		{"a good Locked reply", lock, reply{200, h(), []byte(`{"type":0,"servedFrom":"n1","fencingToken":7}`)}, true},
		{"a good Got reply", info, reply{200, h(), []byte(goodInfo)}, true},
		{"a good 401", lock, reply{401, h("WWW-Authenticate", "Bearer"), []byte(`{"type":99,"error":"missing bearer token"}`)}, true},
		{"a renamed field", lock, reply{200, h(), []byte(`{"type":0,"servedFrom":"n1","token":7}`)}, false},
		{"a field too many", lock, reply{200, h(), []byte(`{"type":0,"servedFrom":"n1","fencingToken":7,"owner":"a"}`)}, false},
		{"no servedFrom", lock, reply{200, h(), []byte(`{"type":0,"fencingToken":7}`)}, false},
		{"Busy without the holder", lock, reply{200, h(), []byte(`{"type":1,"servedFrom":"n1"}`)}, false},
		{"a type try-lock never answers", lock, reply{200, h(), []byte(`{"type":2,"servedFrom":"n1","fencingToken":7}`)}, false},
		{"an unknown type", lock, reply{200, h(), []byte(`{"type":7,"servedFrom":"n1"}`)}, false},
		{"MustRetry without a message", lock, reply{200, h(), []byte(`{"type":101,"servedFrom":"n1"}`)}, false},
		{"a token as a string", lock, reply{200, h(), []byte(`{"type":0,"servedFrom":"n1","fencingToken":"7"}`)}, false},
		{"a timestamp without milliseconds", info, reply{200, h(), []byte(strings.Replace(goodInfo, "15:14:53.000Z", "15:14:53Z", 1))}, false},
		{"a timestamp not in UTC", info, reply{200, h(), []byte(strings.Replace(goodInfo, "15:14:53.000Z", "16:14:53.000+01:00", 1))}, false},
		{"a status the document does not list", lock, reply{418, h(), []byte(`{"type":99,"servedFrom":"n1","error":"teapot"}`)}, false},
		{"a 401 without WWW-Authenticate", lock, reply{401, h(), []byte(`{"type":99,"error":"missing bearer token"}`)}, false},
		{"a reply that is not JSON", lock, reply{200, http.Header{"Content-Type": {"text/plain"}}, []byte(`Locked`)}, false},
		{"a partition without voters", status, reply{200, h(), []byte(`{"type":4,"servedFrom":"n1","node":{"id":"n1","httpAddr":"a","raftAddr":"b","state":"alive","role":"voter"},"nodes":[],"partitions":[{"id":0,"leader":"n1","state":"leader","term":1,"commitIndex":1,"appliedIndex":1,"locks":0,"nonVoters":[]}]}`)}, false},
		{"a node state gossip never reports", status, reply{200, h(), []byte(`{"type":4,"servedFrom":"n1","node":{"id":"n1","httpAddr":"a","raftAddr":"b","state":"Alive","role":"voter"},"nodes":[],"partitions":[]}`)}, false},
	} {
		err := c.validate(tc.e, tc.got)
		if (err == nil) != tc.ok {
			t.Errorf("%s: validation error %v, want ok=%v", tc.name, err, tc.ok)
		} else if err != nil {
			first, _, _ := strings.Cut(err.Error(), "\n")
			t.Logf("%s: caught: %s", tc.name, first)
		}
	}
}
