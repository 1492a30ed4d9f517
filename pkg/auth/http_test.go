package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// newServer is a chi router with the middleware and a handler that answers
// "ok <name>" and counts the requests that reached it.
func newServer(s *Store, calls *int) http.Handler {
	r := chi.NewRouter()
	r.Use(s.Middleware(nil))
	h := func(w http.ResponseWriter, r *http.Request) {
		*calls++
		id, ok := FromContext(r.Context())
		if !ok {
			id.Name = "-"
		}
		w.Write([]byte("ok " + id.Name))
	}
	for _, p := range []string{wire.PathTryLock, wire.PathTryExtend, wire.PathTryUnlock, wire.PathGetInfo, wire.PathForceUnlock, wire.PathRemoveNode} {
		r.Post(p, h)
	}
	for _, p := range []string{wire.PathList, wire.PathClusterStatus, wire.PathLivez, wire.PathReadyz, "/metrics", "/ui/", "/ui/app.js"} {
		r.Get(p, h)
	}
	return r
}

func TestMiddleware(t *testing.T) {
	s := mustLoad(t, goodFile)
	const (
		read  = "Bearer read-token"
		lock  = "Bearer ci-token"
		admin = "Bearer root-token-longer-than-the-others"
	)
	for _, tc := range []struct {
		method, path, header string
		status               int
		body                 string
	}{
		// 401: no state change, exact body, WWW-Authenticate.
		{"POST", wire.PathTryLock, "", 401, `{"type":99,"error":"missing bearer token"}`},
		{"POST", wire.PathTryLock, "Basic x", 401, `{"type":99,"error":"missing bearer token: the Authorization header is not a Bearer token"}`},
		{"POST", wire.PathTryLock, "Bearer ", 401, `{"type":99,"error":"missing bearer token: the Bearer token is empty"}`},
		{"POST", wire.PathTryLock, "Bearer read-tokem", 401, `{"type":99,"error":"unknown bearer token"}`},
		{"GET", wire.PathList, "Bearer nope", 401, `{"type":99,"error":"unknown bearer token"}`},
		{"GET", "/metrics", "", 401, `{"type":99,"error":"missing bearer token"}`},
		{"GET", "/v1/nowhere", "", 401, `{"type":99,"error":"missing bearer token"}`},
		// 403 for a role too low.
		{"POST", wire.PathTryLock, read, 403, `{"type":99,"error":"forbidden: token \"reader\" has role read; this request needs lock"}`},
		{"POST", wire.PathTryUnlock, read, 403, `{"type":99,"error":"forbidden: token \"reader\" has role read; this request needs lock"}`},
		{"POST", wire.PathForceUnlock, lock, 403, `{"type":99,"error":"forbidden: token \"ci\" has role lock; this request needs admin"}`},
		{"POST", wire.PathRemoveNode, lock, 403, `{"type":99,"error":"forbidden: token \"ci\" has role lock; this request needs admin"}`},
		{"GET", "/ui/../v1/locks", read, 403, `{"type":99,"error":"forbidden: token \"reader\" has role read; this request needs admin"}`},
		// Allowed, with the identity in the context.
		{"POST", wire.PathGetInfo, read, 200, "ok reader"},
		{"GET", wire.PathList, read, 200, "ok reader"},
		{"GET", wire.PathClusterStatus, read, 200, "ok reader"},
		{"GET", "/metrics", read, 200, "ok reader"},
		{"POST", wire.PathTryLock, lock, 200, "ok ci"},
		{"POST", wire.PathTryExtend, lock, 200, "ok ci"},
		{"POST", wire.PathGetInfo, lock, 200, "ok ci"},
		{"POST", wire.PathForceUnlock, admin, 200, "ok root"},
		{"POST", wire.PathRemoveNode, admin, 200, "ok root"},
		{"POST", wire.PathTryLock, admin, 200, "ok root"},
		// Open routes, with no token or a bad one; no identity.
		{"GET", wire.PathLivez, "", 200, "ok -"},
		{"GET", wire.PathReadyz, "", 200, "ok -"},
		{"GET", wire.PathLivez, "Bearer nope", 200, "ok -"},
		{"GET", wire.PathReadyz, "Basic x", 200, "ok -"},
		{"GET", "/ui/", "", 200, "ok -"},
		{"GET", "/ui/app.js", "", 200, "ok -"},
	} {
		calls := 0
		srv := newServer(s, &calls)
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(`{"resource":"x"}`))
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		name := tc.method + " " + tc.path + " [" + tc.header + "]"
		if rec.Code != tc.status || rec.Body.String() != tc.body {
			t.Errorf("%s: %d %s; want %d %s", name, rec.Code, rec.Body, tc.status, tc.body)
		}
		wantCalls, wantAuth, wantType := 1, "", ""
		switch tc.status {
		case 401:
			wantCalls, wantAuth, wantType = 0, "Bearer", "application/json"
		case 403:
			wantCalls, wantType = 0, "application/json"
		}
		if calls != wantCalls {
			t.Errorf("%s: handler ran %d times, want %d", name, calls, wantCalls)
		}
		if got := rec.Header().Get("WWW-Authenticate"); got != wantAuth {
			t.Errorf("%s: WWW-Authenticate %q, want %q", name, got, wantAuth)
		}
		if got := rec.Header().Get("Content-Type"); wantType != "" && got != wantType {
			t.Errorf("%s: Content-Type %q, want %q", name, got, wantType)
		}
	}
}

