package suite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos/nemesis"
	"github.com/kahuna-go/kahuna/internal/netlab"
	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// processes adapts a cluster of real kahunad processes to Target: kill -9
// of the process group, SIGSTOP/SIGCONT for pauses, and, when the nodes run
// in network namespaces (netlab), network partitions. There is no operator
// endpoint for a leadership transfer: leader churn runs in-process.
//
// Its members can change (nemesis.Dynamic): a node that joins is a new
// kahunad with a new ID (n4, n5, …), an empty data directory and only
// --join; with namespaces it takes a host no member uses, so the lab has
// room for the most members the run may have plus one (a replacement
// joins before the node it replaces leaves).
type processes struct {
	t        *testing.T
	store    partition.LogStore
	parts    int
	deadNode time.Duration // --dead-node-timeout of every node; 0: kahunad's default
	lab      *netlab.Lab   // nil: every node on 127.0.0.1, no partitions
	web      web
	sec      *security // nil: no TLS, no tokens

	mu       sync.Mutex
	nodes    []*procNode
	hostUsed []bool
}

// procNode is one kahunad, for its whole life.
type procNode struct {
	id      string
	node    *testutil.Node
	host    int // netlab host, -1 without one
	proc    *testutil.Process
	retired bool
	// original nodes formed the cluster; the others joined it.
	original bool
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// startProcesses forms a cluster of size kahunad processes. room is the
// most nodes that may run at once (netlab hosts); deadNode, if not zero,
// is every node's --dead-node-timeout.
func startProcesses(t *testing.T, size, room int, netns, secure bool, store partition.LogStore, deadNode time.Duration) *processes {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kahuna-chaos-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kahunad")
		buildErr = testutil.BuildKahunad("github.com/kahuna-go/kahuna/cmd/kahunad", binPath)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	// One partition per node of the formed cluster: kahunad's default.
	p := &processes{t: t, store: store, parts: size, deadNode: deadNode, web: newWeb(nil, "")}
	if secure {
		p.sec = newSecurity(t)
		p.web = p.sec.web(t)
	}
	t.Cleanup(func() { p.web.close() })
	if netns {
		if err := netlab.Available(); err != nil {
			t.Fatal(err)
		}
		lab, err := netlab.New(max(size, room))
		if err != nil {
			t.Fatal(err)
		}
		p.lab = lab
		p.hostUsed = make([]bool, len(lab.Hosts()))
		// Registered before the processes start: runs after they are killed.
		t.Cleanup(func() {
			if err := lab.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	var joins []string
	for i := range size {
		n, err := p.newNode(i)
		if err != nil {
			t.Fatal(err)
		}
		n.original = true
		p.nodes = append(p.nodes, n)
		joins = append(joins, n.node.GossipAddr)
	}
	for _, n := range p.nodes {
		n.node.Args = []string{"--node-id", n.id, "--bootstrap-expect", fmt.Sprint(size), "--join", strings.Join(joins, ","), "--log-store", string(store)}
		n.node.Args = append(n.node.Args, p.extraFlags(n)...)
		n.proc = n.node.Start(t)
	}
	if err := p.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	return p
}

// newNode makes node i's identity: its ID, data directory and addresses
// (a free lab host's, with namespaces). Called with mu held, or before
// anything runs.
func (p *processes) newNode(i int) (*procNode, error) {
	n := &procNode{id: fmt.Sprintf("n%d", i+1), node: testutil.NewNode(p.t, binPath), host: -1}
	if p.lab != nil {
		for h, used := range p.hostUsed {
			if !used {
				n.host = h
				break
			}
		}
		if n.host < 0 {
			return nil, fmt.Errorf("no free network namespace for %s: all %d are in use", n.id, len(p.hostUsed))
		}
		p.hostUsed[n.host] = true
		ip := p.lab.Hosts()[n.host].IP
		n.node.HTTPAddr, n.node.RaftAddr, n.node.GossipAddr = ip+":8082", ip+":8083", ip+":7946"
		n.node.Wrap = p.lab.Command(n.host)
	}
	return n, nil
}

// extraFlags are node n's flags beyond its identity and --join: the
// dead-node timeout, and the security flags of a secure cluster.
func (p *processes) extraFlags(n *procNode) []string {
	var out []string
	if p.deadNode != 0 {
		out = append(out, "--dead-node-timeout", p.deadNode.String())
	}
	if p.sec != nil {
		ip := ""
		if n.host >= 0 {
			ip = p.lab.Hosts()[n.host].IP
		}
		out = append(out, p.sec.args(n.id, ip)...)
	}
	return out
}

func (p *processes) node(i int) *procNode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nodes[i]
}

func (p *processes) proc(i int) *testutil.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nodes[i].proc
}

func (p *processes) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.nodes)
}

