package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func digestHex(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, content string) *Store {
	t.Helper()
	s, err := Load(writeFile(t, content))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

// goodFile has one token of each role, hashed and plain, with and without prefixes.
var goodFile = fmt.Sprintf(`{"tokens":[
	{"name":"reader","token":"read-token","role":"read"},
	{"name":"ci","sha256":%q,"role":"lock","prefixes":["ci/","cd/","ci/sub/"]},
	{"name":"root","sha256":%q,"role":"admin"}
]}`, digestHex("ci-token"), strings.ToUpper(digestHex("root-token-longer-than-the-others")))

func TestLoadGood(t *testing.T) {
	s := mustLoad(t, goodFile)
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	for _, tc := range []struct {
		token string
		want  Identity
	}{
		{"read-token", Identity{Name: "reader", Role: RoleRead}},
		// Prefixes come back sorted, "ci/sub/" dropped under "ci/".
		{"ci-token", Identity{Name: "ci", Role: RoleLock, Prefixes: []string{"cd/", "ci/"}}},
		{"root-token-longer-than-the-others", Identity{Name: "root", Role: RoleAdmin}},
	} {
		id, err := s.Authenticate("Bearer " + tc.token)
		if err != nil {
			t.Errorf("%s: %v", tc.want.Name, err)
			continue
		}
		if !reflect.DeepEqual(id, tc.want) {
			t.Errorf("%s: identity %+v, want %+v", tc.want.Name, id, tc.want)
		}
	}
}

func TestLoadBad(t *testing.T) {
	hex64 := digestHex("x")
	tok := func(fields string) string { return `{"tokens":[` + fields + `]}` }
	for _, tc := range []struct {
		name, content, want string
	}{
		{"not JSON", `{"tokens":`, "unexpected EOF"},
		{"syntax", `{"tokens":[}`, "not valid JSON"},
		{"empty file", ``, "empty file"},
		{"trailing data", `{"tokens":[{"name":"a","token":"t","role":"read"}]} {}`, "data after the JSON object"},
		{"array", `[]`, "the file has the wrong type: want an object"},
		{"tokens object", `{"tokens":{}}`, "tokens has the wrong type: want an array"},
		{"missing tokens", `{}`, `missing "tokens"`},
		{"null tokens", `{"tokens":null}`, `missing "tokens"`},
		{"empty tokens", `{"tokens":[]}`, `"tokens" is empty`},
		{"unknown top-level field", `{"tokens":[],"extra":1}`, `unknown field "extra"`},
		{"unknown token field", tok(`{"name":"a","token":"t","role":"read","rol":"x"}`), `unknown field "rol"`},
		{"missing name", tok(`{"token":"t","role":"read"}`), `token 0: missing or empty "name"`},
		{"empty name", tok(`{"name":"a","token":"t","role":"read"},{"name":"","token":"u","role":"read"}`), `token 1: missing or empty "name"`},
		{"unknown role", tok(`{"name":"a","token":"t","role":"write"}`), `token 0 ("a"): unknown role "write"`},
		{"missing role", tok(`{"name":"a","token":"t"}`), `token 0 ("a"): unknown role ""`},
		{"role case", tok(`{"name":"a","token":"t","role":"Admin"}`), `unknown role "Admin"`},
		{"both token and sha256", tok(`{"name":"a","token":"t","sha256":"` + hex64 + `","role":"read"}`), `token 0 ("a"): has both "token" and "sha256"`},
		{"neither token nor sha256", tok(`{"name":"a","role":"read"}`), `token 0 ("a"): needs "token" or "sha256"`},
		{"empty token", tok(`{"name":"a","token":"","role":"read"}`), `token 0 ("a"): empty "token"`},
		{"blank token", tok(`{"name":"a","token":"  ","role":"read"}`), `empty "token"`},
		{"token with space", tok(`{"name":"a","token":"t u","role":"read"}`), `"token" contains white space`},
		{"token type", tok(`{"name":"a","token":12,"role":"read"}`), `tokens.token has the wrong type: want a string`},
		{"sha256 short", tok(`{"name":"a","sha256":"` + hex64[:62] + `","role":"read"}`), `token 0 ("a"): "sha256" must be 64 hex digits`},
		{"sha256 long", tok(`{"name":"a","sha256":"` + hex64 + `00","role":"read"}`), `"sha256" must be 64 hex digits`},
		{"sha256 not hex", tok(`{"name":"a","sha256":"` + strings.Repeat("g", 64) + `","role":"read"}`), `"sha256" must be 64 hex digits`},
		{"sha256 empty", tok(`{"name":"a","sha256":"","role":"read"}`), `"sha256" must be 64 hex digits`},
		{"empty prefix", tok(`{"name":"a","token":"t","role":"read","prefixes":["x/",""]}`), `token 0 ("a"): "prefixes"[1] is empty`},
		{"duplicate name", tok(`{"name":"a","token":"t","role":"read"},{"name":"a","token":"u","role":"read"}`), `token 1 ("a"): name already used by token 0`},
		{"duplicate token", tok(`{"name":"a","token":"x","role":"read"},{"name":"b","sha256":"` + hex64 + `","role":"admin"}`), `token 1 ("b"): same token as token 0 ("a")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.content)
			s, err := Load(p)
			if err == nil {
				t.Fatalf("Load succeeded (%d tokens), want error %q", s.Len(), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v, want one wrapping os.ErrNotExist", err)
	}
}

// TestTokenNeverInErrors loads bad files and presents tokens in ways that
// fail, and checks that no error (nor a 401/403 body) quotes the token.
func TestTokenNeverInErrors(t *testing.T) {
	const secret = "s3cr3tV4lu3"
	const numSecret = "98765432109876"
	files := []string{
		`{"tokens":[{"name":"a","token":` + secret + `,"role":"read"}]}`,
		`{"tokens":[{"name":"a","token":` + numSecret + `,"role":"read"}]}`,
		`{"tokens":[{"name":"a","token":"` + secret + ` ","role":"read"}]}`,
		`{"tokens":[{"name":"a","token":"` + secret + `","sha256":"` + digestHex(secret) + `","role":"read"}]}`,
		`{"tokens":[{"name":"a","token":"` + secret + `","role":"sudo"}]}`,
		`{"tokens":[{"name":"a","token":"` + secret + `","role":"read","prefixes":[""]}]}`,
		`{"tokens":[{"name":"a","token":"` + secret + `","role":"read"},{"name":"a","token":"other","role":"read"}]}`,
		`{"tokens":[{"name":"a","token":"` + secret + `","role":"read"},{"name":"b","sha256":"` + digestHex(secret) + `","role":"read"}]}`,
		`{"tokens":[{"name":"a","sha256":"` + secret + `","role":"read"}]}`,
		`{"tokens":[{"name":"a","token":"` + secret + `","role":"read","extra":"` + secret + `"}]}`,
		`{"tokens":[{"name":"a","token":"` + secret + `","role":"read"}]}` + secret,
	}
	check := func(what, msg string) {
		t.Helper()
		for _, s := range []string{secret, numSecret, digestHex(secret)} {
			if strings.Contains(msg, s) {
				t.Errorf("%s: %q quotes a token", what, msg)
			}
		}
	}
	for i, f := range files {
		_, err := Load(writeFile(t, f))
		if err == nil {
			t.Errorf("file %d loaded, want an error", i)
			continue
		}
		check(fmt.Sprintf("file %d", i), err.Error())
	}
	s := mustLoad(t, `{"tokens":[{"name":"a","token":"`+secret+`","role":"read","prefixes":["p/"]}]}`)
	if err := s.Reload(writeFile(t, files[0])); err == nil {
		t.Error("Reload of a bad file succeeded")
	} else {
		check("reload", err.Error())
	}
	for _, h := range []string{"Bearer " + secret + "x", "Bearer x" + secret, "Basic " + secret, "Token " + secret} {
		if _, err := s.Authenticate(h); err == nil {
			t.Errorf("Authenticate(%q) succeeded", h)
		} else {
			check("Authenticate", err.Error())
		}
	}
}

func TestAuthenticate(t *testing.T) {
	s := mustLoad(t, goodFile)
	for _, tc := range []struct {
		header  string
		name    string // identity wanted, when no error
		wantErr error
	}{
		{"Bearer read-token", "reader", nil},
		{"bearer read-token", "reader", nil},
		{"BEARER ci-token", "ci", nil},
		{"Bearer   read-token  ", "reader", nil},
		{"Bearer root-token-longer-than-the-others", "root", nil},
		{"", "", ErrNoToken},
		{"Bearer", "", ErrNoToken},
		{"Bearer ", "", ErrNoToken},
		{"Bearer    ", "", ErrNoToken},
		{"Basic read-token", "", ErrNoToken},
		{"read-token", "", ErrNoToken},
		{"Bearerread-token", "", ErrNoToken},
		{"Bearer reab-token", "", ErrUnknownToken}, // same length, one byte off
		{"Bearer read-toke", "", ErrUnknownToken},  // a prefix
		{"Bearer read-tokenx", "", ErrUnknownToken},
		{"Bearer " + strings.Repeat("x", 200), "", ErrUnknownToken},
		{"Bearer READ-TOKEN", "", ErrUnknownToken},
		{"Bearer read-token extra", "", ErrUnknownToken},
		// The digest itself is not a token.
		{"Bearer " + digestHex("ci-token"), "", ErrUnknownToken},
	} {
		id, err := s.Authenticate(tc.header)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Authenticate(%q) = %+v, %v; want %v", tc.header, id, err, tc.wantErr)
			}
			if id.Name != "" || id.Role != RoleNone {
				t.Errorf("Authenticate(%q) returned identity %+v with its error", tc.header, id)
			}
			continue
		}
		if err != nil || id.Name != tc.name {
			t.Errorf("Authenticate(%q) = %q, %v; want %q", tc.header, id.Name, err, tc.name)
		}
	}
}

func TestRoles(t *testing.T) {
	want := map[Role]map[Role]bool{
		RoleRead:  {RoleNone: true, RoleRead: true, RoleLock: false, RoleAdmin: false},
		RoleLock:  {RoleNone: true, RoleRead: true, RoleLock: true, RoleAdmin: false},
		RoleAdmin: {RoleNone: true, RoleRead: true, RoleLock: true, RoleAdmin: true},
	}
	for have, row := range want {
		for need, ok := range row {
			if got := (Identity{Role: have}).Allows(need); got != ok {
				t.Errorf("%v allows %v = %v, want %v", have, need, got, ok)
			}
		}
	}
	if (Identity{}).Allows(RoleRead) {
		t.Error("the zero Identity allows read")
	}
	for _, r := range []Role{RoleRead, RoleLock, RoleAdmin} {
		got, err := ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v", r.String(), got, err)
		}
	}
	if _, err := ParseRole("none"); err == nil {
		t.Error(`ParseRole("none") succeeded: no token may have it`)
	}
	if s := Role(9).String(); s != "Role(9)" {
		t.Errorf("Role(9).String() = %q", s)
	}
}

func TestAllowsResource(t *testing.T) {
	free := Identity{Name: "free"}
	ci := Identity{Name: "ci", Prefixes: []string{"cd/", "ci/"}}
	for _, tc := range []struct {
		id       Identity
		resource string
		want     bool
	}{
		{free, "anything", true},
		{free, "", true},
		{ci, "ci/build", true},
		{ci, "ci/", true},
		{ci, "cd/deploy", true},
		{ci, "ci", false},
		{ci, "c", false},
		{ci, "", false},
		{ci, "prod/db", false},
		{ci, "CI/build", false},
		{ci, "xci/build", false},
	} {
		if got := tc.id.AllowsResource(tc.resource); got != tc.want {
			t.Errorf("%s.AllowsResource(%q) = %v, want %v", tc.id.Name, tc.resource, got, tc.want)
		}
	}
}

func TestListPrefixes(t *testing.T) {
	free := Identity{Name: "free"}
	ci := Identity{Name: "ci", Prefixes: []string{"cd/", "ci/", "x"}}
	for _, tc := range []struct {
		id     Identity
		prefix string
		want   []string
		ok     bool
	}{
		{free, "", []string{""}, true},
		{free, "abc", []string{"abc"}, true},
		{ci, "ci/", []string{"ci/"}, true},
		{ci, "ci/build/", []string{"ci/build/"}, true},
		{ci, "xyz", []string{"xyz"}, true},
		{ci, "", []string{"cd/", "ci/", "x"}, true},
		{ci, "c", []string{"cd/", "ci/"}, true},
		{ci, "ci", []string{"ci/"}, true},
		{ci, "prod/", nil, false},
		{ci, "cx", nil, false},
	} {
		got, ok := tc.id.ListPrefixes(tc.prefix)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s.ListPrefixes(%q) = %q, %v; want %q, %v", tc.id.Name, tc.prefix, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMinimalPrefixes(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"b", "a"}, []string{"a", "b"}},
		{[]string{"ci/a/", "ci/", "ci/b", "ci/"}, []string{"ci/"}},
		{[]string{"a", "ab", "b", "ba", "c"}, []string{"a", "b", "c"}},
		{[]string{"ab", "a/"}, []string{"a/", "ab"}},
	} {
		if got := minimalPrefixes(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("minimalPrefixes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestReload(t *testing.T) {
	p := writeFile(t, `{"tokens":[{"name":"a","token":"token-a","role":"read"},{"name":"b","token":"token-b","role":"admin"}]}`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate("Bearer token-b"); err != nil {
		t.Fatalf("b before reload: %v", err)
	}
	// Revoke b, promote a.
	if err := os.WriteFile(p, []byte(`{"tokens":[{"name":"a","token":"token-a","role":"lock"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(p); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := s.Authenticate("Bearer token-b"); !errors.Is(err, ErrUnknownToken) {
		t.Fatalf("revoked b: %v, want ErrUnknownToken", err)
	}
	if id, err := s.Authenticate("Bearer token-a"); err != nil || id.Role != RoleLock {
		t.Fatalf("a after reload: %+v, %v; want role lock", id, err)
	}
	// A broken file keeps the current set.
	for _, bad := range []string{`{"tokens":[{"name":"c","token":"token-c","role":"root"}]}`, `{`, ``} {
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(p); err == nil {
			t.Fatalf("Reload of %q succeeded", bad)
		}
		if id, err := s.Authenticate("Bearer token-a"); err != nil || id.Role != RoleLock {
			t.Fatalf("a after a failed reload: %+v, %v", id, err)
		}
		if _, err := s.Authenticate("Bearer token-c"); !errors.Is(err, ErrUnknownToken) {
			t.Fatalf("c after a failed reload: %v", err)
		}
	}
	if err := s.Reload(filepath.Join(t.TempDir(), "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Reload of a missing file: %v", err)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d after failed reloads, want 1", s.Len())
	}
}

// TestReloadConcurrent authenticates from many goroutines while the file
// flips between two sets; run with -race. Every answer must come from one
// whole set: "a" is always known, and "b" only ever as the admin of set 2.
func TestReloadConcurrent(t *testing.T) {
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "1.json"), filepath.Join(dir, "2.json")
	os.WriteFile(p1, []byte(`{"tokens":[{"name":"a","token":"token-a","role":"read"}]}`), 0o600)
	os.WriteFile(p2, []byte(`{"tokens":[{"name":"a","token":"token-a","role":"read"},{"name":"b","token":"token-b","role":"admin","prefixes":["x"]}]}`), 0o600)
	s, err := Load(p1)
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				if id, err := s.Authenticate("Bearer token-a"); err != nil || id.Name != "a" {
					errs <- fmt.Errorf("a: %+v, %v", id, err)
					return
				}
				id, err := s.Authenticate("Bearer token-b")
				if err == nil && (id.Name != "b" || id.Role != RoleAdmin || len(id.Prefixes) != 1) {
					errs <- fmt.Errorf("b: %+v", id)
					return
				}
				if err != nil && !errors.Is(err, ErrUnknownToken) {
					errs <- fmt.Errorf("b: %v", err)
					return
				}
			}
		})
	}
	for i := range 200 {
		if err := s.Reload([]string{p1, p2}[i%2]); err != nil {
			t.Error(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNilStore(t *testing.T) {
	var s *Store
	if s.Len() != 0 {
		t.Error("nil Len != 0")
	}
	if err := s.Reload(writeFile(t, goodFile)); err == nil {
		t.Error("Reload on a nil Store succeeded")
	}
	if _, err := s.Authenticate("Bearer read-token"); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("Authenticate on a nil Store: %v", err)
	}
}
