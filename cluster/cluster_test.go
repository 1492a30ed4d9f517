// Package cluster_test drives cluster/local.sh, the three-process local
// cluster, the way a developer does: start it, use it, kill -9 a node, stop
// it, and check nothing is left running.
package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
)

const (
	// scriptTimeout bounds one run of local.sh (start waits up to
	// KAHUNA_CLUSTER_TIMEOUT for readiness, stop up to
	// KAHUNA_CLUSTER_STOP_TIMEOUT before SIGKILL).
	scriptTimeout = 45 * time.Second
	// serveAfterKill is how long the two survivors may take to serve every
	// partition again after kill -9 of a partition leader: gossip and Raft
	// notice within about a second; the rest is slack for a loaded CI
	// machine and the race detector.
	serveAfterKill = 10 * time.Second
)

var nodeIDs = []string{"n1", "n2", "n3"}

// localCluster is one run of local.sh on free ports in a temporary folder.
type localCluster struct {
	t       *testing.T
	bash    string
	script  string
	dir     string
	env     []string
	http    []string
	clients []*testutil.Client
	pids    map[string]int
}

func newLocalCluster(t *testing.T) *localCluster {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("cluster/local.sh is a bash script for Linux and macOS")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed; cluster/local.sh needs it")
	}
	script, err := filepath.Abs("local.sh")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kahunad")
	built := time.Now()
	if err := testutil.BuildKahunad("github.com/kahuna-go/kahuna/cmd/kahunad", bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built kahunad in %v", time.Since(built).Round(time.Millisecond))
	c := &localCluster{t: t, script: script, dir: filepath.Join(t.TempDir(), "cluster"), pids: map[string]int{}}
	var httpPorts, raftPorts, gossipPorts []string
	for range nodeIDs {
		h := testutil.FreeAddr(t)
		c.http = append(c.http, h)
		httpPorts = append(httpPorts, port(t, h))
		raftPorts = append(raftPorts, port(t, testutil.FreeAddr(t)))
		gossipPorts = append(gossipPorts, port(t, testutil.FreeAddr(t)))
		c.clients = append(c.clients, testutil.NewClient("http://"+h))
	}
	// A developer's KAHUNA_* settings must not reach the script or the
	// nodes.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAHUNA_") {
			c.env = append(c.env, kv)
		}
	}
	c.env = append(c.env,
		"KAHUNA_BIN="+bin,
		"KAHUNA_CLUSTER_DIR="+c.dir,
		"KAHUNA_CLUSTER_HOST=127.0.0.1",
		"KAHUNA_CLUSTER_HTTP_PORTS="+strings.Join(httpPorts, " "),
		"KAHUNA_CLUSTER_RAFT_PORTS="+strings.Join(raftPorts, ","),
		"KAHUNA_CLUSTER_GOSSIP_PORTS="+strings.Join(gossipPorts, " "),
		"KAHUNA_CLUSTER_TIMEOUT=25",
		"KAHUNA_CLUSTER_STOP_TIMEOUT=10",
	)
	c.bash = bash
	t.Cleanup(c.cleanup)
	return c
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs local.sh with args and returns its output (stdout and stderr).
func (c *localCluster) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bash, append([]string{c.script}, args...)...)
	cmd.Env = c.env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("local.sh %s did not finish within %v: %w", strings.Join(args, " "), scriptTimeout, err)
	}
	return string(out), err
}