func (p *processes) Partitions() int { return p.parts }

func (p *processes) Members() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for i, n := range p.nodes {
		if !n.retired {
			out = append(out, i)
		}
	}
	return out
}

func (p *processes) ID(i int) string { return p.node(i).id }

// Kill kills node i's process, which must still run: a member whose
// kahunad exited by itself is a failure of its own, and restarting it
// would hide it.
func (p *processes) Kill(i int) error {
	if err := p.exited(i); err != nil {
		return err
	}
	p.proc(i).Kill()
	return nil
}

// exited is ErrExited if node i's process has ended without the harness
// ending it.
func (p *processes) exited(i int) error {
	proc := p.proc(i)
	select {
	case <-proc.Done():
		return fmt.Errorf("%s: %w: %s", p.ID(i), nemesis.ErrExited, lastLine(proc.Output()))
	default:
		return nil
	}
}

// Restart starts a killed node again on its data directory, with --join
// naming the members of now (those it was started with may be gone).
func (p *processes) Restart(i int) error {
	select {
	case <-p.proc(i).Done():
	default:
		return fmt.Errorf("%s is still running", p.ID(i))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.nodes[i]
	if n.retired {
		return fmt.Errorf("%s left the cluster", n.id)
	}
	p.setJoin(n)
	n.proc = n.node.Start(p.t)
	return nil
}

// setJoin points n's --join at the gossip addresses of the other members.
// Called with mu held.
func (p *processes) setJoin(n *procNode) {
	var joins []string
	for _, m := range p.nodes {
		if m != n && !m.retired {
			joins = append(joins, m.node.GossipAddr)
		}
	}
	args := n.node.Args
	for k := 0; k+1 < len(args); k++ {
		if args[k] == "--join" {
			args[k+1] = strings.Join(joins, ",")
		}
	}
}

func (p *processes) Pause(i int) error { return p.signal(i, syscall.SIGSTOP) }

func (p *processes) Resume(i int) error { return p.signal(i, syscall.SIGCONT) }

// signal sends sig to node i's process, which must still run: a member
// whose kahunad exited by itself is a failure of its own.
func (p *processes) signal(i int, sig syscall.Signal) error {
	if err := p.exited(i); err != nil {
		return err
	}
	return syscall.Kill(p.proc(i).Pid(), sig)
}

// lastLine is the last line of a process's output.
func lastLine(out string) string {
	out = strings.TrimSpace(out)
	if k := strings.LastIndexByte(out, '\n'); k >= 0 {
		out = out[k+1:]
	}
	return out
}

// Cut blocks the pairs of nodes cut says, mapped to their lab hosts; a
// host whose node left, or that no node uses yet, is cut from nobody.
func (p *processes) Cut(cut func(a, b int) bool) error {
	if p.lab == nil {
		return nemesis.ErrUnsupported
	}
	if cut == nil {
		return p.lab.Cut(nil)
	}
	p.mu.Lock()
	onHost := make([]int, len(p.hostUsed))
	for h := range onHost {
		onHost[h] = -1
	}
	for i, n := range p.nodes {
		if !n.retired && n.host >= 0 {
			onHost[n.host] = i
		}
	}
	p.mu.Unlock()
	return p.lab.Cut(func(a, b int) bool {
		return onHost[a] >= 0 && onHost[b] >= 0 && cut(onHost[a], onHost[b])
	})
}

func (p *processes) TransferLeadership(int) error { return nemesis.ErrUnsupported }

// SlowDisk is not supported: nothing here can slow a real disk.
func (p *processes) SlowDisk(int, time.Duration) error { return nemesis.ErrUnsupported }

// Leader is the member that says it leads partition part. Each member is
// asked about itself (others may still name a leader that is gone); a
// paused or dead node does not answer within the short timeout.
func (p *processes) Leader(part int) int {
	for _, i := range p.Members() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c := p.web.clientOf(p.node(i).node.HTTPAddr)
		st, err := c.Status(ctx)
		cancel()
		if err == nil && part < len(st.Partitions) && st.Partitions[part].State == "leader" {
			return i
		}
	}
	return -1
}

