package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/client"
	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/server"
)

// The process tests run the real kahuna-cli binary, built once here (with
// the race detector when the tests have it), against one real single-node
// server in this process.
var (
	cliBin   string // the kahuna-cli binary
	endpoint string // the test server's URL
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kahuna-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cliBin = filepath.Join(dir, "bin", "kahuna-cli")
	built := make(chan error, 1)
	go func() { built <- testutil.BuildKahunad("github.com/kahuna-go/kahuna/cmd/kahuna-cli", cliBin) }()

	srv, err := server.New(server.Config{
		NodeID: "cli-test", DataDir: filepath.Join(dir, "data"),
		HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
		Logger: logging.Discard(), Raft: partition.FastRaftTimings(), Gossip: membership.FastTimings(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Close()
	endpoint = "http://" + srv.HTTPAddr()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ready, _ := srv.Ready(); ready {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "test server not ready")
			return 1
		}
	}
	if err := <-built; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// newClient is a Go client of the test server, for setting up and checking
// what the CLI did.
func newClient(t *testing.T, endpoints ...string) *client.Client {
	t.Helper()
	if len(endpoints) == 0 {
		endpoints = []string{endpoint}
	}
	c, err := client.New(client.Config{Endpoints: endpoints, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// runs numbers each run of a test (go test -count=N runs them N times
// against the one server).
var runs sync.Map // *testing.T → int64

var runCounter atomic.Int64

// name is a resource name unique to this run of the test.
func name(t *testing.T, suffix string) string {
	n, _ := runs.LoadOrStore(t, runCounter.Add(1))
	return fmt.Sprintf("%s-%d/%s", strings.ReplaceAll(t.Name(), "/", "."), n, suffix)
}

// result is how a finished process went.
type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %v\nstdout:\n%s\nstderr:\n%s", r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// env is the environment of a process under test: the test's own minus any
// KAHUNA_* (a developer's settings must not leak in), with a fresh home and
// history file, the binary on PATH, and the test server as the endpoint.
func env(t *testing.T, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAHUNA_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "GORACE=") {
			out = append(out, kv)
		}
	}
	home := t.TempDir()
	out = append(out,
		"HOME="+home,
		"PATH="+filepath.Dir(cliBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KAHUNA_ENDPOINTS="+endpoint,
		"KAHUNA_CLI_HISTORY="+filepath.Join(home, "history"),
		// A race-enabled binary otherwise sleeps a second before exiting
		// 0; a race it finds still makes it exit 66.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
	)
	return append(out, extra...)
}

// proc is a started process under test.
type proc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *testutil.SyncBuffer
	start          time.Time
	done           chan struct{}
	res            result
}

// startProc starts argv with stdin and env, in its own process group (so
// that signals sent to it are not mistaken for the terminal's, and cleanup
// can kill all it started).
func startProc(t *testing.T, stdin string, environ []string, argv ...string) *proc {
	t.Helper()
	p := &proc{t: t, stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = environ
	p.cmd.Stdin = strings.NewReader(stdin)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild left holding stdout must not keep Wait waiting.
	p.cmd.WaitDelay = 2 * time.Second
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.res = result{stdout: p.stdout.String(), stderr: p.stderr.String(), code: p.cmd.ProcessState.ExitCode(), took: time.Since(p.start)}
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) && !errors.Is(err, exec.ErrWaitDelay) {
			p.res.code = -100
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	return p
}

// wait waits for the process to exit, failing the test after timeout.
func (p *proc) wait(timeout time.Duration) result {
	p.t.Helper()
	select {
	case <-p.done:
		return p.res
	case <-time.After(timeout):
		p.t.Fatalf("%v still running after %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, timeout, p.stdout, p.stderr)
		return result{}
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// cli runs kahuna-cli with args and stdin to the end.
func cli(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return startProc(t, stdin, env(t), append([]string{cliBin}, args...)...).wait(30 * time.Second)
}

// sh runs a shell script, with kahuna-cli on PATH, to the end.
func sh(t *testing.T, script string, extraEnv ...string) result {
	t.Helper()
	return startProc(t, "", env(t, extraEnv...), "sh", "-c", script).wait(30 * time.Second)
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
