package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// Binaries are the servers under comparison.
type Binaries struct {
	Kahunad, Etcd, Redis string
}

// closingLocker is a Locker whose client holds connections.
type closingLocker interface {
	Locker
	Close()
}

// Setup is one system to measure: how to start it and how its users lock.
type Setup struct {
	// Name labels the system in progress messages.
	Name string
	// start brings the servers up in dir and returns once every node is
	// ready; the cluster stops with the context's cancel.
	start func(ctx context.Context, b Binaries, dir string, logs io.Writer) (*cluster, error)
	// runs are the measurements made on one start, in order; each returns
	// its locker.
	runs []measurement
}

// measurement is one measured workload on a started cluster.
type measurement struct {
	name   string
	locker func(c *cluster, workers int) (closingLocker, error)
}

// cluster is a started system.
type cluster struct {
	procs     []*proc
	endpoints []string // client addresses, in node order
}

func (c *cluster) stop() {
	for _, p := range c.procs {
		p.stop()
	}
}

// proc is one server process; its output goes to the run's log.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(ctx context.Context, logs io.Writer, name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop asks the process to end and kills it after 10 s.
func (p *proc) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// freePort returns a loopback port nothing listened on a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	out := make([]int, 0, n)
	seen := map[int]bool{}
	for len(out) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// waitFor polls ready until it holds, a process exits, or 60 s pass.
func waitFor(ctx context.Context, c *cluster, what string, ready func(ctx context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		for _, p := range c.procs {
			if p.exited() {
				return fmt.Errorf("%s: a server exited during start-up (see the log)", what)
			}
		}
		if ready(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready after 60 s (see the log)", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitEveryEndpoint waits until GET path on every endpoint answers 200
// with want in its body; on failure it stops the cluster.
func (c *cluster) waitEveryEndpoint(ctx context.Context, what, path, want string) error {
	err := waitFor(ctx, c, what, func(ctx context.Context) bool {
		for _, e := range c.endpoints {
			if !httpOK(ctx, e+path, want) {
				return false
			}
		}
		return true
	})
	if err != nil {
		c.stop()
	}
	return err
}

// httpOK reports whether GET url answers 200 and its body contains want.
func httpOK(ctx context.Context, url, want string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode == http.StatusOK && strings.Contains(string(b), want)
}

// startKahuna starts n kahunad nodes with their default settings.
func startKahuna(n int) func(ctx context.Context, b Binaries, dir string, logs io.Writer) (*cluster, error) {
	return func(ctx context.Context, b Binaries, dir string, logs io.Writer) (*cluster, error) {
		ports, err := freePorts(3 * n)
		if err != nil {
			return nil, err
		}
		var joins []string
		for i := range n {
			joins = append(joins, "127.0.0.1:"+strconv.Itoa(ports[3*i+2]))
		}
		c := &cluster{}
		for i := range n {
			args := []string{
				"--node-id", fmt.Sprint("k", i+1),
				"--data-dir", filepath.Join(dir, fmt.Sprint("k", i+1)),
				"--http-addr", "127.0.0.1:" + strconv.Itoa(ports[3*i]),
				"--raft-addr", "127.0.0.1:" + strconv.Itoa(ports[3*i+1]),
				"--gossip-addr", joins[i],
				"--log-level", "warn",
			}
			if n > 1 {
				args = append(args, "--bootstrap-expect", strconv.Itoa(n), "--join", strings.Join(joins, ","))
			}
			p, err := startProc(ctx, logs, b.Kahunad, args...)
			if err != nil {
				c.stop()
				return nil, err
			}
			c.procs = append(c.procs, p)
			c.endpoints = append(c.endpoints, "http://127.0.0.1:"+strconv.Itoa(ports[3*i]))
		}
		if err := c.waitEveryEndpoint(ctx, "kahuna", "/readyz", ""); err != nil {
			return nil, err
		}
		return c, nil
	}
}

func kahunaRun(name string, d client.Durability, leaderRouting bool) measurement {
	return measurement{name: name, locker: func(c *cluster, _ int) (closingLocker, error) {
		return newKahunaLocker(c.endpoints, d, leaderRouting)
	}}
}

// startEtcd starts an n-member etcd cluster with etcd's defaults (every
// write fsynced by a quorum, as Kahuna's persistent locks are).
func startEtcd(n int) func(ctx context.Context, b Binaries, dir string, logs io.Writer) (*cluster, error) {
	return func(ctx context.Context, b Binaries, dir string, logs io.Writer) (*cluster, error) {
		ports, err := freePorts(2 * n)
		if err != nil {
			return nil, err
		}
		var initial []string
		for i := range n {
			initial = append(initial, fmt.Sprintf("e%d=http://127.0.0.1:%d", i+1, ports[2*i+1]))
		}
		c := &cluster{}
		for i := range n {
			clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[2*i])
			peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[2*i+1])
			p, err := startProc(ctx, logs, b.Etcd,
				"--name", fmt.Sprint("e", i+1),
				"--data-dir", filepath.Join(dir, fmt.Sprint("e", i+1)),
				"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
				"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
				"--initial-cluster", strings.Join(initial, ","),
				"--initial-cluster-state", "new", "--initial-cluster-token", "kahuna-bench",
				"--logger", "zap", "--log-level", "warn")
			if err != nil {
				c.stop()
				return nil, err
			}
			c.procs = append(c.procs, p)
			c.endpoints = append(c.endpoints, clientURL)
		}
		if err := c.waitEveryEndpoint(ctx, "etcd", "/health", `"health":"true"`); err != nil {
			return nil, err
		}
		return c, nil
	}
}

func etcdRun(name string) measurement {
	return measurement{name: name, locker: func(c *cluster, _ int) (closingLocker, error) { return newEtcdLocker(c.endpoints) }}
}

// startRedis starts one redis-server; with fsync, every write is appended
// to its AOF and fsynced before the reply, without it nothing is written.
func startRedis(fsync bool) func(ctx context.Context, b Binaries, dir string, logs io.Writer) (*cluster, error) {
	return func(ctx context.Context, b Binaries, dir string, logs io.Writer) (*cluster, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, err
		}
		args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--daemonize", "no", "--loglevel", "warning"}
		if fsync {
			args = append(args, "--appendonly", "yes", "--appendfsync", "always")
		} else {
			args = append(args, "--appendonly", "no")
		}
		p, err := startProc(ctx, logs, b.Redis, args...)
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		c := &cluster{procs: []*proc{p}, endpoints: []string{addr}}
		probe := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
		defer probe.Close()
		err = waitFor(ctx, c, "redis", func(ctx context.Context) bool { return probe.Ping(ctx).Err() == nil })
		if err != nil {
			c.stop()
			return nil, err
		}
		return c, nil
	}
}