// Endpoints are the members' URLs.
func (p *processes) Endpoints() []string {
	var out []string
	for _, i := range p.Members() {
		out = append(out, p.web.url(p.node(i).node.HTTPAddr))
	}
	return out
}

func (p *processes) WaitReady(timeout time.Duration) error {
	return p.web.waitReady(p.Endpoints(), timeout)
}

// Join starts a new kahunad with an empty data directory and only --join
// (the members' gossip addresses): no --bootstrap-expect, no --log-store,
// both learned from the cluster.
func (p *processes) Join() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := len(p.nodes)
	n, err := p.newNode(i)
	if err != nil {
		return -1, err
	}
	n.node.Args = append([]string{"--node-id", n.id, "--join", ""}, p.extraFlags(n)...)
	p.nodes = append(p.nodes, n)
	p.setJoin(n)
	n.proc = n.node.Start(p.t)
	return i, nil
}

func (p *processes) Wipe(i int) error {
	n := p.node(i)
	select {
	case <-n.proc.Done():
	default:
		return fmt.Errorf("%s is still running", n.id)
	}
	return os.RemoveAll(n.node.DataDir)
}

// Retire kills the node for good, frees its namespace and deletes its
// data: nothing starts it again.
func (p *processes) Retire(i int) error {
	n := p.node(i)
	n.proc.Kill()
	p.mu.Lock()
	defer p.mu.Unlock()
	n.retired = true
	if n.host >= 0 {
		p.hostUsed[n.host] = false
	}
	return os.RemoveAll(n.node.DataDir)
}

func (p *processes) RemoveNode(via int, id string, timeout time.Duration) (int, string, error) {
	return p.web.removeNode(p.node(via).node.HTTPAddr, id, timeout)
}

func (p *processes) Config(i int) ([]nemesis.PartitionConfig, error) {
	return p.web.configOf(p.node(i).node.HTTPAddr)
}

func (p *processes) Ready(i int) (bool, string, error) {
	n := p.node(i)
	select {
	case <-n.proc.Done():
		return false, "", errors.New("the process has exited")
	default:
	}
	return p.web.readyz(n.node.HTTPAddr)
}

// StartRemoved starts the removed node on its old data directory; it must
// exit with an error before it serves.
func (p *processes) StartRemoved(i int, timeout time.Duration) (bool, string, error) {
	n := p.node(i)
	select {
	case <-n.proc.Done():
	default:
		return false, "", fmt.Errorf("%s is still running", n.id)
	}
	p.mu.Lock()
	p.setJoin(n)
	n.proc = n.node.Start(p.t)
	proc := n.proc
	p.mu.Unlock()
	select {
	case <-proc.Done():
		return true, lastLine(proc.Output()), nil
	case <-time.After(timeout):
		ok, reason, err := p.web.readyz(n.node.HTTPAddr)
		proc.Kill()
		return false, fmt.Sprintf("still running after %v (ready %v, %q, %v)", timeout, ok, reason, err), nil
	}
}

func (p *processes) DeadNodeTimeout() time.Duration {
	if p.deadNode == 0 {
		return 30 * time.Second // kahunad's default
	}
	return p.deadNode
}
