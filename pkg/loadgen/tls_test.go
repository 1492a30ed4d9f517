package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testcerts"
	"github.com/kahuna-go/kahuna/pkg/tlsconfig"
)

// tlsServer is an HTTPS server in front of h that counts the TLS
// connections it accepted and the requests with and without the bearer
// token it expects (those without are answered 401).
type tlsServer struct {
	url                string
	pool               *x509.CertPool // trusts the server's certificate
	conns              atomic.Int32
	authorized, denied atomic.Int32
}

func startTLS(t *testing.T, h http.Handler, token string, cfg *tls.Config) *tlsServer {
	t.Helper()
	s := &tlsServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
			s.denied.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"type":99,"error":"unauthorized"}`))
			return
		}
		s.authorized.Add(1)
		h.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some tests
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.url = srv.URL
	s.pool = x509.NewCertPool()
	s.pool.AddCert(srv.Certificate())
	return s
}

func TestRunOverTLSWithToken(t *testing.T) {
	fake := newFakeLocks()
	srv := startTLS(t, fake, "s3cret", nil)
	cfg := testConfig(srv.url)
	cfg.TLS = &tls.Config{RootCAs: srv.pool, ClientSessionCache: tls.NewLRUClientSessionCache(0)}
	cfg.Token = "s3cret"
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	requests := fake.requests
	fake.mu.Unlock()
	if res.Errors != 0 || res.BadReplies != 0 || res.Requests == 0 || uint64(requests) != res.Requests {
		t.Fatalf("server answered %d lock requests, result %+v", requests, res)
	}
	if srv.denied.Load() != 0 {
		t.Fatalf("%d requests came without the token", srv.denied.Load())
	}
	if _, ok := processCPU(); ok && res.ClientCPU <= 0 {
		t.Fatalf("client CPU not measured: %s", res.ClientCPU)
	}
	// One handshake per worker, then every request on that connection.
	if res.Connections != uint64(cfg.Workers) || res.TLSHandshakes != uint64(cfg.Workers) {
		t.Fatalf("%d connections and %d handshakes for %d workers", res.Connections, res.TLSHandshakes, cfg.Workers)
	}
	// The workers' connections and the commit reader's: nothing redialed.
	if n := srv.conns.Load(); n > int32(cfg.Workers)+2 {
		t.Fatalf("server accepted %d connections for %d workers", n, cfg.Workers)
	}

	// A second run with the same config resumes the cached sessions.
	again, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Requests == 0 || again.Errors != 0 || again.TLSHandshakes != uint64(cfg.Workers) || again.TLSResumed != again.TLSHandshakes {
		t.Fatalf("second run: %d requests, %d errors, %d handshakes, %d resumed",
			again.Requests, again.Errors, again.TLSHandshakes, again.TLSResumed)
	}
	var out strings.Builder
	if err := WriteText(&out, again); err != nil {
		t.Fatal(err)
	}
	if want := "persistent tls: 8 connections, 8 handshakes, 8 of them resumed"; !strings.Contains(out.String(), want) {
		t.Fatalf("text report lacks %q:\n%s", want, out.String())
	}
}

func TestRunWithoutTokenIsRefused(t *testing.T) {
	srv := startTLS(t, newFakeLocks(), "s3cret", nil)
	cfg := testConfig(srv.url)
	cfg.TLS = &tls.Config{RootCAs: srv.pool}
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if srv.authorized.Load() != 0 || res.Requests == 0 || res.Outcomes["Errored"] != res.Requests {
		t.Fatalf("without a token: %d requests let through, outcomes %v", srv.authorized.Load(), res.Outcomes)
	}
}

func TestClientTLSReusesConnectionAndResumes(t *testing.T) {
	srv := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"type":3}`))
	}), "t0k", nil)
	addr, host, err := ParseEndpoint(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClientWith(addr, host, ClientOptions{
		Timeout: 2 * time.Second,
		TLS:     &tls.Config{RootCAs: srv.pool, ServerName: "127.0.0.1", ClientSessionCache: tls.NewLRUClientSessionCache(0)},
		Token:   "t0k",
	})
	defer c.Close()
	for i := range 5 {
		if resp, err := c.Post("/x", []byte(`{}`)); err != nil || resp.Status != 200 {
			t.Fatalf("request %d: %v %+v", i, err, resp)
		}
	}
	if total, resumed := c.Handshakes(); c.Dials() != 1 || total != 1 || resumed != 0 || srv.conns.Load() != 1 {
		t.Fatalf("5 requests: %d dials, %d handshakes (%d resumed), server saw %d connections", c.Dials(), total, resumed, srv.conns.Load())
	}
	c.Close()
	if _, err := c.Post("/x", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if total, resumed := c.Handshakes(); total != 2 || resumed != 1 {
		t.Fatalf("after a redial: %d handshakes, %d resumed; want 2 and 1", total, resumed)
	}
	if srv.authorized.Load() != 6 || srv.denied.Load() != 0 {
		t.Fatalf("token sent with %d of 6 requests", srv.authorized.Load())
	}
}

func TestTLSWrongCAFailsClearly(t *testing.T) {
	srv := startTLS(t, newFakeLocks(), "", nil)
	other, err := tlsconfig.LoadCAPool(testcerts.NewSet(t).CAFile)
	if err != nil {
		t.Fatal(err)
	}
	addr, host, _ := ParseEndpoint(srv.url)
	c := NewClientWith(addr, host, ClientOptions{Timeout: 2 * time.Second, TLS: &tls.Config{RootCAs: other, ServerName: "127.0.0.1"}})
	_, err = c.Post("/x", []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "not trusted") || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("want a clear certificate error, got %v", err)
	}

	cfg := testConfig(srv.url)
	cfg.TLS = &tls.Config{RootCAs: other}
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors == 0 || !strings.Contains(res.FirstError, "not trusted (wrong CA?)") {
		t.Fatalf("a wrong CA gave %d requests, %d errors, first error %q", res.Requests, res.Errors, res.FirstError)
	}
}