func redisRun(name string) measurement {
	return measurement{name: name, locker: func(c *cluster, workers int) (closingLocker, error) {
		return newRedisLocker(c.endpoints[0], workers), nil
	}}
}

// Setups are the systems, in the order each round measures them.
func Setups() []Setup {
	return []Setup{
		{Name: "kahuna, 1 node", start: startKahuna(1), runs: []measurement{
			kahunaRun("kahuna 1 node persistent", client.Persistent, true),
			kahunaRun("kahuna 1 node ephemeral", client.Ephemeral, true),
		}},
		{Name: "etcd, 1 node", start: startEtcd(1), runs: []measurement{etcdRun("etcd 1 node")}},
		{Name: "redis, fsync always", start: startRedis(true), runs: []measurement{redisRun("redis fsync always")}},
		{Name: "redis, no fsync", start: startRedis(false), runs: []measurement{redisRun("redis no fsync")}},
		{Name: "kahuna, 3 nodes", start: startKahuna(3), runs: []measurement{
			kahunaRun("kahuna 3 nodes persistent", client.Persistent, true),
			kahunaRun("kahuna 3 nodes persistent, forwarded", client.Persistent, false),
			kahunaRun("kahuna 3 nodes ephemeral", client.Ephemeral, true),
		}},
		{Name: "etcd, 3 nodes", start: startEtcd(3), runs: []measurement{etcdRun("etcd 3 nodes")}},
	}
}

// Select keeps the setups whose name contains one of the comma-separated
// words of only; an empty only keeps all.
func Select(setups []Setup, only string) []Setup {
	if strings.TrimSpace(only) == "" {
		return setups
	}
	var out []Setup
	for _, s := range setups {
		for _, w := range strings.Split(only, ",") {
			if w = strings.TrimSpace(w); w != "" && strings.Contains(s.Name, w) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

var errNoBinary = errors.New("binary not found")

// lookBinaries checks every server can be run.
func lookBinaries(b Binaries) error {
	var errs []error
	for _, name := range []string{b.Kahunad, b.Etcd, b.Redis} {
		if _, err := exec.LookPath(name); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s", errNoBinary, name))
		}
	}
	return errors.Join(errs...)
}
