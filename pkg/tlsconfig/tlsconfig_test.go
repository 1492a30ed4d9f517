package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testcerts"
	"github.com/kahuna-go/kahuna/pkg/tlsconfig"
)

func newReloader(t *testing.T, p testcerts.Paths) *tlsconfig.Reloader {
	t.Helper()
	r, err := tlsconfig.New(tlsconfig.Files{Cert: p.Cert, Key: p.Key, CA: p.CA})
	if err != nil {
		t.Fatalf("New(%+v): %v", p, err)
	}
	return r
}

// exchange runs a TLS handshake over a loopback TCP connection and sends one
// byte each way, so that a server-side refusal (which TLS 1.3 reports after
// the client's handshake has returned) reaches the client too. It returns
// the client's view of the connection and each side's first error.
func exchange(t *testing.T, srvCfg, cliCfg *tls.Config) (tls.ConnectionState, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	srvErr := make(chan error, 1)
	go func() {
		a, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		_ = a.SetDeadline(deadline)
		s := tls.Server(a, srvCfg)
		defer s.Close()
		err = s.Handshake()
		if err == nil {
			var buf [1]byte
			if _, err = io.ReadFull(s, buf[:]); err == nil {
				_, err = s.Write(buf[:])
			}
		}
		srvErr <- err
	}()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = b.SetDeadline(deadline)
	c := tls.Client(b, cliCfg)
	defer c.Close()
	cliErr := c.Handshake()
	if cliErr == nil {
		if _, cliErr = c.Write([]byte{42}); cliErr == nil {
			var buf [1]byte
			_, cliErr = io.ReadFull(c, buf[:])
		}
	}
	if cliErr != nil {
		b.Close() // unblock the server if it waits for us
	}
	return c.ConnectionState(), <-srvErr, cliErr
}

func mustSucceed(t *testing.T, what string, srvErr, cliErr error) {
	t.Helper()
	if srvErr != nil || cliErr != nil {
		t.Fatalf("%s: want success, got server error %v, client error %v", what, srvErr, cliErr)
	}
}

func mustFail(t *testing.T, what string, srvErr, cliErr error, wantInSrvErr string) {
	t.Helper()
	if srvErr == nil || cliErr == nil {
		t.Fatalf("%s: want both sides to fail, got server error %v, client error %v", what, srvErr, cliErr)
	}
	if wantInSrvErr != "" && !strings.Contains(srvErr.Error()+" | "+cliErr.Error(), wantInSrvErr) {
		t.Fatalf("%s: errors %q / %q do not mention %q", what, srvErr, cliErr, wantInSrvErr)
	}
}

func TestMutualTLS(t *testing.T) {
	s := testcerts.NewSet(t)
	n1 := newReloader(t, s.Leaf("n1", testcerts.Options{}))
	n2 := newReloader(t, s.Leaf("n2", testcerts.Options{}))

	cs, srvErr, cliErr := exchange(t, n1.PeerServerConfig(), n2.PeerClientConfig())
	mustSucceed(t, "peer", srvErr, cliErr)
	if got := cs.PeerCertificates[0].Subject.CommonName; got != "n1" {
		t.Fatalf("peer server certificate %q, want n1", got)
	}
	if cs.Version < tls.VersionTLS12 {
		t.Fatalf("version %x", cs.Version)
	}

	// HTTPS with client certificates, verifying the server's name.
	cli := newReloader(t, s.Leaf("cli", testcerts.Options{Usage: testcerts.Client}))
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		_, srvErr, cliErr = exchange(t, n1.ServerConfig(true), cli.ClientConfig(name))
		mustSucceed(t, "https to "+name, srvErr, cliErr)
	}
}

func TestMinVersionTLS12(t *testing.T) {
	s := testcerts.NewSet(t)
	n1 := newReloader(t, s.Leaf("n1", testcerts.Options{}))
	for name, srv := range map[string]*tls.Config{"ServerConfig": n1.ServerConfig(false), "PeerServerConfig": n1.PeerServerConfig()} {
		old := n1.PeerClientConfig()
		old.MaxVersion = tls.VersionTLS11
		old.MinVersion = tls.VersionTLS10
		_, srvErr, cliErr := exchange(t, srv, old)
		mustFail(t, name+" with TLS 1.1", srvErr, cliErr, "version")
	}
}

