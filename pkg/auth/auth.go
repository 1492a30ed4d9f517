// Package auth implements the bearer tokens of --auth-file (CONTRACT §8):
// a JSON token file, roles, resource prefixes, and a chi-compatible HTTP
// middleware.
//
// The checks are split in two, because the resource of a lock request is in
// its body, which the API decodes itself:
//
//   - Store.Middleware authenticates the token and checks the route's Role
//     (401 or 403 before the handler runs), then puts the Identity in the
//     request context.
//   - The API, after decoding, calls CheckResource (or
//     Identity.AllowsResource) for a lock request's resource and
//     Identity.ListPrefixes for a list's prefix, and answers 403 itself.
//
// A nil *Store means auth is off: its middleware passes every request and
// puts no Identity in the context, so CheckResource allows everything.
//
// Tokens are never kept or printed in plain text: the store holds their
// SHA-256 digests and compares them in constant time. Identity.Name is
// what logs should show.
package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
)

// Role is what a token may do. Roles are ordered: each one includes the
// ones below it (admin ⊇ lock ⊇ read).
type Role uint8

const (
	// RoleNone is what a public route needs: no token at all. It is never
	// a token's role.
	RoleNone Role = iota
	// RoleRead may get-info, list, read the cluster status and metrics.
	RoleRead
	// RoleLock may also try-lock, try-extend and try-unlock.
	RoleLock
	// RoleAdmin may do everything, force-unlock and membership included.
	RoleAdmin
)

var roleNames = [...]string{RoleNone: "none", RoleRead: "read", RoleLock: "lock", RoleAdmin: "admin"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", r)
}

// ParseRole parses a role of the auth file: "read", "lock" or "admin".
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return RoleRead, nil
	case "lock":
		return RoleLock, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q (want read, lock or admin)", s)
}

// Errors of Authenticate and of the checks; test them with errors.Is.
var (
	ErrNoToken      = errors.New("missing bearer token") // → 401
	ErrUnknownToken = errors.New("unknown bearer token") // → 401
	ErrForbidden    = errors.New("forbidden")            // → 403
)

// Identity is an authenticated token.
type Identity struct {
	Name string
	Role Role
	// Prefixes, when not empty, limit the token to resources that start
	// with one of them. They are sorted, and none is a prefix of another.
	// Shared with the Store: do not modify.
	Prefixes []string
}

// Allows reports whether the identity's role includes need.
func (id Identity) Allows(need Role) bool { return id.Role >= need }

// AllowsResource reports whether the identity may use resource: always
// when it has no prefixes.
func (id Identity) AllowsResource(resource string) bool {
	if len(id.Prefixes) == 0 {
		return true
	}
	for _, p := range id.Prefixes {
		if strings.HasPrefix(resource, p) {
			return true
		}
	}
	return false
}

