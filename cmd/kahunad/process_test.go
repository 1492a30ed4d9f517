package main

// Process-level tests: each drives the real kahunad binary the way an
// operator does, through flags, signals, exit codes and HTTP.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
)

// startFailTimeout bounds how long a start-up failure may take to exit.
const startFailTimeout = 5 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// expectExit waits for p to exit with code and checks its output holds
// every string of want.
func expectExit(t *testing.T, p *testutil.Process, code int, want ...string) {
	t.Helper()
	if got := p.Wait(startFailTimeout); got != code {
		t.Errorf("exit code %d, want %d; output:\n%s", got, code, p.Output())
		return
	}
	out := p.Output()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output does not contain %q:\n%s", w, out)
		}
	}
}

// lock takes a persistent lock and fails the test unless it is granted.
func lock(t *testing.T, c *testutil.Client, resource, owner string) int64 {
	t.Helper()
	rep, err := c.TryLock(ctxT(t), testutil.LockRequest{Resource: resource, Owner: owner, ExpiresMs: 600_000, Durability: testutil.Persistent})
	if err != nil {
		t.Fatalf("try-lock %s: %v", resource, err)
	}
	if rep.Type != testutil.Locked || rep.FencingToken == nil {
		t.Fatalf("try-lock %s: %v, want Locked with a token", resource, rep)
	}
	return rep.Token()
}

// expectHeld fails the test unless get-info shows the persistent lock held
// by owner with token.
func expectHeld(t *testing.T, c *testutil.Client, resource, owner string, token int64) {
	t.Helper()
	rep, err := c.GetInfo(ctxT(t), testutil.LockRequest{Resource: resource, Durability: testutil.Persistent})
	if err != nil {
		t.Fatalf("get-info %s: %v", resource, err)
	}
	if rep.Type != testutil.Got || rep.Owner != owner || rep.Token() != token {
		t.Fatalf("get-info %s: %v, want Got owner %s token %d", resource, rep, owner, token)
	}
}

