package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// fakeServer grants every try-lock with a rising token, accepts every
// unlock, and reports ready once ready is set.
func fakeServer(t *testing.T, ready *atomic.Bool) (string, *atomic.Int64) {
	t.Helper()
	var token, ephemeral atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, `{"status":"not ready"}`, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("POST "+wire.PathTryLock, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"durability":0`)) {
			ephemeral.Add(1)
		}
		fmt.Fprintf(w, `{"type":0,"servedFrom":"fake","fencingToken":%d}`, token.Add(1))
	})
	mux.HandleFunc("POST "+wire.PathTryUnlock, func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"type":3,"servedFrom":"fake"}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, &ephemeral
}

func TestRunBothDurabilitiesJSON(t *testing.T) {
	var ready atomic.Bool
	url, ephemeral := fakeServer(t, &ready)
	time.AfterFunc(300*time.Millisecond, func() { ready.Store(true) }) // exercises the readiness wait

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{
		"-endpoint", url + "/", "-workers", "4", "-keys", "10", "-duration", "150ms", "-warmup", "50ms",
		"-durability", "both", "-format", "json",
	}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	var results []struct {
		Durability string            `json:"durability"`
		Requests   uint64            `json:"requests"`
		Outcomes   map[string]uint64 `json:"outcomes"`
		Errors     uint64            `json:"errors"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil {
		t.Fatalf("stdout is not the JSON results: %v\n%s", err, stdout.String())
	}
	if len(results) != 2 || results[0].Durability != "persistent" || results[1].Durability != "ephemeral" {
		t.Fatalf("want a persistent then an ephemeral run, got %+v", results)
	}
	for _, r := range results {
		if r.Requests == 0 || r.Errors != 0 || r.Outcomes["Locked"] != r.Outcomes["Unlocked"] {
			t.Fatalf("bad run %+v", r)
		}
	}
	if ephemeral.Load() == 0 {
		t.Fatal("no ephemeral try-lock reached the server")
	}
}

func TestRunTextOutput(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	url, _ := fakeServer(t, &ready)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{
		"-endpoint", url, "-workers", "2", "-duration", "50ms", "-warmup", "0s", "-durability", "ephemeral",
	}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "req/s") || !strings.Contains(out, "ephemeral outcomes: Locked=") || strings.Contains(out, "persistent") {
		t.Fatalf("unexpected table:\n%s", out)
	}
}

func TestRunUnreachableEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"-endpoint", "http://" + addr, "-ready-timeout", "300ms"}, &stdout, &stderr)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("gave up after %s", time.Since(start))
	}
	if !strings.Contains(stderr.String(), "not ready after 300ms") || !strings.Contains(stderr.String(), "refused") || stdout.Len() != 0 {
		t.Fatalf("unclear failure message:\n%s", stderr.String())
	}
}

func TestRunNotReady(t *testing.T) {
	var ready atomic.Bool // never set
	url, _ := fakeServer(t, &ready)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-endpoint", url, "-ready-timeout", "300ms"}, &stdout, &stderr); code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	if !strings.Contains(stderr.String(), "HTTP 503") {
		t.Fatalf("the 503 is not reported:\n%s", stderr.String())
	}
}

func TestParseFlags(t *testing.T) {
	opts, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := opts.cfg
	if c.Endpoint != "http://127.0.0.1:8082" || c.Workers != 64 || c.Keys != 10000 || c.Duration != 10*time.Second ||
		c.Warmup != 2*time.Second || c.ExpiresMs != 10000 || c.KeyPrefix != "bench-" || c.Seed != 1 ||
		opts.format != "text" || len(opts.durabilities) != 1 || opts.durabilities[0] != wire.Persistent {
		t.Fatalf("defaults %+v", opts)
	}
	for _, args := range [][]string{
		{"-durability", "sometimes"},
		{"-format", "xml"},
		{"-workers", "0"},
		{"-expires-ms", "0"},
		{"-endpoint", "https://x:1"},
		{"-nope"},
		{"stray"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, io.Discard, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, stderr.String())
		}
	}
	if code := run(context.Background(), []string{"-h"}, io.Discard, io.Discard); code != exitOK {
		t.Errorf("-h: exit %d", code)
	}
}