func TestClientWithoutCertRefused(t *testing.T) {
	s := testcerts.NewSet(t)
	srv := newReloader(t, s.Leaf("srv", testcerts.Options{}))
	anon, err := tlsconfig.New(tlsconfig.Files{CA: s.CAFile}) // no certificate
	if err != nil {
		t.Fatal(err)
	}
	_, srvErr, cliErr := exchange(t, srv.ServerConfig(true), anon.ClientConfig("localhost"))
	mustFail(t, "https without client cert", srvErr, cliErr, "certificate")
	_, srvErr, cliErr = exchange(t, srv.PeerServerConfig(), anon.PeerClientConfig())
	mustFail(t, "peer without cert", srvErr, cliErr, "certificate")
	// Without requireClientCert the same client is welcome.
	_, srvErr, cliErr = exchange(t, srv.ServerConfig(false), anon.ClientConfig("localhost"))
	mustSucceed(t, "https, no client cert required", srvErr, cliErr)
}

func TestClientCertFromOtherCARefused(t *testing.T) {
	s := testcerts.NewSet(t)
	srv := newReloader(t, s.Leaf("srv", testcerts.Options{}))
	evil := newReloader(t, s.Leaf("evil", testcerts.Options{OtherCA: true}))
	_, srvErr, cliErr := exchange(t, srv.ServerConfig(true), evil.ClientConfig("localhost"))
	mustFail(t, "https client from other CA", srvErr, cliErr, "unknown authority")
	_, srvErr, cliErr = exchange(t, srv.PeerServerConfig(), evil.PeerClientConfig())
	mustFail(t, "peer client from other CA", srvErr, cliErr, "unknown authority")
	// And the other way round: a node dialing a server from another CA.
	_, srvErr, cliErr = exchange(t, evil.PeerServerConfig(), srv.PeerClientConfig())
	mustFail(t, "peer server from other CA", srvErr, cliErr, "unknown authority")
}

func TestPeerRefusesClientOnlyCert(t *testing.T) {
	s := testcerts.NewSet(t)
	node := newReloader(t, s.Leaf("node", testcerts.Options{}))
	cli := newReloader(t, s.Leaf("cli", testcerts.Options{Usage: testcerts.Client}))
	_, srvErr, cliErr := exchange(t, node.PeerServerConfig(), cli.PeerClientConfig())
	mustFail(t, "client-only cert on the internal port", srvErr, cliErr, "node certificate")
	// A server-only certificate cannot dial as a node either.
	web := newReloader(t, s.Leaf("web", testcerts.Options{Usage: testcerts.Server}))
	_, srvErr, cliErr = exchange(t, web.PeerServerConfig(), node.PeerClientConfig())
	mustFail(t, "server-only cert on the internal port", srvErr, cliErr, "node certificate")
}

func TestServerCertForWrongHostRefused(t *testing.T) {
	s := testcerts.NewSet(t)
	srv := newReloader(t, s.Leaf("srv", testcerts.Options{WrongHost: true}))
	cli := newReloader(t, s.Leaf("cli", testcerts.Options{Usage: testcerts.Client}))
	for _, name := range []string{"localhost", "127.0.0.1"} {
		_, srvErr, cliErr := exchange(t, srv.ServerConfig(false), cli.ClientConfig(name))
		var he x509.HostnameError
		if !errors.As(cliErr, &he) {
			t.Fatalf("ClientConfig(%q) against a certificate for %s: client error %v (server %v)",
				name, testcerts.WrongHostName, cliErr, srvErr)
		}
	}
	// The name it does carry is accepted.
	_, srvErr, cliErr := exchange(t, srv.ServerConfig(false), cli.ClientConfig(testcerts.WrongHostName))
	mustSucceed(t, "right name", srvErr, cliErr)
}

