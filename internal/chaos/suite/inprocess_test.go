package suite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/internal/chaos/nemesis"
	"github.com/kahuna-go/kahuna/internal/testcluster"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/server"
)

// inProcess adapts a testcluster (full servers in this process, faults
// through the transport's partition hooks) to Target. It cannot pause a
// node: every node shares this process. Its members can change
// (nemesis.Dynamic): a node that joins is a new server with a new ID
// (n4, n5, …), its own ports and an empty data directory.
type inProcess struct {
	c          *testcluster.Cluster
	web        web // plain HTTP
	partitions int
	deadNode   time.Duration

	mu        sync.Mutex
	diskDelay map[int]*atomic.Int64 // per node, for SlowDisk
	retired   map[int]bool
}

// startInProcess starts an in-process cluster whose log stores can be
// slowed; deadNode is every node's DeadNodeTimeout (0: never).
func startInProcess(t *testing.T, nodes int, store partition.LogStore, deadNode time.Duration) *inProcess {
	p := &inProcess{web: newWeb(nil, ""), partitions: nodes, deadNode: deadNode, diskDelay: map[int]*atomic.Int64{}, retired: map[int]bool{}}
	p.c = testcluster.Start(t, testcluster.Options{Nodes: nodes, LogStore: store, Mutate: func(i int, cfg *server.Config) {
		delay := p.delay(i)
		cfg.WrapLogStore = func(_ int, s raft.LogStore) raft.LogStore {
			return slowStore{LogStore: s, delay: delay}
		}
		cfg.DeadNodeTimeout = deadNode
	}})
	// The cluster's failure report shows the end of each node's log;
	// keep all of them.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir, err := os.MkdirTemp("", "kahuna-chaos-logs-")
		if err != nil {
			return
		}
		for i := range p.c.Len() {
			_ = os.WriteFile(filepath.Join(dir, p.ID(i)+".log"), []byte(p.c.Logs(i)), 0o644)
		}
		t.Logf("every node's log: %s", dir)
	})
	return p
}

func (p *inProcess) delay(i int) *atomic.Int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.diskDelay[i]
	if d == nil {
		d = &atomic.Int64{}
		p.diskDelay[i] = d
	}
	return d
}

func (p *inProcess) SlowDisk(i int, d time.Duration) error {
	p.delay(i).Store(int64(d))
	return nil
}

func (p *inProcess) Size() int       { return p.c.Len() }
func (p *inProcess) Partitions() int { return p.partitions }

func (p *inProcess) Members() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for i := range p.c.Len() {
		if !p.retired[i] {
			out = append(out, i)
		}
	}
	return out
}

func (p *inProcess) ID(i int) string { return p.c.Node(i).ID }

func (p *inProcess) Kill(i int) error {
	p.c.Kill(i)
	return nil
}

// Restart starts node i again, joining through the members of now.
func (p *inProcess) Restart(i int) error {
	p.c.SetJoin(i, p.gossip(i))
	return p.c.TryStartNode(i)
}

// gossip lists the gossip addresses of the members other than i.
func (p *inProcess) gossip(i int) []string {
	var out []string
	for _, j := range p.Members() {
		if j != i {
			out = append(out, p.c.Node(j).Gossip)
		}
	}
	return out
}

func (p *inProcess) Pause(int) error  { return nemesis.ErrUnsupported }
func (p *inProcess) Resume(int) error { return nemesis.ErrUnsupported }

func (p *inProcess) Cut(cut func(a, b int) bool) error {
	if cut == nil {
		cut = func(a, b int) bool { return false }
	}
	p.c.Cut(cut)
	return nil
}

func (p *inProcess) Leader(part int) int { return p.c.LeaderIndex(part) }

func (p *inProcess) TransferLeadership(part int) error {
	i := p.c.LeaderIndex(part)
	if i < 0 {
		return fmt.Errorf("partition %d has no leader", part)
	}
	srv := p.c.Node(i).Server()
	if srv == nil {
		return fmt.Errorf("partition %d: leader n%d is down", part, i+1)
	}
	return srv.Partitions().Groups()[part].TransferLeadership("")
}

// Endpoints are the members' URLs.
func (p *inProcess) Endpoints() []string {
	var out []string
	for _, i := range p.Members() {
		out = append(out, p.web.url(p.c.Node(i).HTTP))
	}
	return out
}

func (p *inProcess) WaitReady(timeout time.Duration) error {
	return p.web.waitReady(p.Endpoints(), timeout)
}

// Join starts a server with a new ID that joins the cluster.
func (p *inProcess) Join() (int, error) {
	return p.c.Join(fmt.Sprintf("n%d", p.c.Len()+1), nil)
}

func (p *inProcess) Wipe(i int) error {
	if p.c.Node(i).Server() != nil {
		return fmt.Errorf("%s is still running", p.ID(i))
	}
	return os.RemoveAll(p.c.Node(i).Dir)
}

// Retire kills the node for good and deletes its data: nothing starts
// it again.
func (p *inProcess) Retire(i int) error {
	p.c.Kill(i)
	p.mu.Lock()
	p.retired[i] = true
	p.mu.Unlock()
	return os.RemoveAll(p.c.Node(i).Dir)
}

func (p *inProcess) RemoveNode(via int, id string, timeout time.Duration) (int, string, error) {
	return p.web.removeNode(p.c.Node(via).HTTP, id, timeout)
}

func (p *inProcess) Config(i int) ([]nemesis.PartitionConfig, error) {
	if p.c.Node(i).Server() == nil {
		return nil, errors.New("down")
	}
	return p.web.configOf(p.c.Node(i).HTTP)
}

func (p *inProcess) Ready(i int) (bool, string, error) {
	if p.c.Node(i).Server() == nil {
		return false, "", errors.New("down")
	}
	return p.web.readyz(p.c.Node(i).HTTP)
}

// StartRemoved starts the removed node on its old data directory: the
// server must refuse to start.
func (p *inProcess) StartRemoved(i int, _ time.Duration) (bool, string, error) {
	p.c.SetJoin(i, p.gossip(i))
	err := p.c.StartOnce(i)
	if err == nil {
		p.c.Kill(i)
		return false, "the server started", nil
	}
	if !errors.Is(err, server.ErrRemoved) {
		return false, "", err
	}
	msg := err.Error()
	if k := strings.IndexByte(msg, ':'); k > 0 {
		msg = msg[:k]
	}
	return true, msg, nil
}

func (p *inProcess) DeadNodeTimeout() time.Duration { return p.deadNode }