func TestNoFlagsDefaults(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:8082", "127.0.0.1:9082", "127.0.0.1:7946"} {
		if !testutil.CanListen(addr) {
			t.Skipf("%s is in use on this machine; the no-flags default needs it", addr)
		}
	}
	dir := t.TempDir()
	p := testutil.Start(t, testutil.Spec{Bin: kahunadBin, Dir: dir, HTTPAddr: "127.0.0.1:8082"})
	if err := p.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(filepath.Join(dir, "kahuna-data", "node.json"))
	if err != nil {
		t.Fatalf("./kahuna-data/node.json: %v", err)
	}
	var meta struct {
		NodeID     string `json:"nodeId"`
		Partitions int    `json:"partitions"`
		LogStore   string `json:"logStore"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatalf("node.json: %v: %s", err, b)
	}
	host, _ := os.Hostname()
	if meta.NodeID != host || meta.Partitions != 1 || meta.LogStore != "wal" {
		t.Errorf("node.json has node %q, %d partitions, log store %q; want the host name %q, 1 and wal", meta.NodeID, meta.Partitions, meta.LogStore, host)
	}
	if _, err := os.Stat(filepath.Join(dir, "kahuna-data", "partitions", "0", "wal")); err != nil {
		t.Errorf("partition 0 has no raft-wal directory: %v", err)
	}

	c := p.Client()
	st, err := c.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Node.RaftAddr != "127.0.0.1:9082" || len(st.Partitions) != 1 {
		t.Errorf("cluster status: raft address %q, %d partitions; want 127.0.0.1:9082 and 1", st.Node.RaftAddr, len(st.Partitions))
	}
	for _, ps := range st.Partitions {
		if ps.Leader != meta.NodeID {
			t.Errorf("partition %d: leader %q, want %q", ps.ID, ps.Leader, meta.NodeID)
		}
	}
	token := lock(t, c, "defaults", "me")
	expectHeld(t, c, "defaults", "me", token)

	p.Signal(syscall.SIGTERM)
	expectExit(t, p, 0, "kahunad stopped")
}

func TestBusyPort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ flag, other string }{
		{"--http-addr", "--raft-addr"},
		{"--raft-addr", "--http-addr"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			t.Parallel()
			n := testutil.NewNode(t, kahunadBin)
			addrs := map[string]string{"--http-addr": n.HTTPAddr, "--raft-addr": n.RaftAddr}
			busy := addrs[tc.flag]
			ln, err := net.Listen("tcp", busy)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()

			p := n.Start(t)
			expectExit(t, p, 1, "kahunad: ", tc.flag+" "+busy, "address already in use")
			if other := addrs[tc.other]; !testutil.CanListen(other) {
				t.Errorf("%s %s is still taken after the failed start", tc.other, other)
			}
			if !testutil.CanListen(n.GossipAddr) {
				t.Errorf("--gossip-addr %s is still taken after the failed start", n.GossipAddr)
			}
		})
	}
}

func TestDataDirBeneathAFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := testutil.NewNode(t, kahunadBin)
	n.DataDir = filepath.Join(file, "data")
	p := n.Start(t)
	expectExit(t, p, 1, "kahunad: data directory", n.DataDir)
	if !testutil.CanListen(n.HTTPAddr) || !testutil.CanListen(n.RaftAddr) {
		t.Error("a port is still taken after the failed start")
	}
}

func TestDataDirLockedByAnotherKahunad(t *testing.T) {
	t.Parallel()
	first := testutil.NewNode(t, kahunadBin)
	p1 := first.StartReady(t)
	token := lock(t, p1.Client(), "mine", "first")

	second := testutil.NewNode(t, kahunadBin)
	second.DataDir = first.DataDir
	p2 := second.Start(t)
	expectExit(t, p2, 1, "kahunad: ", "locked by another kahunad", fmt.Sprintf("(pid %d)", p1.Pid()))
	if !testutil.CanListen(second.HTTPAddr) || !testutil.CanListen(second.RaftAddr) {
		t.Error("the refused process left a port taken")
	}
	// The refused start must not have disturbed the first process.
	expectHeld(t, p1.Client(), "mine", "first", token)
	p1.Stop()
}

func TestPartitionCountMismatch(t *testing.T) {
	t.Parallel()
	n := testutil.NewNode(t, kahunadBin)
	p := n.StartReady(t, "--partitions", "4")
	token := lock(t, p.Client(), "kept", "owner")
	p.Stop()

	p = n.Start(t, "--partitions", "8")
	expectExit(t, p, 1, "kahunad: ", "was created with 4 partitions", "--partitions is 8")

	p = n.StartReady(t)
	st, err := p.Client().Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Partitions) != 4 {
		t.Errorf("restarted without --partitions: %d partitions, want the stored 4", len(st.Partitions))
	}
	expectHeld(t, p.Client(), "kept", "owner", token)
	p.Stop()
}

// TestLogStoreMismatch starts a data directory with the other engine than
// it was created with: a clear error, and the data is untouched.
func TestLogStoreMismatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ created, other string }{{"wal", "boltdb"}, {"boltdb", "wal"}} {
		t.Run(tc.created, func(t *testing.T) {
			t.Parallel()
			n := testutil.NewNode(t, kahunadBin)
			var create []string
			if tc.created != "wal" {
				create = []string{"--log-store", tc.created}
			}
			p := n.StartReady(t, create...)
			token := lock(t, p.Client(), "kept", "owner")
			p.Stop()

			p = n.Start(t, "--log-store", tc.other)
			expectExit(t, p, 1, "kahunad: ", "was created with --log-store "+tc.created, "--log-store is "+tc.other, "fixed")

			p = n.StartReady(t)
			expectHeld(t, p.Client(), "kept", "owner", token)
			p.Stop()
		})
	}
}

func TestNodeIDMismatch(t *testing.T) {
	t.Parallel()
	n := testutil.NewNode(t, kahunadBin)
	p := n.StartReady(t, "--node-id", "a", "--partitions", "2")
	p.Stop()

	p = n.Start(t, "--node-id", "b")
	expectExit(t, p, 1, "kahunad: ", `belongs to node "a"`, `--node-id is "b"`)

	p = n.StartReady(t)
	st, err := p.Client().Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Node.ID != "a" {
		t.Errorf("restarted without --node-id: node %q, want the stored \"a\"", st.Node.ID)
	}
	p.Stop()
}

// TestUsageErrorsExit2 runs the binary with usage errors: exit 2, a
// "kahunad: " message, and nothing created in the working directory.
func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, nil, "kahunad: flag provided but not defined: -bogus"},
		{"stray argument", []string{"start"}, nil, `kahunad: unexpected argument "start"`},
		{"bad env value", nil, []string{"KAHUNA_PARTITIONS=abc"}, `kahunad: KAHUNA_PARTITIONS="abc"`},
		{"partitions 0", []string{"--partitions", "0"}, nil, "kahunad: --partitions must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := testutil.Start(t, testutil.Spec{Bin: kahunadBin, Args: tc.args, Env: tc.env, Dir: dir})
			expectExit(t, p, 2, tc.want)
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a usage error left %d entries in the working directory", len(entries))
			}
		})
	}
}

// TestEnvConfiguresProcess starts kahunad configured only through
// KAHUNA_* variables.
func TestEnvConfiguresProcess(t *testing.T) {
	t.Parallel()
	n := testutil.NewNode(t, kahunadBin)
	p := testutil.Start(t, testutil.Spec{
		Bin: kahunadBin,
		Env: []string{
			"KAHUNA_DATA_DIR=" + n.DataDir,
			"KAHUNA_HTTP_ADDR=" + n.HTTPAddr,
			"KAHUNA_RAFT_ADDR=" + n.RaftAddr,
			"KAHUNA_GOSSIP_ADDR=" + n.GossipAddr,
			"KAHUNA_NODE_ID=from-env",
			"KAHUNA_PARTITIONS=3",
			"KAHUNA_LOG_FORMAT=json",
		},
		Dir:      t.TempDir(),
		HTTPAddr: n.HTTPAddr,
	})
	if err := p.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := p.Client().Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Node.ID != "from-env" || len(st.Partitions) != 3 {
		t.Errorf("node %q with %d partitions, want from-env with 3", st.Node.ID, len(st.Partitions))
	}
	p.Stop()
	// JSON logs: every line is an object.
	for _, line := range strings.Split(strings.TrimSpace(p.Output()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("KAHUNA_LOG_FORMAT=json, but a log line is not JSON: %q", line)
			break
		}
	}
}

// TestCleanShutdown stops a node with SIGINT or SIGTERM while a client
// waits for a held lock, and restarts it on the same data directory.
func TestCleanShutdown(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			n := testutil.NewNode(t, kahunadBin)
			n.Args = []string{"--partitions", "2"}
			p := n.StartReady(t)
			c := p.Client()
			token := lock(t, c, "held", "holder")

			type result struct {
				rep testutil.Reply
				err error
			}
			waiter := make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
				defer cancel()
				rep, err := c.TryLock(ctx, testutil.LockRequest{
					Resource: "held", Owner: "waiter", ExpiresMs: 10_000,
					Durability: testutil.Persistent, WaitMs: testutil.Ms(30 * time.Second),
				})
				waiter <- result{rep, err}
			}()
			// Nothing shows a waiter from outside; give the request time to
			// reach the server, and check it is really blocked.
			select {
			case r := <-waiter:
				t.Fatalf("try-lock with waitMs on a held lock returned at once: %v %v", r.rep, r.err)
			case <-time.After(300 * time.Millisecond):
			}

			start := time.Now()
			p.Signal(sig)
			if code := p.Wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d after %v, want 0", code, sig)
			}
			t.Logf("%v: exited after %v", sig, time.Since(start).Round(time.Millisecond))
			select {
			case r := <-waiter:
				switch {
				case r.err != nil:
					if errors.Is(r.err, context.DeadlineExceeded) {
						t.Errorf("the waiting client hung until its own deadline: %v", r.err)
					}
					t.Logf("waiting client: connection ended: %v", r.err)
				case r.rep.Type == testutil.Locked:
					t.Errorf("the waiting client was granted a lock another owner holds: %v", r.rep)
				default:
					t.Logf("waiting client: %v", r.rep)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the waiting client still has no answer 2 s after kahunad exited")
			}
			out := p.Output()
			for _, w := range []string{"shutting down", "kahunad stopped"} {
				if !strings.Contains(out, w) {
					t.Errorf("log does not contain %q", w)
				}
			}

			p = n.StartReady(t)
			expectHeld(t, p.Client(), "held", "holder", token)
			p.Stop()
		})
	}
}

// TestShutdownWithSilentConnection stops a node while a client holds a TCP
// connection to the HTTP port without sending a request (a load balancer's
// pre-connect, a port probe, an HTTP client's spare dial). SIGTERM must still
// exit 0 within 10 s.
func TestShutdownWithSilentConnection(t *testing.T) {
	t.Parallel()
	n := testutil.NewNode(t, kahunadBin)
	n.Args = []string{"--partitions", "1"}
	p := n.StartReady(t)
	p.Client().Close()
	conn, err := net.Dial("tcp", n.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	start := time.Now()
	p.Signal(syscall.SIGTERM)
	code := p.Wait(10 * time.Second)
	took := time.Since(start)
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM (%v), want 0", code, took.Round(time.Millisecond))
	}
	t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
}

// TestLeaseCountsFromSend checks that a grant's expiry is never earlier than
// the client's send time plus expiresMs: the leader stamps the command after
// the client sent it, on the same clock here. Many grants over every
// partition make a millisecond of rounding show.
func TestLeaseCountsFromSend(t *testing.T) {
	t.Parallel()
	n := testutil.NewNode(t, kahunadBin)
	n.Args = []string{"--partitions", "8"}
	p := n.StartReady(t)
	c := p.Client()
	const expiresMs = 60_000
	short, worst := 0, int64(0)
	for i := range 400 {
		d := i % 2
		req := testutil.LockRequest{Resource: fmt.Sprintf("lease/%d", i), Owner: "o", ExpiresMs: expiresMs, Durability: d}
		send := time.Now().UnixMilli()
		rep, err := c.TryLock(ctxT(t), req)
		if err != nil || rep.Type != testutil.Locked {
			t.Fatalf("try-lock %s: %v %v", req.Resource, rep, err)
		}
		info, err := c.GetInfo(ctxT(t), testutil.LockRequest{Resource: req.Resource, Durability: d})
		if err != nil || info.Type != testutil.Got {
			t.Fatalf("get-info %s: %v %v", req.Resource, info, err)
		}
		if gap := info.ExpiresL() - (send + expiresMs); gap < 0 {
			short++
			worst = min(worst, gap)
		}
	}
	if short > 0 {
		t.Errorf("%d of 400 grants expire before send time + expiresMs, by up to %d ms", short, -worst)
	}
	p.Stop()
}

// TestDamagedDataDir starts a node whose Raft files were deleted or
// damaged after it had acknowledged a lock: a clear start-up error (exit 1,
// never a panic), and never a new empty cluster that would hand the lock
// out again. Putting the files back makes the node whole again, which
// shows the refused start changed nothing.
func TestDamagedDataDir(t *testing.T) {
	t.Parallel()
	part := func(n *testutil.Node) string { return filepath.Join(n.DataDir, "partitions", "0") }
	segments := func(t *testing.T, n *testutil.Node) []string {
		got, err := filepath.Glob(filepath.Join(part(n), "wal", "*.wal"))
		if err != nil || len(got) == 0 {
			t.Fatalf("no raft-wal segments under %s: %v", part(n), err)
		}
		return got
	}
	for _, tc := range []struct {
		name, store string
		damage      func(t *testing.T, n *testutil.Node)
		want        string
	}{
		{"partition directory gone", "wal", func(t *testing.T, n *testutil.Node) { os.RemoveAll(part(n)) }, "partition 0 has no log and no snapshot"},
		{"segments gone", "wal", func(t *testing.T, n *testutil.Node) {
			for _, s := range segments(t, n) {
				os.Remove(s)
			}
		}, "partition 0 has no log and no snapshot"},
		{"segment overwritten", "wal", func(t *testing.T, n *testutil.Node) {
			os.WriteFile(segments(t, n)[0], []byte("garbage\n"), 0o640)
		}, "partition 0 has no log and no snapshot"},
		{"metadata emptied", "wal", func(t *testing.T, n *testutil.Node) {
			os.WriteFile(filepath.Join(part(n), "wal", "wal-meta.db"), nil, 0o640)
		}, "log store damaged"},
		{"boltdb file gone", "boltdb", func(t *testing.T, n *testutil.Node) {
			os.Remove(filepath.Join(part(n), "raft.db"))
		}, "partition 0 has no log and no snapshot"},
		{"boltdb file overwritten", "boltdb", func(t *testing.T, n *testutil.Node) {
			os.WriteFile(filepath.Join(part(n), "raft.db"), []byte("garbage\n"), 0o640)
		}, "raft.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := testutil.NewNode(t, kahunadBin)
			p := n.StartReady(t, "--log-store", tc.store)
			token := lock(t, p.Client(), "kept", "owner")
			p.Stop()
			backup := t.TempDir()
			if err := os.CopyFS(backup, os.DirFS(part(n))); err != nil {
				t.Fatal(err)
			}

			tc.damage(t, n)
			p = n.Start(t)
			expectExit(t, p, 1, "kahunad: ", tc.want)
			if out := p.Output(); strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Errorf("start-up panicked:\n%s", out)
			}

			if err := os.RemoveAll(part(n)); err != nil {
				t.Fatal(err)
			}
			if err := os.CopyFS(part(n), os.DirFS(backup)); err != nil {
				t.Fatal(err)
			}
			p = n.StartReady(t)
			expectHeld(t, p.Client(), "kept", "owner", token)
			p.Stop()
		})
	}
}
