package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testcerts"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// tlsFake is an HTTPS stand-in node that wants a bearer token on the lock
// endpoints (not on /readyz, like kahunad) and counts what it got.
type tlsFake struct {
	url                string
	caFile             string // PEM of its certificate, for -cacert
	authorized, denied atomic.Int64
}

func newTLSFake(t *testing.T, token string) *tlsFake {
	t.Helper()
	f := &tlsFake{}
	var fencing atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"status":"ok"}`)
	})
	lock := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			f.denied.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"type":99,"error":"unauthorized"}`)
			return
		}
		f.authorized.Add(1)
		if r.URL.Path == wire.PathTryLock {
			fmt.Fprintf(w, `{"type":0,"servedFrom":"tls","fencingToken":%d}`, fencing.Add(1))
			return
		}
		io.WriteString(w, `{"type":3,"servedFrom":"tls"}`)
	}
	mux.HandleFunc("POST "+wire.PathTryLock, lock)
	mux.HandleFunc("POST "+wire.PathTryUnlock, lock)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.url = srv.URL
	f.caFile = filepath.Join(t.TempDir(), "ca.crt")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(f.caFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRunHTTPSWithToken(t *testing.T) {
	f := newTLSFake(t, "s3cret")
	getenv = func(k string) string {
		if k == "KAHUNA_TOKEN" {
			return "s3cret"
		}
		return ""
	}
	t.Cleanup(func() { getenv = os.Getenv })
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{
		"-endpoint", f.url, "-cacert", f.caFile, "-workers", "2", "-duration", "100ms", "-warmup", "0s", "-durability", "both",
	}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	// One handshake per worker and run; the second run resumes the
	// sessions the first one cached.
	for _, want := range []string{
		"persistent tls: 2 connections, 2 handshakes, 0 of them resumed",
		"ephemeral tls: 2 connections, 2 handshakes, 2 of them resumed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if f.denied.Load() != 0 || f.authorized.Load() == 0 {
		t.Fatalf("%d requests with the token, %d without", f.authorized.Load(), f.denied.Load())
	}

	// -token wins over the environment.
	f.authorized.Store(0)
	code = run(context.Background(), []string{
		"-endpoint", f.url, "-cacert", f.caFile, "-token", "wrong", "-workers", "1", "-duration", "50ms", "-warmup", "0s",
	}, io.Discard, io.Discard)
	if code != exitOK || f.authorized.Load() != 0 || f.denied.Load() == 0 {
		t.Fatalf("exit %d; -token wrong: %d requests let through, %d refused", code, f.authorized.Load(), f.denied.Load())
	}
}

func TestRunHTTPSWrongCA(t *testing.T) {
	f := newTLSFake(t, "")
	other := testcerts.NewSet(t).CAFile
	var stderr bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{
		"-endpoint", f.url, "-cacert", other, "-workers", "1", "-duration", "50ms", "-ready-timeout", "20s",
	}, io.Discard, &stderr)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFailed, stderr.String())
	}
	if !strings.Contains(stderr.String(), "certificate is not trusted (is -cacert the CA that signed it?)") ||
		!strings.Contains(stderr.String(), "unknown authority") {
		t.Fatalf("the certificate problem is not said clearly:\n%s", stderr.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a certificate that will never be trusted was waited for (%s)", d)
	}
}

func TestParseFlagsTLS(t *testing.T) {
	set := testcerts.NewSet(t)
	leaf := set.Leaf("client", testcerts.Options{Usage: testcerts.Client})
	opts, err := parseFlags([]string{"-endpoint", "https://127.0.0.1:1,http://127.0.0.1:2", "-cacert", set.CAFile,
		"-cert", leaf.Cert, "-key", leaf.Key, "-token", "t"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := opts.cfg.TLS; c == nil || c.RootCAs == nil || len(c.Certificates) != 1 || c.ClientSessionCache == nil || opts.cfg.Token != "t" {
		t.Fatalf("TLS %+v, token %q", opts.cfg.TLS, opts.cfg.Token)
	}
	opts, err = parseFlags([]string{"-endpoint", "http://127.0.0.1:1"}, io.Discard)
	if err != nil || opts.cfg.TLS != nil {
		t.Fatalf("plain endpoints: TLS %v, err %v", opts.cfg.TLS, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-endpoint", "http://127.0.0.1:1", "-cacert", set.CAFile}, "for https:// endpoints"},
		{[]string{"-endpoint", "https://127.0.0.1:1", "-cert", leaf.Cert}, "both its certificate and its key"},
		{[]string{"-endpoint", "https://127.0.0.1:1", "-cacert", filepath.Join(set.Dir, "missing.crt")}, "missing.crt"},
		{[]string{"-endpoint", "https://127.0.0.1:1", "-token", "a\r\nb"}, "token"},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
