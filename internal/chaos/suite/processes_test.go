package suite

import (
	"context"
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
type processes struct {
	t     *testing.T
	nodes []*testutil.Node
	ids   []string
	lab   *netlab.Lab // nil: every node on 127.0.0.1, no partitions

	mu    sync.Mutex
	procs []*testutil.Process
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func startProcesses(t *testing.T, size int, netns bool, store partition.LogStore) *processes {
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
	p := &processes{t: t}
	if netns {
		if err := netlab.Available(); err != nil {
			t.Fatal(err)
		}
		lab, err := netlab.New(size)
		if err != nil {
			t.Fatal(err)
		}
		p.lab = lab
		// Registered before the processes start: runs after they are killed.
		t.Cleanup(func() {
			if err := lab.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	var joins []string
	for i := range size {
		n := testutil.NewNode(t, binPath)
		if p.lab != nil {
			ip := p.lab.Hosts()[i].IP
			n.HTTPAddr, n.RaftAddr, n.GossipAddr = ip+":8082", ip+":8083", ip+":7946"
			n.Wrap = p.lab.Command(i)
		}
		p.nodes = append(p.nodes, n)
		p.ids = append(p.ids, fmt.Sprintf("n%d", i+1))
		joins = append(joins, n.GossipAddr)
	}
	for i, n := range p.nodes {
		n.Args = []string{"--node-id", p.ids[i], "--bootstrap-expect", fmt.Sprint(size), "--join", strings.Join(joins, ","), "--log-store", string(store)}
		p.procs = append(p.procs, n.Start(t))
	}
	if err := p.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *processes) proc(i int) *testutil.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[i]
}

func (p *processes) Size() int       { return len(p.nodes) }
func (p *processes) Partitions() int { return len(p.nodes) } // kahunad's default: one per node

func (p *processes) Kill(i int) error {
	p.proc(i).Kill()
	return nil
}

func (p *processes) Restart(i int) error {
	select {
	case <-p.proc(i).Done():
	default:
		return fmt.Errorf("%s is still running", p.ids[i])
	}
	proc := p.nodes[i].Start(p.t)
	p.mu.Lock()
	p.procs[i] = proc
	p.mu.Unlock()
	return nil
}

func (p *processes) Pause(i int) error {
	return syscall.Kill(p.proc(i).Pid(), syscall.SIGSTOP)
}

func (p *processes) Resume(i int) error {
	return syscall.Kill(p.proc(i).Pid(), syscall.SIGCONT)
}

func (p *processes) Cut(cut func(a, b int) bool) error {
	if p.lab == nil {
		return nemesis.ErrUnsupported
	}
	return p.lab.Cut(cut)
}

func (p *processes) TransferLeadership(int) error { return nemesis.ErrUnsupported }

// SlowDisk is not supported: nothing here can slow a real disk.
func (p *processes) SlowDisk(int, time.Duration) error { return nemesis.ErrUnsupported }

// Leader is the node that says it leads partition part. Each node is asked
// about itself (others may still name a leader that is gone); a paused or
// dead node does not answer within the short timeout.
func (p *processes) Leader(part int) int {
	for i := range p.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c := testutil.NewClient("http://" + p.nodes[i].HTTPAddr)
		st, err := c.Status(ctx)
		cancel()
		c.Close()
		if err == nil && part < len(st.Partitions) && st.Partitions[part].State == "leader" {
			return i
		}
	}
	return -1
}

func (p *processes) Endpoints() []string {
	var out []string
	for _, n := range p.nodes {
		out = append(out, "http://"+n.HTTPAddr)
	}
	return out
}

func (p *processes) WaitReady(timeout time.Duration) error {
	return waitReady(p.Endpoints(), timeout)
}
