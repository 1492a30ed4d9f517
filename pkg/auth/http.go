package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Middleware returns an HTTP middleware (chi's r.Use accepts it) that asks
// every request for a token with the role need(r) returns; need nil means
// RequiredRole. It answers 401 (with WWW-Authenticate: Bearer) for a
// missing or unknown token and 403 for a role too low, both with
// {"type":99,"error":...}; otherwise it stores the Identity in the request
// context. /livez, /readyz, and routes for which need returns RoleNone are
// served without a token. On a nil Store it passes every request.
func (s *Store) Middleware(need func(r *http.Request) Role) func(http.Handler) http.Handler {
	if need == nil {
		need = RequiredRole
	}
	return func(next http.Handler) http.Handler {
		if s == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := r.URL.Path
			if p == wire.PathLivez || p == wire.PathReadyz {
				next.ServeHTTP(w, r)
				return
			}
			role := need(r)
			if role == RoleNone {
				next.ServeHTTP(w, r)
				return
			}
			id, err := s.Authenticate(r.Header.Get("Authorization"))
			if err == nil && !id.Allows(role) {
				err = fmt.Errorf("%w: token %q has role %s; this request needs %s", ErrForbidden, id.Name, id.Role, role)
			}
			if err != nil {
				WriteError(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), id)))
		})
	}
}

// RequiredRole is the role each route of the API needs (CONTRACT §8, §9).
// Routes it does not know need RoleAdmin, so a route added later is closed
// until it is listed here.
func RequiredRole(r *http.Request) Role {
	switch p := r.URL.Path; p {
	case wire.PathLivez, wire.PathReadyz, "/", "/ui":
		return RoleNone
	case wire.PathGetInfo, wire.PathList, wire.PathClusterStatus, "/metrics", "/v1/openapi.json":
		return RoleRead
	case wire.PathTryLock, wire.PathTryExtend, wire.PathTryUnlock:
		return RoleLock
	default:
		// The dashboard's static files: the page asks for the token itself.
		// Only clean paths, so "/ui/../v1/..." cannot slip through.
		if c := path.Clean(p); strings.HasPrefix(p, "/ui/") && (c == p || c+"/" == p) {
			return RoleNone
		}
		return RoleAdmin // force-unlock, remove-node, and anything new
	}
}

// StatusCode maps an error of this package to its HTTP status: 401, 403,
// or 500 for anything else.
func StatusCode(err error) int {
	switch {
	case errors.Is(err, ErrNoToken), errors.Is(err, ErrUnknownToken):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

// WriteError answers err with its StatusCode and {"type":99,"error":...},
// adding WWW-Authenticate: Bearer to a 401.
func WriteError(w http.ResponseWriter, err error) {
	status := StatusCode(err)
	body, _ := json.Marshal(struct {
		Type  wire.Type `json:"type"`
		Error string    `json:"error"`
	}{wire.Errored, err.Error()})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", "Bearer")
	}
	w.WriteHeader(status)
	w.Write(body)
}

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the Identity the middleware stored, and false when
// there is none (auth off, or a public route).
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// CheckResource is the API's resource check after it decoded a lock
// request: nil when ctx carries no Identity (auth is off) or its Identity
// may use resource, else an error wrapping ErrForbidden.
func CheckResource(ctx context.Context, resource string) error {
	id, ok := FromContext(ctx)
	if !ok || id.AllowsResource(resource) {
		return nil
	}
	return fmt.Errorf("%w: token %q may not use resource %q", ErrForbidden, id.Name, resource)
}
