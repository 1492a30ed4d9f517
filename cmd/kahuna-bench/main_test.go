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

	"github.com/kahuna-go/kahuna/internal/testcluster"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// fake is a stand-in node: it grants every try-lock with a rising token,
// accepts every unlock, names itself (or the leader it forwarded to) in
// servedFrom, and reports ready once ready is set.
type fake struct {
	url       string
	requests  atomic.Int64 // try-locks and unlocks
	ephemeral atomic.Int64 // ephemeral try-locks
	probes    atomic.Int64 // GET /readyz
}

func fakeServer(t *testing.T, ready *atomic.Bool) (string, *atomic.Int64) {
	t.Helper()
	f := newFake(t, ready, "fake")
	return f.url, &f.ephemeral
}

func newFake(t *testing.T, ready *atomic.Bool, servedFrom string) *fake {
	t.Helper()
	f := &fake{}
	var token atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		f.probes.Add(1)
		if !ready.Load() {
			http.Error(w, `{"status":"not ready"}`, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("POST "+wire.PathTryLock, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"durability":0`)) {
			f.ephemeral.Add(1)
		}
		f.requests.Add(1)
		fmt.Fprintf(w, `{"type":0,"servedFrom":%q,"fencingToken":%d}`, servedFrom, token.Add(1))
	})
	mux.HandleFunc("POST "+wire.PathTryUnlock, func(w http.ResponseWriter, _ *http.Request) {
		f.requests.Add(1)
		fmt.Fprintf(w, `{"type":3,"servedFrom":%q}`, servedFrom)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
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
	if len(c.Endpoints) != 1 || c.Endpoints[0] != "http://127.0.0.1:8082" || c.Workers != 64 || c.Keys != 10000 || c.Duration != 10*time.Second ||
		c.Warmup != 2*time.Second || c.ExpiresMs != 10000 || c.KeyPrefix != "bench-" || c.Seed != 1 ||
		opts.format != "text" || len(opts.durabilities) != 1 || opts.durabilities[0] != wire.Persistent {
		t.Fatalf("defaults %+v", opts)
	}
	for _, args := range [][]string{
		{"-durability", "sometimes"},
		{"-route", "nearest"},
		{"-format", "xml"},
		{"-workers", "0"},
		{"-expires-ms", "0"},
		{"-endpoint", "ftp://x:1"},
		{"-endpoint", "http://x:1,ftp://y:2"},
		{"-endpoint", "http://x:1,,http://y:2"},
		{"-endpoint", ""},
		{"-endpoint", "http://x:1,http://y:2,http://z:3", "-workers", "2"},
		{"-retry", "-1s"},
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
	if c.RouteToLeader {
		t.Error("routing to leaders must be asked for")
	}
	if c.Retry != 0 {
		t.Errorf("retries must be asked for, got -retry %v", c.Retry)
	}
	if opts, err := parseFlags([]string{"-retry", "5s"}, io.Discard); err != nil || opts.cfg.Retry != 5*time.Second {
		t.Errorf("-retry 5s: %v (%v)", opts.cfg.Retry, err)
	}
	for _, tc := range []struct {
		endpoints string
		want      bool
	}{
		{"http://x:1", false}, // nothing to choose from
		{"http://x:1,http://y:2", true},
	} {
		opts, err := parseFlags([]string{"-route", "leader", "-endpoint", tc.endpoints}, io.Discard)
		if err != nil || opts.cfg.RouteToLeader != tc.want {
			t.Errorf("-route leader -endpoint %s: routing %v (%v), want %v", tc.endpoints, opts.cfg.RouteToLeader, err, tc.want)
		}
	}
}

// TestRunRoutedAgainstACluster drives a real three-node cluster with
// -route leader: every request must go to its partition's leader, so each
// endpoint serves exactly what was sent to it.
func TestRunRoutedAgainstACluster(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Nodes: 3})
	var urls []string
	for _, n := range tc.Nodes {
		urls = append(urls, "http://"+n.HTTP)
	}
	// A spurious election on a loaded machine excuses misrouted requests;
	// with the same leaders before and after, none may be.
	for attempt := 1; ; attempt++ {
		leaders := tc.Leaders()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{
			"-endpoint", strings.Join(urls, ","), "-route", "leader", "-workers", "6", "-keys", "300",
			"-duration", "300ms", "-warmup", "0s", "-format", "json",
		}, &stdout, &stderr)
		if code != exitOK {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
		}
		var results []struct {
			Requests   uint64            `json:"requests"`
			Routed     uint64            `json:"routed"`
			Misrouted  uint64            `json:"misrouted"`
			Endpoints  map[string]uint64 `json:"endpoints"`
			ServedFrom map[string]uint64 `json:"servedFrom"`
			Entries    *uint64           `json:"raftEntries"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &results); err != nil || len(results) != 1 {
			t.Fatalf("stdout is not one JSON result: %v\n%s", err, stdout.String())
		}
		r := results[0]
		// Every persistent request is one command in the log, and a batch
		// holds one or more; beyond them only a few ticks and leadership
		// entries can commit in the run.
		if r.Entries == nil || *r.Entries == 0 || *r.Entries > r.Requests+6 {
			t.Fatalf("raft entries %v for %d requests", r.Entries, r.Requests)
		}
		var problems []string
		if r.Requests == 0 || r.Routed != r.Requests || r.Misrouted != 0 {
			problems = append(problems, fmt.Sprintf("%d requests, %d routed, %d misrouted", r.Requests, r.Routed, r.Misrouted))
		}
		for i, n := range tc.Nodes {
			if sent, served := r.Endpoints[urls[i]], r.ServedFrom[n.ID]; sent == 0 || sent != served {
				problems = append(problems, fmt.Sprintf("%s: %d requests sent, %d served (each node leads one partition and must serve all it is sent)", n.ID, sent, served))
			}
		}
		if len(problems) == 0 {
			return
		}
		if fmt.Sprint(tc.Leaders()) == fmt.Sprint(leaders) || attempt == 3 {
			t.Fatalf("attempt %d, leaders %v before and %v after: %s", attempt, leaders, tc.Leaders(), strings.Join(problems, "; "))
		}
	}
}

func TestParseEndpointList(t *testing.T) {
	opts, err := parseFlags([]string{"-endpoint", "http://127.0.0.1:8082/, http://127.0.0.1:8084,http://127.0.0.1:8082"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:8082", "http://127.0.0.1:8084", "http://127.0.0.1:8082"}
	if fmt.Sprint(opts.cfg.Endpoints) != fmt.Sprint(want) {
		t.Fatalf("endpoints %q, want %q", opts.cfg.Endpoints, want)
	}

	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-endpoint", "http://127.0.0.1:8082,http://127.0.0.1:8084/v1,http://127.0.0.1:8086"}, io.Discard, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), `"http://127.0.0.1:8084/v1"`) ||
		!strings.Contains(stderr.String(), "entry 2 of 3") || strings.Contains(stderr.String(), "8086") {
		t.Fatalf("exit %d, the bad endpoint is not named clearly:\n%s", code, stderr.String())
	}
}

// TestRunClusterJSON drives three nodes of which two forward to the third,
// as followers do to a partition leader.
func TestRunClusterJSON(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	leader := newFake(t, &ready, "n1")
	f2 := newFake(t, &ready, "n1")
	f3 := newFake(t, &ready, `n"3`)
	list := leader.url + "," + f2.url + "," + f3.url
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{
		"-endpoint", list, "-workers", "6", "-duration", "100ms", "-warmup", "0s", "-format", "json",
	}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	var results []struct {
		Requests          uint64            `json:"requests"`
		Endpoints         map[string]uint64 `json:"endpoints"`
		ServedFrom        map[string]uint64 `json:"servedFrom"`
		ServedFromMissing uint64            `json:"servedFromMissing"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil || len(results) != 1 {
		t.Fatalf("stdout is not one JSON result: %v\n%s", err, stdout.String())
	}
	r := results[0]
	for _, f := range []*fake{leader, f2, f3} {
		if n := r.Endpoints[f.url]; n == 0 || n != uint64(f.requests.Load()) {
			t.Errorf("%s: result counts %d requests, the fake answered %d", f.url, n, f.requests.Load())
		}
	}
	wantN1 := uint64(leader.requests.Load() + f2.requests.Load())
	if len(r.Endpoints) != 3 || len(r.ServedFrom) != 2 || r.ServedFrom["n1"] != wantN1 ||
		r.ServedFrom[`n"3`] != uint64(f3.requests.Load()) || r.ServedFromMissing != 0 {
		t.Fatalf("endpoints %v, servedFrom %q (missing %d) for %d requests", r.Endpoints, r.ServedFrom, r.ServedFromMissing, r.Requests)
	}
}

func TestRunClusterText(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	a, b := newFake(t, &ready, "n1"), newFake(t, &ready, "n2")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{
		"-endpoint", a.url + "," + b.url, "-workers", "2", "-duration", "50ms", "-warmup", "0s",
	}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	want := fmt.Sprintf("persistent endpoints: %s=%d %s=%d\npersistent servedFrom: n1=%d n2=%d\n",
		a.url, a.requests.Load(), b.url, b.requests.Load(), a.requests.Load(), b.requests.Load())
	if !strings.HasSuffix(stdout.String(), want) {
		t.Fatalf("output does not end in\n%s\ngot\n%s", want, stdout.String())
	}
}

// TestRunWaitsForEveryEndpoint has one of three nodes answer 503 for a
// while: the load must not start before it is ready too.
func TestRunWaitsForEveryEndpoint(t *testing.T) {
	var up, late atomic.Bool
	up.Store(true)
	a, b := newFake(t, &up, "a"), newFake(t, &up, "b")
	c := newFake(t, &late, "c")
	readyAt := time.Now().Add(300 * time.Millisecond)
	time.AfterFunc(300*time.Millisecond, func() { late.Store(true) })

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{
		"-endpoint", a.url + "," + b.url + "," + c.url, "-workers", "3", "-duration", "50ms", "-warmup", "0s",
		"-ready-timeout", "3s",
	}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	if time.Now().Before(readyAt) {
		t.Fatal("the run finished before the last endpoint was ready")
	}
	if c.probes.Load() < 2 || a.probes.Load() < 1 || b.probes.Load() < 1 {
		t.Fatalf("readiness probes a=%d b=%d c=%d", a.probes.Load(), b.probes.Load(), c.probes.Load())
	}
	if a.requests.Load() == 0 || b.requests.Load() == 0 || c.requests.Load() == 0 {
		t.Fatalf("requests a=%d b=%d c=%d", a.requests.Load(), b.requests.Load(), c.requests.Load())
	}
}

// TestRunNotReadyNamesEndpoint checks that a node that never gets ready
// fails the run within the one -ready-timeout, named with its 503, while
// the ready nodes get no load and no blame.
func TestRunNotReadyNamesEndpoint(t *testing.T) {
	var up, never atomic.Bool
	up.Store(true)
	a, c := newFake(t, &up, "a"), newFake(t, &never, "c")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{
		"-endpoint", a.url + "," + c.url + "," + dead, "-ready-timeout", "300ms",
	}, &stdout, &stderr)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("waited %s for a 300ms -ready-timeout", time.Since(start))
	}
	msg := stderr.String()
	if !strings.Contains(msg, c.url+"/readyz not ready after 300ms: HTTP 503") ||
		!strings.Contains(msg, dead+"/readyz not ready after 300ms") || !strings.Contains(msg, "refused") ||
		strings.Contains(msg, a.url+"/readyz not ready") || stdout.Len() != 0 {
		t.Fatalf("unclear failure message:\n%s", msg)
	}
	if a.requests.Load() != 0 || c.requests.Load() != 0 {
		t.Fatal("load started although an endpoint was not ready")
	}
}

// TestRunRetry: with -retry a run whose operations are all answered says
// so and succeeds; one whose operations are answered 101 until their
// deadline fails, naming them.
func TestRunRetry(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	good := newFake(t, &ready, "n1")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{
		"-endpoint", good.url, "-workers", "2", "-duration", "50ms", "-warmup", "0s", "-retry", "1s",
	}, &stdout, &stderr)
	if code != exitOK || !strings.Contains(stdout.String(), "\npersistent retry: within 1s, 0 attempts retried, 0 operations failed\n") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathReadyz, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"status":"ok"}`) })
	mux.HandleFunc("POST /", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"type":101,"servedFrom":"n1","error":"no leader"}`)
	})
	stuck := httptest.NewServer(mux)
	t.Cleanup(stuck.Close)
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{
		"-endpoint", stuck.URL, "-workers", "2", "-duration", "50ms", "-warmup", "0s", "-retry", "100ms", "-format", "json",
	}, &stdout, &stderr)
	var results []struct {
		Requests     uint64  `json:"requests"`
		Retries      uint64  `json:"retries"`
		FailedOps    uint64  `json:"failedOps"`
		RetrySeconds float64 `json:"retrySeconds"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil || len(results) != 1 {
		t.Fatalf("stdout is not one JSON result: %v\n%s", err, stdout.String())
	}
	r := results[0]
	if code != exitFailed || r.FailedOps == 0 || r.FailedOps != r.Requests || r.Retries == 0 || r.RetrySeconds != 0.1 ||
		!strings.Contains(stderr.String(), "operations failed despite retries") {
		t.Fatalf("exit %d, result %+v, stderr:\n%s", code, r, stderr.String())
	}
}
