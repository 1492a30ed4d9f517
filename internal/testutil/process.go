// Package testutil runs real kahunad processes for process-level tests: build
// the binary once, start it on free ports with its own data directory, wait
// for /readyz, talk to it with a small JSON client, and stop it with a signal
// or kill -9. Every process started here is killed when its test ends, and
// its output is printed if the test failed.
package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildKahunad compiles the Go package pkg (for example "." from
// cmd/kahunad's own tests, or "github.com/kahuna-go/kahuna/cmd/kahunad")
// into out. The compiler's output is part of the error.
func BuildKahunad(pkg, out string) error {
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(append(args, pkg), " "), err, b)
	}
	return nil
}

// Test ports come from below the kernel's ephemeral range (32768 and up on
// Linux), from which it picks the source port of every outgoing
// connection: a port found free there and bound by a kahunad a moment
// later could be taken in between by any test's dial, and the node failed
// with "address already in use". Ports are drawn at random from the range,
// so that two test binaries running at once rarely meet and a script that
// takes the ports next to one it was given (cluster/local.sh add) finds
// them free; a port that does not bind is skipped.
const (
	portLow  = 10000
	portHigh = 32000
)

var (
	portsMu sync.Mutex
	// handedOut keeps one test binary from handing the same port to two
	// parallel tests.
	handedOut = map[string]bool{}
)

// FreeAddr returns a 127.0.0.1:port address that was free a moment ago and
// that no earlier FreeAddr call of this test binary, nor of any other test
// binary still running, returned. The second matters because go test runs
// packages side by side: a node stopped for a while leaves its port free,
// and another package's test could take it before the node restarts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := portLow + rand.IntN(portHigh-portLow)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if handedOut[addr] || !CanListen(addr) || !reservePort(port) {
			continue
		}
		handedOut[addr] = true
		return addr
	}
	t.Fatal("finding a free port: 1000 tries below the ephemeral range found none")
	return ""
}

// reservePort takes port for this process among every test process of the
// machine: an flock on a file named after it, held until the process exits
// (the kernel drops it then, whatever way the process ends).
func reservePort(port int) bool {
	dir := filepath.Join(os.TempDir(), "kahuna-test-ports")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return true // no reservations to be had: the bind check alone
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(port)), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	reserved = append(reserved, f) // kept open, so locked, for the process's life
	return true
}

// reserved are the files whose locks hold this process's ports; portsMu
// guards it.
var reserved []*os.File

