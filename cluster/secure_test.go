package cluster_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
)

// httpsClient is a client of https://addr trusting the CA in caFile, sending
// token when it is not empty.
func httpsClient(t *testing.T, addr, caFile, token string) *testutil.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	cl := testutil.NewTLSClient("https://"+addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, token)
	t.Cleanup(cl.Close)
	return cl
}

// TestLocalClusterSecure runs `KAHUNA_CLUSTER_SECURE=1 local.sh start`: the
// script makes a CA, node certificates, a gossip key and an admin token,
// prints the token once, and the nodes serve HTTPS only, with tokens; status,
// add (which signs the new node's certificate), remove and stop work on it.
func TestLocalClusterSecure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of three processes")
	}
	c := newLocalCluster(t)
	// kahuna-cli, for remove, is built meanwhile (without -race: it is
	// not what this test checks).
	cli := filepath.Join(t.TempDir(), "kahuna-cli")
	var cliErr error
	cliBuilt := make(chan struct{})
	go func() {
		defer close(cliBuilt)
		if out, err := exec.Command("go", "build", "-o", cli, "github.com/kahuna-go/kahuna/cmd/kahuna-cli").CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("go build kahuna-cli: %w\n%s", err, out)
		}
	}()
	// Before the temporary folder goes, even when the test fails early.
	t.Cleanup(func() { <-cliBuilt })
	c.env = append(c.env, "KAHUNA_CLUSTER_SECURE=1", "KAHUNA_CLI="+cli)

	began := time.Now()
	out, err := c.run("start")
	if err != nil {
		t.Fatalf("KAHUNA_CLUSTER_SECURE=1 local.sh start: %v\n%s", err, out)
	}
	c.readPids()
	t.Logf("secure local.sh start took %v", time.Since(began).Round(time.Millisecond))

	sdir := filepath.Join(c.dir, "secure")
	ca := filepath.Join(sdir, "ca.crt")
	b, err := os.ReadFile(filepath.Join(sdir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < 32 {
		t.Fatalf("admin.token holds %q, want a long random token", token)
	}
	if n := strings.Count(out, token); n != 1 {
		t.Errorf("start printed the new admin token %d times, want once:\n%s", n, out)
	}
	for path, want := range map[string]os.FileMode{sdir: 0o700, filepath.Join(sdir, "admin.token"): 0o600,
		filepath.Join(sdir, "auth.json"): 0o600, filepath.Join(sdir, "gossip.key"): 0o600, filepath.Join(sdir, "ca.key"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if auth, err := os.ReadFile(filepath.Join(sdir, "auth.json")); err != nil || strings.Contains(string(auth), token) {
		t.Errorf("auth.json holds the token itself (want only its digest), or cannot be read: %v\n%s", err, auth)
	}
	for i, h := range c.http {
		if !strings.Contains(out, "https://"+h) {
			t.Errorf("start does not print the endpoint of %s (https://%s):\n%s", nodeIDs[i], h, out)
		}
	}

	// HTTPS with the token: a lock through n1, Busy through n3.
	n1, n3 := httpsClient(t, c.http[0], ca, token), httpsClient(t, c.http[2], ca, token)
	const resource = "local-sh/secure"
	var locked testutil.Reply
	if _, err := eventually(5*time.Second, func() error {
		locked, err = n1.TryLock(ctx5(t), testutil.LockRequest{Resource: resource, Owner: "alice", ExpiresMs: 600_000, Durability: testutil.Persistent})
		if err == nil && locked.Type != testutil.Locked {
			err = fmt.Errorf("try-lock through n1 over HTTPS with the token: %v, want Locked", locked)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if busy, err := n3.TryLock(ctx5(t), testutil.LockRequest{Resource: resource, Owner: "bob", ExpiresMs: 600_000, Durability: testutil.Persistent}); err != nil || busy.Type != testutil.Busy || busy.Owner != "alice" {
		t.Fatalf("try-lock by bob through n3: %v %v, want Busy owner alice", busy, err)
	}
	// Without the token: 401. Plain HTTP: no lock service.
	anon := httpsClient(t, c.http[1], ca, "")
	if rep, err := anon.TryLock(ctx5(t), testutil.LockRequest{Resource: resource, Owner: "mallory", ExpiresMs: 600_000, Durability: testutil.Persistent}); err != nil || rep.HTTPStatus != http.StatusUnauthorized {
		t.Errorf("try-lock without a token through n2: HTTP %d %v %v, want 401", rep.HTTPStatus, rep, err)
	}
	if status, body, err := c.clients[0].Get(ctx5(t), "/readyz"); err == nil && status == http.StatusOK {
		t.Errorf("plain HTTP /readyz on n1: HTTP %d %s, want no service", status, body)
	}

	if out, err := c.run("status"); err != nil || strings.Count(out, " ready") != 3 || strings.Count(out, "alive    voter") != 3 {
		t.Errorf("local.sh status of the secure cluster: %v, want three ready nodes and three voters:\n%s", err, out)
	}
	// A second start finds them running and keeps the token to itself.
	if out, err := c.run("start"); err != nil || strings.Count(out, "is already running") != 3 || strings.Contains(out, token) {
		t.Errorf("second local.sh start: %v, want three nodes already running and no token:\n%s", err, out)
	}

	// add signs n4's certificate and n4 joins over mutual TLS; remove takes
	// it out through kahuna-cli with the token, and drops its key.
	added := time.Now()
	if out, err := c.run("add"); err != nil || !strings.Contains(out, "n4 joined: https://") {
		t.Fatalf("local.sh add on the secure cluster: %v\n%s", err, out)
	}
	t.Logf("local.sh add took %v", time.Since(added).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(sdir, "n4.crt")); err != nil {
		t.Errorf("add made no certificate for n4: %v", err)
	}
	<-cliBuilt
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	removed := time.Now()
	if out, err := c.run("remove", "n4"); err != nil || !strings.Contains(out, "removed n4") {
		t.Fatalf("local.sh remove n4 on the secure cluster: %v\n%s", err, out)
	}
	t.Logf("local.sh remove took %v", time.Since(removed).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(sdir, "n4.key")); !os.IsNotExist(err) {
		t.Errorf("n4.key after remove n4: %v, want it gone", err)
	}
	if rep, err := n3.GetInfo(ctx5(t), testutil.LockRequest{Resource: resource, Durability: testutil.Persistent}); err != nil || rep.Type != testutil.Got || rep.Owner != "alice" {
		t.Errorf("get-info through n3 after add and remove: %v %v, want Got owner alice", rep, err)
	}

	if out, err := c.run("stop"); err != nil || strings.Contains(out, "SIGKILL") {
		t.Fatalf("local.sh stop: %v\n%s", err, out)
	}
	if left := c.leftovers(); len(left) > 0 {
		t.Fatalf("processes left after local.sh stop: %v", left)
	}
}