func TestExpiredServerCertRefused(t *testing.T) {
	s := testcerts.NewSet(t)
	p := s.Leaf("old", testcerts.Options{Expired: true})
	// The loader refuses it, so serve it with a plain config.
	if _, err := tlsconfig.LoadKeyPair(p.Cert, p.Key); !errors.Is(err, tlsconfig.ErrExpired) {
		t.Fatalf("LoadKeyPair of an expired certificate: %v, want ErrExpired", err)
	}
	kp, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := &tls.Config{Certificates: []tls.Certificate{kp}}
	cli := newReloader(t, s.Leaf("cli", testcerts.Options{}))
	for name, cfg := range map[string]*tls.Config{"ClientConfig": cli.ClientConfig("localhost"), "PeerClientConfig": cli.PeerClientConfig()} {
		_, _, cliErr := exchange(t, srv, cfg)
		if cliErr == nil || !strings.Contains(cliErr.Error(), "expired") {
			t.Fatalf("%s against an expired server certificate: %v, want an expiry error", name, cliErr)
		}
	}
	// A not-yet-valid one is refused as well.
	q := s.Leaf("future", testcerts.Options{NotYetValid: true})
	kp, err = tls.LoadX509KeyPair(q.Cert, q.Key)
	if err != nil {
		t.Fatal(err)
	}
	_, _, cliErr := exchange(t, &tls.Config{Certificates: []tls.Certificate{kp}}, cli.PeerClientConfig())
	if cliErr == nil || !strings.Contains(cliErr.Error(), "not yet valid") {
		t.Fatalf("against a not-yet-valid server certificate: %v", cliErr)
	}
}

// echoServer accepts TLS connections on loopback and echoes bytes back.
func echoServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// dialEcho dials addr, round-trips one message and returns the connection
// for more.
func dialEcho(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	roundTrip(t, c, "hello")
	return c
}

func roundTrip(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo %q, want %q", buf, msg)
	}
}

func TestSessionResumption(t *testing.T) {
	s := testcerts.NewSet(t)
	srv := newReloader(t, s.Leaf("srv", testcerts.Options{}))
	cli := newReloader(t, s.Leaf("cli", testcerts.Options{}))
	for name, pair := range map[string][2]*tls.Config{
		"peer":  {srv.PeerServerConfig(), cli.PeerClientConfig()},
		"https": {srv.ServerConfig(true), cli.ClientConfig("127.0.0.1")},
	} {
		addr := echoServer(t, pair[0])
		first := dialEcho(t, addr, pair[1])
		if first.ConnectionState().DidResume {
			t.Fatalf("%s: first connection resumed", name)
		}
		second := dialEcho(t, addr, pair[1])
		if !second.ConnectionState().DidResume {
			t.Fatalf("%s: second connection did not resume a session", name)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := testcerts.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, data)
}

func TestReloadSwapsCertificate(t *testing.T) {
	s := testcerts.NewSet(t)
	p := s.Leaf("srv", testcerts.Options{})
	srv := newReloader(t, p)
	cli := newReloader(t, s.Leaf("cli", testcerts.Options{}))
	addr := echoServer(t, srv.PeerServerConfig())
	cfg := cli.PeerClientConfig()

	old := dialEcho(t, addr, cfg)
	oldSerial := old.ConnectionState().PeerCertificates[0].SerialNumber
	if srv.Leaf().SerialNumber.Cmp(oldSerial) != 0 {
		t.Fatal("Leaf() is not the served certificate")
	}

	// Renew: new files under the same names, then reload.
	renewed := s.Leaf("renewed", testcerts.Options{})
	copyFile(t, renewed.Cert, p.Cert)
	copyFile(t, renewed.Key, p.Key)
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	fresh := dialEcho(t, addr, cfg) // same client config: it has a session to resume
	got := fresh.ConnectionState()
	if got.PeerCertificates[0].SerialNumber.Cmp(oldSerial) == 0 {
		t.Fatalf("a new connection after Reload got the old certificate (resumed: %v)", got.DidResume)
	}
	if got.PeerCertificates[0].SerialNumber.Cmp(srv.Leaf().SerialNumber) != 0 {
		t.Fatal("a new connection did not get the reloaded certificate")
	}
	// The connection made before the reload keeps working.
	roundTrip(t, old, "still here")

	// A reload that changes nothing keeps sessions resumable.
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if again := dialEcho(t, addr, cfg); !again.ConnectionState().DidResume {
		t.Fatal("an unchanged Reload invalidated sessions")
	}
}

func TestFailedReloadKeepsOld(t *testing.T) {
	s := testcerts.NewSet(t)
	p := s.Leaf("srv", testcerts.Options{})
	srv := newReloader(t, p)
	cli := newReloader(t, s.Leaf("cli", testcerts.Options{}))
	addr := echoServer(t, srv.PeerServerConfig())
	before := dialEcho(t, addr, cli.PeerClientConfig()).ConnectionState().PeerCertificates[0].SerialNumber

	for _, tc := range []struct {
		file string
		data string
		want error
	}{
		{p.Cert, "garbage\n", tlsconfig.ErrNotPEM},
		{p.Key, "garbage\n", tlsconfig.ErrNotPEM},
		{p.CA, "garbage\n", tlsconfig.ErrNoCertificates},
	} {
		good, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, tc.file, []byte(tc.data))
		err = srv.Reload()
		if !errors.Is(err, tc.want) {
			t.Fatalf("Reload with garbage in %s: %v, want %v", tc.file, err, tc.want)
		}
		if !strings.Contains(err.Error(), tc.file) {
			t.Fatalf("Reload error %q does not name %s", err, tc.file)
		}
		// New connections still get the old certificate, verified with the
		// old CA pool.
		c, derr := tls.Dial("tcp", addr, cli.PeerClientConfig())
		if derr != nil {
			t.Fatalf("dial after a failed reload: %v", derr)
		}
		if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(before) != 0 {
			t.Fatal("a failed reload changed the served certificate")
		}
		roundTrip(t, c, "x")
		c.Close()
		writeFile(t, tc.file, good)
	}
	// Once the files are good again, Reload succeeds.
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload with good files: %v", err)
	}
}

