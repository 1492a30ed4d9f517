package suite

import (
	"fmt"
	"net/http"
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
// node: every node shares this process.
type inProcess struct {
	c          *testcluster.Cluster
	partitions int
	diskDelay  []atomic.Int64 // per node, for SlowDisk
}

// startInProcess starts an in-process cluster whose log stores can be
// slowed.
func startInProcess(t *testing.T, nodes int, store partition.LogStore) *inProcess {
	p := &inProcess{partitions: nodes, diskDelay: make([]atomic.Int64, nodes)}
	p.c = testcluster.Start(t, testcluster.Options{Nodes: nodes, LogStore: store, Mutate: func(i int, cfg *server.Config) {
		cfg.WrapLogStore = func(_ int, s raft.LogStore) raft.LogStore {
			return slowStore{LogStore: s, delay: &p.diskDelay[i]}
		}
	}})
	return p
}

func (p *inProcess) SlowDisk(i int, d time.Duration) error {
	p.diskDelay[i].Store(int64(d))
	return nil
}

func (p *inProcess) Size() int       { return len(p.c.Nodes) }
func (p *inProcess) Partitions() int { return p.partitions }

func (p *inProcess) Kill(i int) error {
	p.c.Kill(i)
	return nil
}

func (p *inProcess) Restart(i int) error { return p.c.TryStartNode(i) }

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
	srv := p.c.Nodes[i].Server()
	if srv == nil {
		return fmt.Errorf("partition %d: leader n%d is down", part, i+1)
	}
	return srv.Partitions().Groups()[part].TransferLeadership("")
}

func (p *inProcess) Endpoints() []string {
	var out []string
	for _, n := range p.c.Nodes {
		out = append(out, "http://"+n.HTTP)
	}
	return out
}

func (p *inProcess) WaitReady(timeout time.Duration) error {
	return waitReady(p.Endpoints(), timeout)
}

// waitReady polls every endpoint's /readyz until all answer 200.
func waitReady(endpoints []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for _, e := range endpoints {
		for {
			resp, err := client.Get(e + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %v (last: %v)", e, timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
