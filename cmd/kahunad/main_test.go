package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
)

// kahunadBin and cliBin are the binaries TestMain builds for the
// process-level tests.
var kahunadBin, cliBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kahunad-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kahunadBin = filepath.Join(dir, "kahunad")
	if err := testutil.BuildKahunad(".", kahunadBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cliBin = filepath.Join(dir, "kahuna-cli")
	if err := testutil.BuildKahunad("../kahuna-cli", cliBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// env returns a getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func noEnv(string) string { return "" }

func TestParseDefaults(t *testing.T) {
	o, err := parse(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	for _, f := range []struct{ name, got, want string }{
		{"node-id", c.NodeID, ""},
		{"data-dir", c.DataDir, "kahuna-data"},
		{"http-addr", c.HTTPAddr, "127.0.0.1:8082"},
		{"raft-addr", c.RaftAddr, "127.0.0.1:9082"},
		{"gossip-addr", c.GossipAddr, "127.0.0.1:7946"},
		{"advertise-http", c.AdvertiseHTTP, ""},
		{"advertise-raft", c.AdvertiseRaft, ""},
		{"advertise-gossip", c.AdvertiseGossip, ""},
		{"debug-addr", c.DebugAddr, ""},
		{"log-level", o.logLevel, "info"},
		{"log-format", o.logFormat, "text"},
		{"log-store", string(c.LogStore), ""},
	} {
		if f.got != f.want {
			t.Errorf("--%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if c.BootstrapExpect != 1 {
		t.Errorf("--bootstrap-expect = %d, want 1", c.BootstrapExpect)
	}
	if c.DeadNodeTimeout != 30*time.Second {
		t.Errorf("--dead-node-timeout = %v, want 30s", c.DeadNodeTimeout)
	}
	if c.Partitions != 0 {
		t.Errorf("--partitions = %d, want 0 (stored, else the default)", c.Partitions)
	}
	if len(c.Join) != 0 {
		t.Errorf("--join = %q, want none", c.Join)
	}
}

func TestParseEnvFillsUnsetFlags(t *testing.T) {
	o, err := parse(nil, env(map[string]string{
		"KAHUNA_NODE_ID":          "n1",
		"KAHUNA_DATA_DIR":         "/var/lib/kahuna",
		"KAHUNA_HTTP_ADDR":        "0.0.0.0:18082",
		"KAHUNA_RAFT_ADDR":        "0.0.0.0:19082",
		"KAHUNA_GOSSIP_ADDR":      "0.0.0.0:17946",
		"KAHUNA_ADVERTISE_HTTP":   "10.0.0.1:18082",
		"KAHUNA_ADVERTISE_RAFT":   "10.0.0.1:19082",
		"KAHUNA_ADVERTISE_GOSSIP": "10.0.0.1:17946",
		"KAHUNA_JOIN":             "10.0.0.2:17946,10.0.0.3:17946",
		"KAHUNA_BOOTSTRAP_EXPECT": "3",
		"KAHUNA_PARTITIONS":       "16",
		"KAHUNA_LOG_LEVEL":        "debug",
		"KAHUNA_LOG_FORMAT":       "json",
		"KAHUNA_DEBUG_ADDR":       "127.0.0.1:6060",
		"KAHUNA_LOG_STORE":        "boltdb",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	for _, f := range []struct{ name, got, want string }{
		{"node-id", c.NodeID, "n1"},
		{"data-dir", c.DataDir, "/var/lib/kahuna"},
		{"http-addr", c.HTTPAddr, "0.0.0.0:18082"},
		{"raft-addr", c.RaftAddr, "0.0.0.0:19082"},
		{"gossip-addr", c.GossipAddr, "0.0.0.0:17946"},
		{"advertise-http", c.AdvertiseHTTP, "10.0.0.1:18082"},
		{"advertise-raft", c.AdvertiseRaft, "10.0.0.1:19082"},
		{"advertise-gossip", c.AdvertiseGossip, "10.0.0.1:17946"},
		{"debug-addr", c.DebugAddr, "127.0.0.1:6060"},
		{"log-level", o.logLevel, "debug"},
		{"log-format", o.logFormat, "json"},
		{"log-store", string(c.LogStore), "boltdb"},
	} {
		if f.got != f.want {
			t.Errorf("--%s = %q, want %q from the environment", f.name, f.got, f.want)
		}
	}
	if c.BootstrapExpect != 3 || c.Partitions != 16 {
		t.Errorf("--bootstrap-expect %d, --partitions %d; want 3 and 16 from the environment", c.BootstrapExpect, c.Partitions)
	}
	if want := []string{"10.0.0.2:17946", "10.0.0.3:17946"}; !slices.Equal(c.Join, want) {
		t.Errorf("--join = %q, want %q", c.Join, want)
	}
}

func TestParseFlagBeatsEnv(t *testing.T) {
	o, err := parse(
		[]string{"--http-addr", "127.0.0.1:1111", "--partitions", "2", "--log-format=json"},
		env(map[string]string{
			"KAHUNA_HTTP_ADDR":  "127.0.0.1:2222",
			"KAHUNA_PARTITIONS": "abc", // never read: the flag is set
			"KAHUNA_LOG_FORMAT": "text",
			"KAHUNA_RAFT_ADDR":  "127.0.0.1:3333", // no flag: the env var applies
		}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.HTTPAddr != "127.0.0.1:1111" || o.cfg.Partitions != 2 || o.logFormat != "json" {
		t.Errorf("http-addr %q, partitions %d, log-format %q; want the flags' 127.0.0.1:1111, 2, json",
			o.cfg.HTTPAddr, o.cfg.Partitions, o.logFormat)
	}
	if o.cfg.RaftAddr != "127.0.0.1:3333" {
		t.Errorf("raft-addr %q, want 127.0.0.1:3333 from KAHUNA_RAFT_ADDR", o.cfg.RaftAddr)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"bad env value", nil, map[string]string{"KAHUNA_PARTITIONS": "abc"}, []string{"KAHUNA_PARTITIONS", "abc"}},
		{"bad env integer", nil, map[string]string{"KAHUNA_BOOTSTRAP_EXPECT": "three"}, []string{"KAHUNA_BOOTSTRAP_EXPECT", "three"}},
		{"partitions 0", []string{"--partitions", "0"}, nil, []string{"--partitions", "at least 1"}},
		{"partitions 0 from the environment", nil, map[string]string{"KAHUNA_PARTITIONS": "0"}, []string{"--partitions", "at least 1"}},
		{"stray argument", []string{"extra"}, nil, []string{`"extra"`}},
		{"stray argument after flags", []string{"--node-id", "a", "b"}, nil, []string{`"b"`}},
		{"unknown flag", []string{"--no-such-flag"}, nil, []string{"no-such-flag"}},
		{"non-integer flag", []string{"--partitions", "four"}, nil, []string{"four"}},
		{"unknown log store", []string{"--log-store", "rocksdb"}, nil, []string{"--log-store", `"rocksdb"`, "wal or boltdb"}},
		{"unknown log store from the environment", nil, map[string]string{"KAHUNA_LOG_STORE": "WAL"}, []string{"--log-store", `"WAL"`}},
		{"negative dead-node timeout", []string{"--dead-node-timeout", "-1s"}, nil, []string{"--dead-node-timeout", "negative"}},
		{"dead-node timeout without a unit", []string{"--dead-node-timeout", "30"}, nil, []string{"dead-node-timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parse(tc.args, env(tc.env), &stderr)
			if err == nil {
				t.Fatalf("parse(%q) succeeded with %+v, want an error", tc.args, o)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseJoin(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"a, b", []string{"a", "b"}},
		{" a:7946 ,b:7946,  c:7946 ", []string{"a:7946", "b:7946", "c:7946"}},
		{"a,,b,", []string{"a", "b"}},
		{" , ", nil},
	} {
		o, err := parse([]string{"--join", tc.in}, noEnv, io.Discard)
		if err != nil {
			t.Fatalf("--join %q: %v", tc.in, err)
		}
		if !slices.Equal(o.cfg.Join, tc.want) {
			t.Errorf("--join %q = %q, want %q", tc.in, o.cfg.Join, tc.want)
		}
	}
}

// TestRunUsageErrors checks run's exit codes for errors found before any
// server starts: 2 for usage and configuration, 0 for --help.
func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"--help"}, 0, "KAHUNA_HTTP_ADDR"},
		{"unknown flag", []string{"--bogus"}, 2, "kahunad: flag provided but not defined: -bogus"},
		{"stray argument", []string{"serve"}, 2, `kahunad: unexpected argument "serve"`},
		{"bad log format", []string{"--log-format", "xml"}, 2, "kahunad: "},
		{"bad log level", []string{"--log-level", "loud"}, 2, "kahunad: "},
		{"negative partitions", []string{"--partitions", "-1"}, 2, "--partitions"},
		{"address without port", []string{"--http-addr", "localhost"}, 2, "--http-addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			args := append([]string{"--data-dir", filepath.Join(dir, "data")}, tc.args...)
			if code := run(args, noEnv, &stderr); code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not contain %q:\n%s", tc.want, stderr.String())
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("a usage error created the data directory")
	}
}

func TestHealthCommand(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"status":"ready"}`))
	}))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	_, port, _ := net.SplitHostPort(addr(ready))

	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"ready", []string{"--http-addr", addr(ready)}, nil, 0},
		{"from the environment", nil, map[string]string{"KAHUNA_HTTP_ADDR": addr(ready)}, 0},
		{"bound to every interface", []string{"--http-addr", "0.0.0.0:" + port}, nil, 0},
		{"not ready", []string{"--http-addr", addr(notReady)}, nil, 1},
		{"nobody there", []string{"--http-addr", "127.0.0.1:1"}, nil, 1},
		{"bad address", []string{"--http-addr", "nope"}, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if got := health(tc.args, env(tc.env), &out, &errOut); got != tc.want {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", got, tc.want, out.String(), errOut.String())
			}
		})
	}
}

func TestParseForceNewCluster(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{"default", nil, nil, false},
		{"flag", []string{"--force-new-cluster"}, nil, true},
		{"flag=true", []string{"--force-new-cluster=true"}, nil, true},
		{"environment", nil, map[string]string{"KAHUNA_FORCE_NEW_CLUSTER": "true"}, true},
		{"environment 1", nil, map[string]string{"KAHUNA_FORCE_NEW_CLUSTER": "1"}, true},
		{"environment false", nil, map[string]string{"KAHUNA_FORCE_NEW_CLUSTER": "false"}, false},
		{"flag beats environment", []string{"--force-new-cluster=false"}, map[string]string{"KAHUNA_FORCE_NEW_CLUSTER": "true"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(tc.args, env(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if o.cfg.ForceNewCluster != tc.want {
				t.Errorf("ForceNewCluster = %v, want %v", o.cfg.ForceNewCluster, tc.want)
			}
		})
	}
	_, err := parse(nil, env(map[string]string{"KAHUNA_FORCE_NEW_CLUSTER": "yes please"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "KAHUNA_FORCE_NEW_CLUSTER") {
		t.Errorf("KAHUNA_FORCE_NEW_CLUSTER=\"yes please\": error %v, want one naming the variable", err)
	}
}