func TestReloadClientCAPool(t *testing.T) {
	s := testcerts.NewSet(t)
	p := s.Leaf("srv", testcerts.Options{})
	srv := newReloader(t, p)
	cli := newReloader(t, s.Leaf("cli", testcerts.Options{}))
	_, srvErr, cliErr := exchange(t, srv.ServerConfig(true), cli.ClientConfig("localhost"))
	mustSucceed(t, "before", srvErr, cliErr)

	// The server's CA file now names another CA only.
	other := testcerts.NewSet(t)
	copyFile(t, other.CAFile, p.CA)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{"https": srv.ServerConfig(true), "peer": srv.PeerServerConfig()} {
		_, srvErr, cliErr = exchange(t, cfg, cli.PeerClientConfig())
		mustFail(t, name+" client of the dropped CA", srvErr, cliErr, "unknown authority")
	}
}

func TestClientConfigWithoutServerName(t *testing.T) {
	s := testcerts.NewSet(t)
	srv := newReloader(t, s.Leaf("srv", testcerts.Options{}))
	cli, err := tlsconfig.New(tlsconfig.Files{CA: s.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	addr := echoServer(t, srv.ServerConfig(false))
	dialEcho(t, addr, cli.ClientConfig("")) // tls.Dial fills in 127.0.0.1
	_, port, _ := net.SplitHostPort(addr)
	dialEcho(t, net.JoinHostPort("localhost", port), cli.ClientConfig(""))

	wrong := newReloader(t, s.Leaf("wrong", testcerts.Options{WrongHost: true}))
	addr = echoServer(t, wrong.ServerConfig(false))
	if c, err := tls.Dial("tcp", addr, cli.ClientConfig("")); err == nil {
		c.Close()
		t.Fatal("ClientConfig(\"\") accepted a certificate for another host")
	}
}

// TestHTTPServer checks the configs survive http.Server's cloning: HTTPS with
// client certificates, HTTP/2, and session resumption across connections.
func TestHTTPServer(t *testing.T) {
	s := testcerts.NewSet(t)
	srv := newReloader(t, s.Leaf("srv", testcerts.Options{}))
	cli := newReloader(t, s.Leaf("cli", testcerts.Options{Usage: testcerts.Client}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, r.TLS.PeerCertificates[0].Subject.CommonName)
		}),
		TLSConfig: srv.ServerConfig(true),
	}
	go func() { _ = hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { hs.Close() })

	tr := &http.Transport{TLSClientConfig: cli.ClientConfig(""), ForceAttemptHTTP2: true, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "https://" + ln.Addr().String() + "/"
	var resumed bool
	for i := range 2 {
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "cli" || resp.ProtoMajor != 2 {
			t.Fatalf("GET %d: %s %q, want HTTP/2 and the client's name", i, resp.Proto, body)
		}
		resumed = resp.TLS.DidResume
	}
	if !resumed {
		t.Fatal("the second HTTPS connection did not resume")
	}

	// Without a client certificate the server refuses.
	anon, err := tlsconfig.New(tlsconfig.Files{CA: s.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	tr2 := &http.Transport{TLSClientConfig: anon.ClientConfig("")}
	defer tr2.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: tr2, Timeout: 10 * time.Second}).Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("HTTPS without a client certificate was served")
	}
}