func TestTLSToPlainServerFailsClearly(t *testing.T) {
	plain := startFake(t, newFakeLocks())
	cfg := testConfig(strings.Replace(plain, "http://", "https://", 1))
	cfg.Duration = 50 * time.Millisecond
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || !strings.Contains(res.FirstError, "does not speak TLS") {
		t.Fatalf("https to a plain server: %d requests, first error %q", res.Requests, res.FirstError)
	}
}

func TestRunPresentsClientCertificate(t *testing.T) {
	set := testcerts.NewSet(t)
	server := set.Leaf("server", testcerts.Options{Usage: testcerts.Server})
	client := set.Leaf("client", testcerts.Options{Usage: testcerts.Client})
	pool, err := tlsconfig.LoadCAPool(set.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := tls.LoadX509KeyPair(server.Cert, server.Key)
	if err != nil {
		t.Fatal(err)
	}
	fake := newFakeLocks()
	srv := startTLS(t, fake, "", &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	cfg := testConfig(srv.url)
	cfg.Workers = 2
	if cfg.TLS, err = tlsconfig.Client(set.CAFile, "", ""); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors == 0 {
		t.Fatalf("without a client certificate: %d requests, %d errors", res.Requests, res.Errors)
	}
	if cfg.TLS, err = tlsconfig.Client(set.CAFile, client.Cert, client.Key); err != nil {
		t.Fatal(err)
	}
	res, err = Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.TLSHandshakes != 2 {
		t.Fatalf("with a client certificate: %d requests, %d errors, %d handshakes", res.Requests, res.Errors, res.TLSHandshakes)
	}
}

func TestEndpointTLSShelvesSessionsPerEndpoint(t *testing.T) {
	cache := tls.NewLRUClientSessionCache(0)
	eps := []endpoint{
		{addr: "127.0.0.1:1", hostname: "127.0.0.1", tls: true},
		{addr: "127.0.0.1:2", hostname: "127.0.0.1", tls: true},
		{addr: "127.0.0.1:3", hostname: "127.0.0.1"},
	}
	cfgs := endpointTLS(&tls.Config{ClientSessionCache: cache}, eps)
	if cfgs[2] != nil || cfgs[0].ServerName != "127.0.0.1" {
		t.Fatalf("configs %+v", cfgs)
	}
	state := &tls.ClientSessionState{}
	cfgs[0].ClientSessionCache.Put("127.0.0.1", state)
	if _, ok := cfgs[1].ClientSessionCache.Get("127.0.0.1"); ok {
		t.Fatal("a session of one endpoint was offered to another with the same name")
	}
	if got, ok := cfgs[0].ClientSessionCache.Get("127.0.0.1"); !ok || got != state {
		t.Fatal("the session was not kept for its own endpoint")
	}
}

func TestConfigRejectsBadToken(t *testing.T) {
	for _, tok := range []string{"a\r\nX-Evil: 1", " padded", "tab\there", "é"} {
		cfg := DefaultConfig()
		cfg.Token = tok
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "token") {
			t.Errorf("token %q: got %v", tok, err)
		}
	}
}

// cannedServer accepts connections on ln, TLS ones when cfg is set, and
// answers every read with a lock reply without parsing it, so that a
// benchmark measures the client and the transport, not a server.
func cannedServer(b *testing.B, cfg *tls.Config) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	reply := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n{\"type\":0,\"servedFrom\":\"n1\",\"fencingToken\":1234}")
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := conn.Read(buf); err != nil {
						return
					}
					if _, err := conn.Write(reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// benchTLS returns a server config with an ECDSA P-256 certificate, as
// cluster/make-certs.sh makes, and a client config that trusts it.
func benchTLS(b *testing.B) (server, client *tls.Config) {
	b.Helper()
	set := testcerts.NewSet(b)
	leaf := set.Leaf("n1", testcerts.Options{})
	cert, err := tls.LoadX509KeyPair(leaf.Cert, leaf.Key)
	if err != nil {
		b.Fatal(err)
	}
	client, err = tlsconfig.Client(set.CAFile, "", "")
	if err != nil {
		b.Fatal(err)
	}
	client.ServerName = "127.0.0.1"
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, client
}

// reportCPU adds the process's CPU time per operation (client and server,
// both in this process) to a benchmark's report.
func reportCPU(b *testing.B, start time.Duration) {
	if end, ok := processCPU(); ok {
		b.ReportMetric(float64((end-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

// BenchmarkRequestCost is one lock request on a kept-alive connection,
// plain, over TLS, and over TLS with a bearer token: what each request
// costs both ends once the connection is up.
func BenchmarkRequestCost(b *testing.B) {
	serverTLS, clientTLS := benchTLS(b)
	body := []byte(`{"resource":"bench-1","owner":"o","expiresMs":10000,"durability":1}`)
	for _, bc := range []struct {
		name string
		opts ClientOptions
	}{
		{"plain", ClientOptions{}},
		{"tls", ClientOptions{TLS: clientTLS}},
		{"tls+token", ClientOptions{TLS: clientTLS, Token: "dGhpcyBpcyBhIDMyLWJ5dGUgYmVhcmVyIHRva2VuIQ"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var cfg *tls.Config
			if bc.opts.TLS != nil {
				cfg = serverTLS
			}
			addr := cannedServer(b, cfg)
			c := NewClientWith(addr, addr, bc.opts)
			defer c.Close()
			if _, err := c.Post("/v1/locks/try-lock", body); err != nil { // dial outside the loop
				b.Fatal(err)
			}
			b.ReportAllocs()
			start, _ := processCPU()
			for b.Loop() {
				if _, err := c.Post("/v1/locks/try-lock", body); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkConnectionCost is a new connection and one request on it: TCP
// alone, TLS with a full handshake, and TLS resuming a cached session.
func BenchmarkConnectionCost(b *testing.B) {
	serverTLS, clientTLS := benchTLS(b)
	full := clientTLS.Clone()
	full.ClientSessionCache = nil
	body := []byte(`{}`)
	for _, bc := range []struct {
		name   string
		client *tls.Config
	}{
		{"tcp", nil},
		{"tls-full-handshake", full},
		{"tls-resumed", clientTLS},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var cfg *tls.Config
			if bc.client != nil {
				cfg = serverTLS
			}
			addr := cannedServer(b, cfg)
			c := NewClientWith(addr, addr, ClientOptions{TLS: bc.client})
			defer c.Close()
			if _, err := c.Post("/x", body); err != nil { // fills the session cache
				b.Fatal(err)
			}
			start, _ := processCPU()
			for b.Loop() {
				c.Close()
				if _, err := c.Post("/x", body); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
			if bc.name == "tls-resumed" {
				if total, resumed := c.Handshakes(); resumed < total-1 {
					b.Fatalf("%d of %d handshakes resumed", resumed, total)
				}
			}
		})
	}
}