func TestMiddlewareNilStore(t *testing.T) {
	var s *Store
	for _, p := range []string{wire.PathForceUnlock, wire.PathRemoveNode, wire.PathTryLock} {
		calls := 0
		req := httptest.NewRequest("POST", p, nil)
		req.Header.Set("Authorization", "Bearer whatever")
		rec := httptest.NewRecorder()
		newServer(s, &calls).ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Body.String() != "ok -" || calls != 1 {
			t.Errorf("%s with auth off: %d %q (%d calls)", p, rec.Code, rec.Body, calls)
		}
	}
}

func TestMiddlewareCustomNeed(t *testing.T) {
	s := mustLoad(t, goodFile)
	var got Identity
	h := s.Middleware(func(*http.Request) Role { return RoleLock })(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = FromContext(r.Context())
	}))
	for header, want := range map[string]int{"Bearer read-token": 403, "Bearer ci-token": 200, "": 401} {
		req := httptest.NewRequest("GET", "/anything", nil)
		req.Header.Set("Authorization", header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%q: %d, want %d", header, rec.Code, want)
		}
	}
	if got.Name != "ci" {
		t.Errorf("identity in context %+v, want ci", got)
	}
}

// TestMiddlewareReload: a token revoked by a reload is refused on the next
// request, and a broken reload keeps the old tokens.
func TestMiddlewareReload(t *testing.T) {
	p := writeFile(t, `{"tokens":[{"name":"a","token":"token-a","role":"lock"},{"name":"b","token":"token-b","role":"lock"}]}`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	srv := newServer(s, &calls)
	do := func(token string) int {
		req := httptest.NewRequest("POST", wire.PathTryLock, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code
	}
	if do("token-a") != 200 || do("token-b") != 200 {
		t.Fatal("tokens refused before the reload")
	}
	os.WriteFile(p, []byte(`{"tokens":[{"name":"a","token":"token-a","role":"lock"}]}`), 0o600)
	if err := s.Reload(p); err != nil {
		t.Fatal(err)
	}
	if c := do("token-b"); c != 401 {
		t.Fatalf("revoked token: %d, want 401", c)
	}
	os.WriteFile(p, []byte(`{"tokens":[{"name":"a","token":"token-a","role":"lock"},{"name":"a","token":"token-b","role":"lock"}]}`), 0o600)
	if err := s.Reload(p); err == nil {
		t.Fatal("reload with a duplicate name succeeded")
	}
	if do("token-a") != 200 || do("token-b") != 401 {
		t.Fatal("a failed reload changed the tokens")
	}
}

func TestRequiredRole(t *testing.T) {
	for path, want := range map[string]Role{
		wire.PathLivez:            RoleNone,
		wire.PathReadyz:           RoleNone,
		"/":                       RoleNone,
		"/ui":                     RoleNone,
		"/ui/":                    RoleNone,
		"/ui/app.js":              RoleNone,
		"/ui/css/site.css":        RoleNone,
		"/ui/css/":                RoleNone,
		"/ui/../v1/locks":         RoleAdmin,
		"/ui//x":                  RoleAdmin,
		"/ui/./x":                 RoleAdmin,
		wire.PathGetInfo:          RoleRead,
		wire.PathList:             RoleRead,
		wire.PathClusterStatus:    RoleRead,
		"/metrics":                RoleRead,
		"/v1/openapi.json":        RoleRead,
		wire.PathTryLock:          RoleLock,
		wire.PathTryExtend:        RoleLock,
		wire.PathTryUnlock:        RoleLock,
		wire.PathForceUnlock:      RoleAdmin,
		wire.PathRemoveNode:       RoleAdmin,
		"/v1/cluster/add-node":    RoleAdmin,
		"/v1/locks/":              RoleAdmin,
		"/livez/":                 RoleAdmin,
		"/v1/locks/try-lock/../x": RoleAdmin,
	} {
		if got := RequiredRole(httptest.NewRequest("GET", "http://h"+path, nil)); got != want {
			t.Errorf("RequiredRole(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestCheckResource(t *testing.T) {
	ci := Identity{Name: "ci", Role: RoleLock, Prefixes: []string{"ci/"}}
	for _, tc := range []struct {
		ctx      context.Context
		resource string
		want     error
	}{
		{context.Background(), "prod/db", nil}, // auth off
		{NewContext(context.Background(), Identity{Name: "all", Role: RoleLock}), "prod/db", nil},
		{NewContext(context.Background(), ci), "ci/build", nil},
		{NewContext(context.Background(), ci), "prod/db", ErrForbidden},
	} {
		err := CheckResource(tc.ctx, tc.resource)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("CheckResource(%q) = %v, want %v", tc.resource, err, tc.want)
		}
	}
	err := CheckResource(NewContext(context.Background(), ci), "prod/db")
	rec := httptest.NewRecorder()
	WriteError(rec, err)
	if want := `{"type":99,"error":"forbidden: token \"ci\" may not use resource \"prod/db\""}`; rec.Code != 403 || rec.Body.String() != want {
		t.Errorf("WriteError: %d %s, want 403 %s", rec.Code, rec.Body, want)
	}
	if rec.Header().Get("WWW-Authenticate") != "" {
		t.Error("403 carries WWW-Authenticate")
	}
}

func TestStatusCode(t *testing.T) {
	for err, want := range map[error]int{
		ErrNoToken:              401,
		ErrUnknownToken:         401,
		ErrForbidden:            403,
		errors.New("other"):     500,
		errors.Join(ErrNoToken): 401,
	} {
		if got := StatusCode(err); got != want {
			t.Errorf("StatusCode(%v) = %d, want %d", err, got, want)
		}
	}
}
