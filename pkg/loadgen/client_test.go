package loadgen

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer starts an httptest server that counts accepted connections.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func newTestClient(t *testing.T, srv *httptest.Server) *Client {
	t.Helper()
	addr, host, err := ParseEndpoint(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(addr, host, 2*time.Second)
	t.Cleanup(c.Close)
	return c
}

func TestClientContentLengthKeepAlive(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Host == "" {
			http.Error(w, "bad request line or headers", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"type":0,"echo":%s,"path":%q}`, body, r.URL.Path)
	})
	c := newTestClient(t, srv)
	for i := range 3 {
		body := fmt.Sprintf(`{"n":%d}`, i)
		resp, err := c.Post("/v1/locks/try-lock", []byte(body))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := fmt.Sprintf(`{"type":0,"echo":%s,"path":"/v1/locks/try-lock"}`, body)
		if resp.Status != 200 || string(resp.Body) != want {
			t.Fatalf("request %d: got %d %q, want 200 %q", i, resp.Status, resp.Body, want)
		}
	}
	if n := conns.Load(); n != 1 || c.Dials() != 1 {
		t.Fatalf("keep-alive broken: server saw %d connections, client dialed %d", n, c.Dials())
	}
}

func TestClientChunked(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		// Flushing before the handler returns forces chunked encoding.
		io.WriteString(w, `{"type":1,`)
		w.(http.Flusher).Flush()
		io.WriteString(w, `"fencingToken":7}`)
	})
	c := newTestClient(t, srv)
	for i := range 3 {
		resp, err := c.Post("/x", []byte(`{}`))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := string(resp.Body); got != `{"type":1,"fencingToken":7}` {
			t.Fatalf("request %d: body %q", i, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("chunked replies broke keep-alive: %d connections", n)
	}
}

func TestClientConnectionClose(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, `{"type":3}`)
	})
	c := newTestClient(t, srv)
	for i := range 3 {
		resp, err := c.Post("/x", []byte(`{}`))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(resp.Body) != `{"type":3}` {
			t.Fatalf("request %d: body %q", i, resp.Body)
		}
	}
	if n := conns.Load(); n != 3 || c.Dials() != 3 {
		t.Fatalf("want a new connection per request, server saw %d, client dialed %d", n, c.Dials())
	}
}

func TestClientReconnectsAfterDrop(t *testing.T) {
	var calls atomic.Int32
	srv, conns := countingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 2 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // drop it without a reply
			}
			return
		}
		io.WriteString(w, `{"type":0}`)
	})
	c := newTestClient(t, srv)
	if _, err := c.Post("/x", []byte(`{}`)); err != nil {
		t.Fatalf("first request: %v", err)
	}
	if _, err := c.Post("/x", []byte(`{}`)); err == nil {
		t.Fatal("request on a dropped connection succeeded")
	}
	resp, err := c.Post("/x", []byte(`{}`))
	if err != nil {
		t.Fatalf("request after the drop: %v", err)
	}
	if string(resp.Body) != `{"type":0}` {
		t.Fatalf("body after reconnect %q", resp.Body)
	}
	if n := conns.Load(); n != 2 || c.Dials() != 2 {
		t.Fatalf("want exactly one reconnect, server saw %d connections, client dialed %d", n, c.Dials())
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	addr, host, _ := ParseEndpoint(srv.URL)
	c := NewClient(addr, host, 100*time.Millisecond)
	defer c.Close()
	start := time.Now()
	if _, err := c.Post("/x", []byte(`{}`)); err == nil {
		t.Fatal("a server that never answers did not time out")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("timeout took %s", d)
	}
}

func TestClientDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := NewClient(addr, addr, time.Second)
	if _, err := c.Post("/x", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "dial") {
		t.Fatalf("want a dial error, got %v", err)
	}
}

// rawServer answers each request on each connection with the next canned
// response, so tests can send exactly the bytes net/http would never write.
func rawServer(t *testing.T, replies ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := 0
		for next < len(replies) {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(conn)
			for next < len(replies) {
				req, err := http.ReadRequest(br)
				if err != nil {
					break
				}
				io.Copy(io.Discard, req.Body)
				reply := replies[next]
				next++
				conn.Write([]byte(reply))
				if strings.HasPrefix(reply, "HTTP/1.0") || strings.Contains(strings.ToLower(reply), "connection: close") {
					break
				}
			}
			conn.Close()
		}
	}()
	return ln.Addr().String()
}

func TestClientRawReplies(t *testing.T) {
	tests := []struct {
		name, reply, body string
		status            int
		keepAlive         bool
	}{
		{"upper-case headers", "HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 10\r\nX-Other: a:b\r\n\r\n{\"type\":0}", `{"type":0}`, 200, true},
		{"no reason phrase", "HTTP/1.1 200\r\ncontent-length:  2 \r\n\r\n{}", `{}`, 200, true},
		{"chunk extensions and trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n4;ext=1\r\n{\"ty\r\nA\r\npe\":102}xx\r\n0\r\nX-Trailer: 1\r\n\r\n", `{"type":102}xx`, 200, true},
		{"non-200 status", "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 12\r\n\r\n{\"type\":100}", `{"type":100}`, 413, true},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", ``, 204, true},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\n{}", `{}`, 200, false},
		{"HTTP/1.0 body to EOF", "HTTP/1.0 200 OK\r\n\r\n{\"type\":4}", `{"type":4}`, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The same reply twice proves the first was consumed exactly.
			addr := rawServer(t, tt.reply, tt.reply)
			c := NewClient(addr, addr, time.Second)
			defer c.Close()
			for i := range 2 {
				resp, err := c.Post("/x", []byte(`{}`))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if resp.Status != tt.status || string(resp.Body) != tt.body {
					t.Fatalf("request %d: got %d %q, want %d %q", i, resp.Status, resp.Body, tt.status, tt.body)
				}
			}
			wantDials := 1
			if !tt.keepAlive {
				wantDials = 2
			}
			if c.Dials() != wantDials {
				t.Fatalf("dialed %d times, want %d", c.Dials(), wantDials)
			}
		})
	}
}

func TestClientMalformedReplies(t *testing.T) {
	for _, reply := range []string{
		"SMTP ready\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", // then EOF
	} {
		addr := rawServer(t, reply)
		c := NewClient(addr, addr, time.Second)
		if resp, err := c.Post("/x", []byte(`{}`)); err == nil {
			t.Errorf("reply %q: accepted as %d %q", reply, resp.Status, resp.Body)
		}
		c.Close()
	}
}

func TestAppendPost(t *testing.T) {
	got := string(appendPost(nil, "/v1/locks/try-lock", "h:1", "", []byte(`{"a":1}`)))
	want := "POST /v1/locks/try-lock HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	got = string(appendPost(nil, "/p", "h", "Authorization: Bearer t0k\r\n", []byte(`{}`)))
	want = "POST /p HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t0k\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = appendPost(buf[:0], "/p", "h", "Authorization: Bearer t\r\n", []byte(`{}`)) }); n != 0 {
		t.Fatalf("appendPost allocates %.0f times into a large enough buffer", n)
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct{ in, addr, host string }{
		{"http://127.0.0.1:8082", "127.0.0.1:8082", "127.0.0.1:8082"},
		{"http://localhost:8082/", "localhost:8082", "localhost:8082"},
		{"http://example.com", "example.com:80", "example.com"},
		{"http://[::1]:9", "[::1]:9", "[::1]:9"},
		{"https://127.0.0.1:8082", "127.0.0.1:8082", "127.0.0.1:8082"},
		{"https://example.com/", "example.com:443", "example.com"},
	}
	for _, tt := range tests {
		addr, host, err := ParseEndpoint(tt.in)
		if err != nil || addr != tt.addr || host != tt.host {
			t.Errorf("%s: got %q %q %v, want %q %q", tt.in, addr, host, err, tt.addr, tt.host)
		}
	}
	for _, bad := range []string{"ftp://x:1", "127.0.0.1:8082", "http://", "http://x:1/base", "::"} {
		if _, _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// BenchmarkClientPost measures the client's own cost per request against a
// server that answers every read with a canned reply without parsing it.
func BenchmarkClientPost(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		reply := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n{\"type\":0,\"servedFrom\":\"n1\",\"fencingToken\":1234}")
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
	addr := ln.Addr().String()
	c := NewClient(addr, addr, time.Second)
	defer c.Close()
	body := []byte(`{"resource":"bench-1","owner":"o","expiresMs":10000,"durability":1}`)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Post("/v1/locks/try-lock", body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ScanReply(resp.Body); err != nil {
			b.Fatal(err)
		}
	}
}