// CanListen reports whether addr can be bound right now (nothing listens on
// it). It binds and closes at once.
func CanListen(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// Spec is how to start one process.
type Spec struct {
	// Bin is the kahunad binary.
	Bin string
	// Args are the command-line arguments.
	Args []string
	// Dir is the working directory; empty means the test's.
	Dir string
	// Env is added to the environment. KAHUNA_* variables of the test's own
	// environment are never passed on, so a developer's shell settings do
	// not leak into the tests.
	Env []string
	// HTTPAddr is where the process serves HTTP, for WaitReady and Client.
	HTTPAddr string
}

// Process is a running (or exited) kahunad.
type Process struct {
	t        testing.TB
	cmd      *exec.Cmd
	httpAddr string
	out      *SyncBuffer
	done     chan struct{}
	state    *os.ProcessState
	client   *Client
}

// Start launches spec.Bin in its own process group. The test's cleanup
// kills the group if it still runs and, if the test failed, logs the
// process's output (stdout and stderr together).
func Start(t testing.TB, spec Spec) *Process {
	t.Helper()
	cmd := exec.Command(spec.Bin, spec.Args...)
	cmd.Dir = spec.Dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAHUNA_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, spec.Env...)
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", spec.Bin, err)
	}
	p := &Process{t: t, cmd: cmd, httpAddr: spec.HTTPAddr, out: out, done: make(chan struct{})}
	if spec.HTTPAddr != "" {
		p.client = NewClient("http://" + spec.HTTPAddr)
	}
	go func() {
		cmd.Wait() // the exit status is in ProcessState
		p.state = cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		p.killGroup()
		<-p.done
		if p.client != nil {
			p.client.Close()
		}
		if t.Failed() {
			t.Logf("output of kahunad %s (pid %d):\n%s", strings.Join(spec.Args, " "), cmd.Process.Pid, tail(out.String(), 64<<10))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is everything the process wrote so far (stdout and stderr).
func (p *Process) Output() string { return p.out.String() }

// Client talks to the process's HTTP address.
func (p *Process) Client() *Client {
	if p.client == nil {
		p.t.Fatal("the process was started without an HTTP address")
	}
	return p.client
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process itself.
func (p *Process) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("sending %v to pid %d: %v", sig, p.Pid(), err)
	}
}

func (p *Process) killGroup() {
	select {
	case <-p.done:
	default:
		// A negative pid addresses the process group Start created.
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// Kill is kill -9 of the process group; it returns once the process has
// exited.
func (p *Process) Kill() {
	p.killGroup()
	<-p.done
}

// Wait waits up to timeout for the process to exit and returns its exit
// code, or -1 if a signal ended it. It fails the test on timeout.
func (p *Process) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("kahunad (pid %d) did not exit within %v", p.Pid(), timeout)
	}
	return p.state.ExitCode()
}

// WaitReady polls GET /readyz until it answers 200. It returns an error if
// the process exits first or timeout passes.
func (p *Process) WaitReady(timeout time.Duration) error {
	if p.client == nil {
		return errors.New("the process was started without an HTTP address")
	}
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for {
		select {
		case <-p.done:
			return fmt.Errorf("kahunad exited with code %d before it was ready", p.state.ExitCode())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		status, body, err := p.client.Get(ctx, "/readyz")
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case status == 200:
			return nil
		default:
			last = fmt.Sprintf("HTTP %d %s", status, bytes.TrimSpace(body))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kahunad not ready after %v: %s", timeout, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Node is one kahunad's fixed identity across restarts: its data directory
// and addresses. Restarting a Node reuses both, the way an operator
// restarts a server.
type Node struct {
	Bin        string
	DataDir    string
	HTTPAddr   string
	RaftAddr   string
	GossipAddr string
	// Args are extra flags for every start.
	Args []string
	// Dir is the working directory (empty: the test's).
	Dir string
	// Wrap, if set, is a command that runs the binary, e.g. "ip netns
	// exec NS" to start it inside a network namespace.
	Wrap []string
}

// NewNode picks free addresses and a fresh data directory under
// t.TempDir().
func NewNode(t testing.TB, bin string) *Node {
	t.Helper()
	return &Node{
		Bin:        bin,
		DataDir:    t.TempDir(),
		HTTPAddr:   FreeAddr(t),
		RaftAddr:   FreeAddr(t),
		GossipAddr: FreeAddr(t),
	}
}

// Flags are the command-line flags that pin the node's data directory and
// addresses.
func (n *Node) Flags() []string {
	return []string{
		"--data-dir", n.DataDir,
		"--http-addr", n.HTTPAddr,
		"--raft-addr", n.RaftAddr,
		"--gossip-addr", n.GossipAddr,
	}
}

// Start launches the node with its flags, n.Args and extra; it does not
// wait for readiness.
func (n *Node) Start(t testing.TB, extra ...string) *Process {
	t.Helper()
	args := append(append(n.Flags(), n.Args...), extra...)
	bin := n.Bin
	if len(n.Wrap) > 0 {
		bin, args = n.Wrap[0], append(append(append([]string(nil), n.Wrap[1:]...), n.Bin), args...)
	}
	return Start(t, Spec{Bin: bin, Args: args, Dir: n.Dir, HTTPAddr: n.HTTPAddr})
}

// StartReady is Start followed by WaitReady; it fails the test if the node
// is not ready within 30 s.
func (n *Node) StartReady(t testing.TB, extra ...string) *Process {
	t.Helper()
	p := n.Start(t, extra...)
	if err := p.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return p
}

// Stop sends SIGTERM and fails the test unless the process exits with code
// 0 within 10 s. It first closes the client's idle connections: Go's
// transport can leave a connection it dialed but never used, which the
// server's HTTP shutdown waits on (see TestShutdownWithSilentConnection in
// cmd/kahunad).
func (p *Process) Stop() {
	p.t.Helper()
	if p.client != nil {
		p.client.Close()
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		p.t.Fatalf("kahunad exited with code %d after SIGTERM, want 0", code)
	}
}

// SyncBuffer is a bytes.Buffer safe for a writer and concurrent readers,
// such as a process's output that a test watches while it runs.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