func TestLoadErrors(t *testing.T) {
	s := testcerts.NewSet(t)
	good := s.Leaf("good", testcerts.Options{})
	other := s.Leaf("other", testcerts.Options{})
	expired := s.Leaf("expired", testcerts.Options{Expired: true})
	dir := t.TempDir()
	file := func(name, data string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, []byte(data))
		return p
	}
	missing := filepath.Join(dir, "missing.pem")
	empty := file("empty.pem", "\n")
	garbage := file("garbage.pem", "this is not PEM\n")
	keyData, _ := os.ReadFile(good.Key)
	encrypted := file("encrypted.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
	onlyKey := file("only-key.pem", string(keyData))

	for _, tc := range []struct {
		name       string
		cert, key  string
		ca         string
		want       error
		wantInText []string
	}{
		{"missing cert", missing, good.Key, "", os.ErrNotExist, []string{missing, "no such file"}},
		{"missing key", good.Cert, missing, "", os.ErrNotExist, []string{"key file " + missing}},
		{"empty cert", empty, good.Key, "", tlsconfig.ErrNotPEM, []string{empty, "empty"}},
		{"garbage cert", garbage, good.Key, "", tlsconfig.ErrNotPEM, []string{"certificate file " + garbage}},
		{"garbage key", good.Cert, garbage, "", tlsconfig.ErrNotPEM, []string{"key file " + garbage}},
		{"swapped", good.Key, good.Cert, "", tlsconfig.ErrNoCertificates, []string{good.Key, "swapped"}},
		{"cert as key", good.Cert, good.Cert, "", tlsconfig.ErrNotPEM, []string{"swapped"}},
		{"key mismatch", good.Cert, other.Key, "", tlsconfig.ErrKeyMismatch, []string{other.Key, good.Cert}},
		{"encrypted key", good.Cert, encrypted, "", tlsconfig.ErrEncryptedKey, []string{encrypted}},
		{"expired", expired.Cert, expired.Key, "", tlsconfig.ErrExpired, []string{expired.Cert, "valid until"}},
		{"CA without certificates", good.Cert, good.Key, onlyKey, tlsconfig.ErrNoCertificates, []string{"CA file " + onlyKey}},
		{"CA garbage", good.Cert, good.Key, garbage, tlsconfig.ErrNoCertificates, []string{garbage}},
		{"CA missing", good.Cert, good.Key, missing, os.ErrNotExist, []string{"CA file " + missing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsconfig.New(tlsconfig.Files{Cert: tc.cert, Key: tc.key, CA: tc.ca})
			if !errors.Is(err, tc.want) {
				t.Fatalf("New: %v, want %v", err, tc.want)
			}
			var fe *tlsconfig.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("New: %T is not a *FileError", err)
			}
			for _, w := range tc.wantInText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	if _, err := tlsconfig.New(tlsconfig.Files{Cert: good.Cert}); !errors.Is(err, tlsconfig.ErrIncomplete) {
		t.Fatalf("cert without key: %v", err)
	}
	if _, err := tlsconfig.New(tlsconfig.Files{Key: good.Key}); !errors.Is(err, tlsconfig.ErrIncomplete) {
		t.Fatalf("key without cert: %v", err)
	}
	if _, err := tlsconfig.LoadCAPool(s.CAFile); err != nil {
		t.Fatalf("LoadCAPool: %v", err)
	}
	if _, err := tlsconfig.LoadKeyPair(good.Cert, good.Key); err != nil {
		t.Fatalf("LoadKeyPair: %v", err)
	}
}

func TestNoCAConfigured(t *testing.T) {
	s := testcerts.NewSet(t)
	p := s.Leaf("n", testcerts.Options{})
	noCA, err := tlsconfig.New(tlsconfig.Files{Cert: p.Cert, Key: p.Key})
	if err != nil {
		t.Fatal(err)
	}
	peer := newReloader(t, p)
	// Without a CA file nothing is trusted for client or peer verification
	// (the system roots are never used there).
	_, srvErr, cliErr := exchange(t, noCA.PeerServerConfig(), peer.PeerClientConfig())
	mustFail(t, "peer server without CA", srvErr, cliErr, "no CA file")
	_, srvErr, cliErr = exchange(t, peer.PeerServerConfig(), noCA.PeerClientConfig())
	mustFail(t, "peer client without CA", srvErr, cliErr, "no CA file")
	_, srvErr, cliErr = exchange(t, noCA.ServerConfig(true), peer.ClientConfig("localhost"))
	mustFail(t, "https client certs without CA", srvErr, cliErr, "no CA file")
}