// readPids records the PIDs the script wrote.
func (c *localCluster) readPids() {
	c.t.Helper()
	for _, id := range nodeIDs {
		b, err := os.ReadFile(filepath.Join(c.dir, id+".pid"))
		if err != nil {
			c.t.Fatalf("pid file of %s: %v", id, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			c.t.Fatalf("pid file of %s holds %q", id, b)
		}
		c.pids[id] = pid
	}
}

// cleanup stops whatever still runs, whatever happened to the test, and
// shows the logs if it failed.
func (c *localCluster) cleanup() {
	for _, cl := range c.clients {
		cl.Close()
	}
	if len(c.leftovers()) > 0 {
		if out, err := c.run("stop"); err != nil {
			c.t.Logf("cleanup: local.sh stop: %v\n%s", err, out)
		}
	}
	for _, pid := range c.leftovers() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if c.t.Failed() {
		for _, id := range nodeIDs {
			b, _ := os.ReadFile(filepath.Join(c.dir, id+".log"))
			if len(b) > 16<<10 {
				b = append([]byte("...\n"), b[len(b)-16<<10:]...)
			}
			c.t.Logf("log of %s:\n%s", id, b)
		}
	}
}

// leftovers are the processes still running from this cluster: the PIDs
// the script recorded and, on Linux, any process whose command line names
// this cluster's folder (a node the pid files do not know about).
func (c *localCluster) leftovers() []int {
	var out []int
	for _, pid := range c.pids {
		if alive(pid) {
			out = append(out, pid)
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || slices.Contains(out, pid) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(c.dir+"/")) || !alive(pid) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// alive reports whether pid runs (a zombie, dead but not yet reaped by
// whoever inherited it, does not count).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err) || runtime.GOOS != "linux"
	}
	// The state follows the command name in parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually retries f every 50 ms until it returns nil or d passes, and
// returns how long it took or the last error.
func eventually(d time.Duration, f func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > d {
			return time.Since(start), err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLocalCluster(t *testing.T) {
	c := newLocalCluster(t)
	began := time.Now()

	out, err := c.run("start")
	if err != nil {
		t.Fatalf("local.sh start: %v\n%s", err, out)
	}
	c.readPids()
	t.Logf("local.sh start took %v", time.Since(began).Round(time.Millisecond))
	for i, h := range c.http {
		if !strings.Contains(out, "http://"+h) {
			t.Errorf("local.sh start does not print the endpoint of %s (http://%s):\n%s", nodeIDs[i], h, out)
		}
	}

	// Every node is ready, and status says so.
	for i, cl := range c.clients {
		status, body, err := cl.Get(ctx5(t), "/readyz")
		if err != nil || status != 200 {
			t.Fatalf("%s /readyz: HTTP %d %s %v", nodeIDs[i], status, body, err)
		}
	}
	if out, err := c.run("status"); err != nil || strings.Count(out, " ready") != 3 {
		t.Errorf("local.sh status: %v, want three ready nodes:\n%s", err, out)
	}

	// A lock taken through n1 is Busy through n3 and visible through n2.
	const resource = "local-sh/persistent"
	var locked testutil.Reply
	if _, err := eventually(5*time.Second, func() error {
		locked, err = c.clients[0].TryLock(ctx5(t), testutil.LockRequest{Resource: resource, Owner: "alice", ExpiresMs: 600_000, Durability: testutil.Persistent})
		if err == nil && (locked.Type != testutil.Locked || locked.FencingToken == nil) {
			err = fmt.Errorf("try-lock through n1: %v, want Locked with a token", locked)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	busy, err := c.clients[2].TryLock(ctx5(t), testutil.LockRequest{Resource: resource, Owner: "bob", ExpiresMs: 600_000, Durability: testutil.Persistent})
	if err != nil || busy.Type != testutil.Busy || busy.Owner != "alice" {
		t.Fatalf("try-lock by another owner through n3: %v %v, want Busy owner alice", busy, err)
	}
	var info testutil.Reply
	if _, err := eventually(5*time.Second, func() error {
		info, err = c.clients[1].GetInfo(ctx5(t), testutil.LockRequest{Resource: resource, Durability: testutil.Persistent})
		if err != nil {
			return err
		}
		if info.Type != testutil.Got || info.Owner != "alice" || info.Token() != locked.Token() {
			return fmt.Errorf("get-info through n2: %v, want Got owner alice token %d", info, locked.Token())
		}
		// servedFrom is the partition leader that executed the read,
		// one of the three, and a leader in n2's status.
		st, err := c.clients[1].Status(ctx5(t))
		if err != nil {
			return err
		}
		var leaders []string
		for _, p := range st.Partitions {
			leaders = append(leaders, p.Leader)
		}
		if !slices.Contains(nodeIDs, info.ServedFrom) || !slices.Contains(leaders, info.ServedFrom) {
			return fmt.Errorf("get-info through n2 was served from %q; the partition leaders are %v", info.ServedFrom, leaders)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// kill -9 the leader of the lock's partition; the other two keep
	// serving, the lock included.
	victim := slices.Index(nodeIDs, info.ServedFrom)
	pid := c.pids[nodeIDs[victim]]
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s (pid %d): %v", nodeIDs[victim], pid, err)
	}
	if _, err := eventually(5*time.Second, func() error {
		if alive(pid) {
			return fmt.Errorf("%s (pid %d) still runs after kill -9", nodeIDs[victim], pid)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for i, cl := range c.clients {
		if i == victim {
			continue
		}
		_, err := eventually(serveAfterKill-time.Since(killed), func() error {
			rep, err := cl.GetInfo(ctx5(t), testutil.LockRequest{Resource: resource, Durability: testutil.Persistent})
			if err != nil {
				return err
			}
			if rep.Type != testutil.Got || rep.Owner != "alice" || rep.Token() != locked.Token() {
				return fmt.Errorf("get-info through %s: %v, want Got owner alice token %d", nodeIDs[i], rep, locked.Token())
			}
			for k := range 6 {
				r := fmt.Sprintf("local-sh/after-kill/%s/%d", nodeIDs[i], k)
				rep, err := cl.TryLock(ctx5(t), testutil.LockRequest{Resource: r, Owner: "carol", ExpiresMs: 60_000, Durability: testutil.Persistent})
				if err != nil {
					return err
				}
				if rep.Type != testutil.Locked {
					return fmt.Errorf("try-lock %s through %s: %v, want Locked", r, nodeIDs[i], rep)
				}
			}
			status, body, err := cl.Get(ctx5(t), "/readyz")
			if err != nil || status != 200 {
				return fmt.Errorf("%s /readyz: HTTP %d %s %v", nodeIDs[i], status, body, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v after kill -9 of %s: %v", serveAfterKill, nodeIDs[victim], err)
		}
		t.Logf("%s serves %v after kill -9 of %s", nodeIDs[i], time.Since(killed).Round(time.Millisecond), nodeIDs[victim])
	}

	// local.sh stop ends the other two; nothing of the cluster is left.
	for _, cl := range c.clients {
		cl.Close() // an idle keep-alive connection would slow the HTTP drain
	}
	stopBegan := time.Now()
	out, err = c.run("stop")
	if err != nil {
		t.Fatalf("local.sh stop: %v\n%s", err, out)
	}
	t.Logf("local.sh stop took %v", time.Since(stopBegan).Round(time.Millisecond))
	if strings.Contains(out, "SIGKILL") {
		t.Errorf("local.sh stop needed SIGKILL; SIGTERM should shut kahunad down cleanly:\n%s", out)
	}
	if left := c.leftovers(); len(left) > 0 {
		t.Fatalf("processes left after local.sh stop: %v\n%s", left, out)
	}
	for _, id := range nodeIDs {
		if _, err := os.Stat(filepath.Join(c.dir, id+".pid")); !os.IsNotExist(err) {
			t.Errorf("pid file of %s is still there after stop (%v)", id, err)
		}
	}
	if out, err := c.run("status"); err == nil || strings.Count(out, "not running") != 3 {
		t.Errorf("local.sh status after stop: %v, want an error and three nodes not running:\n%s", err, out)
	}
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}
