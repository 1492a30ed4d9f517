package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/client"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// authFile writes an auth file with the given tokens (name → JSON entry
// without the name) and returns its path.
func authFile(t *testing.T, dir string, entries ...string) string {
	t.Helper()
	path := filepath.Join(dir, "auth.json")
	body := `{"tokens":[` + strings.Join(entries, ",") + `]}`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func sha(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// raw sends one request with an optional bearer token and returns the
// status and body.
func raw(t *testing.T, c *testutil.Client, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), method, c.Base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, readAll(t, resp)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAuthTokens runs a node with --auth-file and tries every role and
// prefix on the endpoints as an attacker and as a user would: refusals are
// 401 or 403 with a JSON body and change nothing, lists are filtered to a
// token's prefixes, health stays open, the Go client and kahuna-cli send
// tokens, SIGHUP revokes a token, and a broken reload keeps the old ones.
func TestAuthTokens(t *testing.T) {
	t.Parallel()
	n := testutil.NewNode(t, kahunadBin)
	dir := t.TempDir()
	file := authFile(t, dir,
		`{"name":"root","sha256":"`+sha("admin-secret")+`","role":"admin"}`,
		`{"name":"ci","token":"ci-secret","role":"lock","prefixes":["ci/"]}`,
		`{"name":"viewer","token":"read-secret","role":"read"}`,
	)
	p := n.StartReady(t, "--auth-file", file)
	c := p.Client()
	lockBody := func(res string) string {
		return `{"resource":"` + res + `","owner":"o","expiresMs":600000}`
	}

	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		want                            string
	}{
		{"no token", "POST", wire.PathTryLock, "", lockBody("ci/a"), 401, `"type":99`},
		{"unknown token", "POST", wire.PathTryLock, "nope", lockBody("ci/a"), 401, `"type":99`},
		{"read token locks", "POST", wire.PathTryLock, "read-secret", lockBody("ci/a"), 403, `"type":99`},
		{"lock token outside its prefix", "POST", wire.PathTryLock, "ci-secret", lockBody("prod/db"), 403, "prod/db"},
		{"lock token force-unlocks", "POST", wire.PathForceUnlock, "ci-secret", `{"resource":"ci/a"}`, 403, `"type":99`},
		{"lock token removes a node", "POST", wire.PathRemoveNode, "ci-secret", `{"node":"x"}`, 403, `"type":99`},
		{"no token reads status", "GET", wire.PathClusterStatus, "", "", 401, `"type":99`},
		{"no token lists", "GET", wire.PathList, "", "", 401, `"type":99`},
	} {
		status, body := raw(t, c, tc.method, tc.path, tc.token, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %s", tc.name, status, body, tc.status, tc.want)
		}
		if strings.Contains(body, "secret") {
			t.Errorf("%s: the reply shows a token: %s", tc.name, body)
		}
	}
	// Nothing was taken by the refused requests.
	if status, body := raw(t, c, "POST", wire.PathGetInfo, "read-secret", `{"resource":"ci/a"}`); status != 200 || !strings.Contains(body, `"type":102`) {
		t.Errorf("get-info after the refusals: %d %s, want LockDoesNotExist", status, body)
	}
	for _, path := range []string{wire.PathLivez, wire.PathReadyz} {
		if status, _ := raw(t, c, "GET", path, "", ""); status != 200 {
			t.Errorf("%s without a token: %d, want 200", path, status)
		}
	}

	// Allowed: the lock token in its prefix, the admin everywhere.
	ctx := ctxT(t)
	ci, err := client.New(client.Config{Endpoints: []string{c.Base}, Token: "ci-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer ci.Close()
	if _, err := ci.TryLock(ctx, "ci/build", client.WithOwner("ci")); err != nil {
		t.Fatalf("the ci token in its prefix: %v", err)
	}
	if _, err := ci.TryLock(ctx, "prod/db"); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("the ci token outside its prefix: %v, want ErrForbidden", err)
	}
	admin, err := client.New(client.Config{Endpoints: []string{c.Base}, Token: "admin-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.TryLock(ctx, "prod/db", client.WithOwner("dba")); err != nil {
		t.Fatalf("the admin token: %v", err)
	}
	// The ci token sees only its own prefix in lists.
	var seen []string
	for info, err := range ci.List(ctx, client.ListOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, info.Resource)
	}
	if fmt.Sprint(seen) != "[ci/build]" {
		t.Errorf("the ci token lists %v, want only [ci/build]", seen)
	}
	if err := admin.ForceUnlock(ctx, "prod/db", client.Persistent); err != nil {
		t.Errorf("force-unlock by the admin: %v", err)
	}
	if !strings.Contains(p.Output(), `action=force-unlock token=root`) {
		t.Errorf("the admin action is not logged with the token's name:\n%s", p.Output())
	}
	if strings.Contains(p.Output(), "secret") {
		t.Errorf("a token appears in the log:\n%s", p.Output())
	}

	// kahuna-cli with --token and with KAHUNA_TOKEN.
	out, code := runCLI(t, nil, "-c", c.Base, "--token", "ci-secret", "--get-lock", "ci/build")
	if code != 0 || !strings.Contains(out, "ci") {
		t.Errorf("kahuna-cli --token: exit %d: %s", code, out)
	}
	out, code = runCLI(t, []string{"KAHUNA_TOKEN=read-secret"}, "-c", c.Base, "--lock", "ci/x", "--expires", "1m")
	if code == 0 || !strings.Contains(out, "forbidden") {
		t.Errorf("kahuna-cli with a read token locking: exit %d: %s", code, out)
	}

	// SIGHUP: revoke the ci token; a broken file keeps the tokens in force.
	authFile(t, dir, `{"name":"root","sha256":"`+sha("admin-secret")+`","role":"admin"}`)
	p.Signal(syscall.SIGHUP)
	waitStatus(t, c, "ci-secret", 401)
	if err := os.WriteFile(file, []byte(`{"tokens":[{"name":"x"`), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if status, _ := raw(t, c, "GET", wire.PathClusterStatus, "admin-secret", ""); status != 200 {
		t.Errorf("after a broken reload the admin token answers %d, want 200 (old tokens kept)", status)
	}
	if !strings.Contains(p.Output(), "reload failed") {
		t.Errorf("the broken reload is not logged:\n%s", p.Output())
	}
	p.Stop()
}

// waitStatus waits until a status read with token answers want.
func waitStatus(t *testing.T, c *testutil.Client, token string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, _ := raw(t, c, "GET", wire.PathClusterStatus, token, "")
		if status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status with the token answers %d, want %d", status, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runCLI runs kahuna-cli with extra environment and returns its combined
// output and exit code.
func runCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	return runBinary(t, cliBin, env, args...)
}

// runBinary runs bin with extra environment and returns its combined
// output and exit code.
func runBinary(t *testing.T, bin string, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", bin, err)
	}
	return string(out), 0
}

// TestAuthFileErrors: a missing or malformed --auth-file stops the start
// with exit 2, naming the flag.
func TestAuthFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"tokens":[{"name":"a","token":"x","role":"superuser"}]}`), 0o600)
	for _, file := range []string{filepath.Join(dir, "missing.json"), bad} {
		n := testutil.NewNode(t, kahunadBin)
		p := n.Start(t, "--auth-file", file)
		expectExit(t, p, 2, "--auth-file")
	}
}