// ListPrefixes narrows a list request for the given prefix to what the
// identity may see. It returns the prefixes to list instead, and false
// when the identity may see nothing under prefix (answer 403):
//
//   - no token prefixes, or prefix starts with one of them: [prefix];
//   - prefix is shorter, e.g. "" or "c" for a token limited to "ci/" and
//     "cd/": the token prefixes under it, ["cd/", "ci/"].
//
// The result is sorted and none of its entries is a prefix of another, so
// their matches are disjoint and come in the same order: the API may list
// them one after another, or, more simply, list the requested prefix and
// drop entries for which AllowsResource is false (pages may then come out
// short; the cursor is the last resource read, kept or not).
func (id Identity) ListPrefixes(prefix string) ([]string, bool) {
	if id.AllowsResource(prefix) {
		return []string{prefix}, true
	}
	var out []string
	for _, p := range id.Prefixes {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out, len(out) > 0
}

// entry is one token of the file.
type entry struct {
	digest [sha256.Size]byte
	id     Identity
}

// Store holds the tokens of an auth file. It is safe for concurrent use;
// Reload replaces the whole set at once.
type Store struct {
	set atomic.Pointer[[]entry]
}

// Load reads and validates an auth file.
func Load(path string) (*Store, error) {
	set, err := parseFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{}
	s.set.Store(&set)
	return s, nil
}

// Reload replaces the tokens with those of path. On error the old tokens
// stay in force and the error is returned.
func (s *Store) Reload(path string) error {
	if s == nil {
		return errors.New("auth: reload: auth is off")
	}
	set, err := parseFile(path)
	if err != nil {
		return err
	}
	s.set.Store(&set)
	return nil
}

// Len returns the number of tokens (0 for a nil Store), for a log line
// after a load or reload.
func (s *Store) Len() int {
	if s == nil {
		return 0
	}
	return len(*s.set.Load())
}

// Authenticate checks the value of an Authorization header,
// "Bearer <token>". Errors wrap ErrNoToken or ErrUnknownToken and never
// contain the token.
func (s *Store) Authenticate(header string) (Identity, error) {
	scheme, token, _ := strings.Cut(header, " ")
	switch {
	case header == "":
		return Identity{}, ErrNoToken
	case !strings.EqualFold(scheme, "Bearer"):
		return Identity{}, fmt.Errorf("%w: the Authorization header is not a Bearer token", ErrNoToken)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return Identity{}, fmt.Errorf("%w: the Bearer token is empty", ErrNoToken)
	}
	if s == nil {
		return Identity{}, ErrUnknownToken
	}
	digest := sha256.Sum256([]byte(token))
	set := *s.set.Load()
	// Compare with every entry, without stopping at a match, so the time
	// taken says nothing about which entry (if any) matched.
	found, idx := 0, 0
	for i := range set {
		m := subtle.ConstantTimeCompare(set[i].digest[:], digest[:])
		found |= m
		idx = subtle.ConstantTimeSelect(m, i, idx)
	}
	if found == 0 {
		return Identity{}, ErrUnknownToken
	}
	return set[idx].id, nil
}

// fileFormat is the auth file. Pointers tell a missing field from an
// empty one.
type fileFormat struct {
	Tokens *[]fileToken `json:"tokens"`
}

type fileToken struct {
	Name     string   `json:"name"`
	Token    *string  `json:"token"`
	SHA256   *string  `json:"sha256"`
	Role     string   `json:"role"`
	Prefixes []string `json:"prefixes"`
}

func parseFile(path string) ([]entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	set, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return set, nil
}

func parse(data []byte) ([]entry, error) {
	var f fileFormat
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	if f.Tokens == nil {
		return nil, errors.New(`missing "tokens"`)
	}
	if len(*f.Tokens) == 0 {
		return nil, errors.New(`"tokens" is empty: no client could connect`)
	}
	set := make([]entry, 0, len(*f.Tokens))
	names := map[string]int{}
	digests := map[[sha256.Size]byte]int{}
	for i, t := range *f.Tokens {
		e, err := parseToken(t)
		if err != nil {
			if t.Name == "" {
				return nil, fmt.Errorf("token %d: %w", i, err)
			}
			return nil, fmt.Errorf("token %d (%q): %w", i, t.Name, err)
		}
		if j, dup := names[e.id.Name]; dup {
			return nil, fmt.Errorf("token %d (%q): name already used by token %d", i, e.id.Name, j)
		}
		if j, dup := digests[e.digest]; dup {
			return nil, fmt.Errorf("token %d (%q): same token as token %d (%q)", i, e.id.Name, j, set[j].id.Name)
		}
		names[e.id.Name] = i
		digests[e.digest] = i
		set = append(set, e)
	}
	return set, nil
}

func parseToken(t fileToken) (entry, error) {
	var e entry
	if t.Name == "" {
		return e, errors.New(`missing or empty "name"`)
	}
	role, err := ParseRole(t.Role)
	if err != nil {
		return e, err
	}
	switch {
	case t.Token != nil && t.SHA256 != nil:
		return e, errors.New(`has both "token" and "sha256"; give one`)
	case t.Token != nil:
		if strings.TrimSpace(*t.Token) == "" {
			return e, errors.New(`empty "token"`)
		}
		if *t.Token != strings.TrimSpace(*t.Token) || strings.ContainsAny(*t.Token, " \t\r\n") {
			// Authenticate trims the header value: such a token could never match.
			return e, errors.New(`"token" contains white space`)
		}
		e.digest = sha256.Sum256([]byte(*t.Token))
	case t.SHA256 != nil:
		b, err := hex.DecodeString(*t.SHA256)
		if err != nil || len(b) != sha256.Size {
			return e, fmt.Errorf(`"sha256" must be %d hex digits`, 2*sha256.Size)
		}
		copy(e.digest[:], b)
	default:
		return e, errors.New(`needs "token" or "sha256"`)
	}
	for i, p := range t.Prefixes {
		if p == "" {
			return e, fmt.Errorf(`"prefixes"[%d] is empty`, i)
		}
	}
	e.id = Identity{Name: t.Name, Role: role, Prefixes: minimalPrefixes(t.Prefixes)}
	return e, nil
}

// minimalPrefixes sorts the prefixes and drops those another one covers
// ("ci/a/" under "ci/"), so ListPrefixes returns disjoint ranges in order.
func minimalPrefixes(ps []string) []string {
	if len(ps) == 0 {
		return nil
	}
	ps = slices.Clone(ps)
	slices.Sort(ps)
	out := ps[:1]
	for _, p := range ps[1:] {
		// Sorted, so a covering prefix comes right before what it covers.
		if !strings.HasPrefix(p, out[len(out)-1]) {
			out = append(out, p)
		}
	}
	return slices.Clip(out)
}

// jsonError describes a decoding error without quoting the input, which
// may be a token.
func jsonError(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("not valid JSON (at byte %d)", syn.Offset)
	}
	// Its message quotes numbers: "number 1234".
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		want := map[reflect.Kind]string{reflect.String: "a string", reflect.Slice: "an array"}[typ.Type.Kind()]
		if want == "" {
			want = "an object"
		}
		field := typ.Field
		if field == "" {
			field = "the file"
		}
		return fmt.Errorf("%s has the wrong type: want %s (at byte %d)", field, want, typ.Offset)
	}
	if errors.Is(err, io.EOF) {
		return errors.New("empty file")
	}
	return err
}
