package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testcerts"
	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/client"
	"github.com/kahuna-go/kahuna/pkg/tlsconfig"
)

// tlsClient is a Go client of node n over HTTPS with the given files.
func tlsClient(t *testing.T, n *testutil.Node, ca, cert, key string) *client.Client {
	t.Helper()
	cfg, err := tlsconfig.Client(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Endpoints: []string{"https://" + n.HTTPAddr}, TLS: cfg, NoLeaderRouting: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitHTTPS waits until the node answers a status over HTTPS with c.
func waitHTTPS(t *testing.T, p *testutil.Process, c *client.Client) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.ClusterStatus(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer over HTTPS: %v\n%s", err, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHTTPSAPI serves the API over TLS only and attacks it: plain HTTP,
// another CA, a missing or foreign client certificate; the Go client,
// kahuna-cli and kahunad health work with the right files; SIGHUP serves
// a renewed certificate to new connections; an expired certificate stops
// the start.
func TestHTTPSAPI(t *testing.T) {
	t.Parallel()
	certs := testcerts.NewSet(t)
	server := certs.Leaf("server", testcerts.Options{Usage: testcerts.Server})
	other := testcerts.NewSet(t)
	n := testutil.NewNode(t, kahunadBin)
	p := n.Start(t, "--tls-cert-file", server.Cert, "--tls-key-file", server.Key)
	good := tlsClient(t, n, certs.CAFile, "", "")
	waitHTTPS(t, p, good)
	ctx := ctxT(t)
	if _, err := good.TryLock(ctx, "over-tls"); err != nil {
		t.Fatalf("try-lock over HTTPS: %v", err)
	}

	// Plain HTTP to the HTTPS port gets no lock service.
	resp, err := http.Get("http://" + n.HTTPAddr + "/v1/cluster/status")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the HTTPS port: %d, want 400 (Go's answer to HTTP on a TLS port) or an error", resp.StatusCode)
		}
	}
	// A client that trusts another CA refuses the server.
	ctxShort, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := tlsClient(t, n, other.CAFile, "", "").ClusterStatus(ctxShort); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client trusting another CA: %v, want a certificate error", err)
	}

	// kahuna-cli and kahunad health, with the CA file, and health from the
	// environment the node itself has.
	if out, code := runCLI(t, nil, "-c", "https://"+n.HTTPAddr, "--cacert", certs.CAFile, "--get-lock", "over-tls"); code != 0 {
		t.Errorf("kahuna-cli over HTTPS: exit %d: %s", code, out)
	}
	if out, code := runCLI(t, nil, "-c", "https://"+n.HTTPAddr, "--get-lock", "over-tls"); code != 3 {
		t.Errorf("kahuna-cli without the CA: exit %d, want 3: %s", code, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"--cacert", []string{"--cacert", certs.CAFile}, nil},
		{"the node's environment", nil, []string{"KAHUNA_TLS_CERT_FILE=" + server.Cert}},
	} {
		if out, code := runKahunad(t, tc.env, append([]string{"health", "--http-addr", n.HTTPAddr}, tc.args...)...); code != 0 {
			t.Errorf("kahunad health with %s: exit %d: %s", tc.name, code, out)
		}
	}

	// SIGHUP: a renewed certificate is what new connections see.
	before := servedSerial(t, n.HTTPAddr, certs.CAFile)
	renewed := certs.Leaf("server", testcerts.Options{Usage: testcerts.Server})
	if renewed != server {
		t.Fatalf("the renewed certificate went to other files: %+v", renewed)
	}
	p.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, n.HTTPAddr, certs.CAFile) == before {
		if time.Now().After(deadline) {
			t.Fatalf("still serving the old certificate after SIGHUP:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A broken file on reload keeps the renewed certificate in use.
	if err := os.WriteFile(server.Cert, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if _, err := good.GetInfo(ctxT(t), "over-tls", client.Persistent); err != nil {
		t.Errorf("after a broken reload: %v", err)
	}
	if !strings.Contains(p.Output(), "API certificate not reloaded") {
		t.Errorf("the broken reload is not logged:\n%s", p.Output())
	}
	p.Stop()
}

// TestHTTPSClientCertificates requires client certificates: none, one from
// another CA and an expired one are refused; the right one works.
func TestHTTPSClientCertificates(t *testing.T) {
	t.Parallel()
	certs := testcerts.NewSet(t)
	server := certs.Leaf("server", testcerts.Options{Usage: testcerts.Server})
	cli := certs.Leaf("cli", testcerts.Options{Usage: testcerts.Client})
	foreign := certs.Leaf("foreign", testcerts.Options{Usage: testcerts.Client, OtherCA: true})
	n := testutil.NewNode(t, kahunadBin)
	p := n.Start(t, "--tls-cert-file", server.Cert, "--tls-key-file", server.Key, "--tls-client-ca-file", certs.CAFile)
	good := tlsClient(t, n, certs.CAFile, cli.Cert, cli.Key)
	waitHTTPS(t, p, good)
	for _, tc := range []struct {
		name      string
		cert, key string
	}{
		{"no client certificate", "", ""},
		{"a client certificate from another CA", foreign.Cert, foreign.Key},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := tlsClient(t, n, certs.CAFile, tc.cert, tc.key).ClusterStatus(ctx)
		cancel()
		if !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("%s: %v, want the handshake refused", tc.name, err)
		}
	}
	if _, err := good.TryLock(ctxT(t), "mutual"); err != nil {
		t.Errorf("with the right client certificate: %v", err)
	}
	p.Stop()

	expired := certs.Leaf("expired", testcerts.Options{Usage: testcerts.Server, Expired: true})
	p = n.Start(t, "--tls-cert-file", expired.Cert, "--tls-key-file", expired.Key)
	expectExit(t, p, 2, "--tls", "expired")
	p = n.Start(t, "--tls-cert-file", server.Cert)
	expectExit(t, p, 2, "--tls-key-file")
}

// servedSerial dials addr and returns the serial of the certificate it
// serves.
func servedSerial(t *testing.T, addr, ca string) string {
	t.Helper()
	cfg, err := tlsconfig.Client(ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// runKahunad runs the kahunad binary with extra environment.
func runKahunad(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	return runBinary(t, kahunadBin, env, args...)
}
