package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
	"github.com/kahuna-go/kahuna/pkg/leaders"
	"github.com/kahuna-go/kahuna/pkg/placement"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// routeRefresh is how often a routed run re-reads the partition leaders.
const routeRefresh = time.Second

// leaderRoutes sends each key's requests to the node leading its partition,
// as a leader-aware client does, so that no node has to forward them.
type leaderRoutes struct {
	status *client.Client // reads the cluster status; not on the hot path
	addrs  []string       // host:port of each endpoint, as nodes advertise theirs
	partOf []int32        // partition of each key, computed once
	table  atomic.Pointer[leaders.Map]
}

// newLeaderRoutes reads the cluster status and maps every key of the run.
func newLeaderRoutes(ctx context.Context, cfg Config, addrs []string) (*leaderRoutes, error) {
	c, err := client.New(client.Config{Endpoints: cfg.Endpoints, AttemptTimeout: cfg.Timeout, NoLeaderRouting: true,
		TLS: cfg.TLS, Token: cfg.Token})
	if err != nil {
		return nil, err
	}
	r := &leaderRoutes{status: c, addrs: addrs}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	m, err := r.read(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("routing to leaders: no cluster status: %w", err)
	}
	if m.Partitions() == 0 {
		c.Close()
		return nil, errors.New("routing to leaders: the cluster status lists no partitions")
	}
	r.table.Store(m)
	r.partOf = make([]int32, cfg.Keys)
	for k := range r.partOf {
		r.partOf[k] = int32(placement.Partition(cfg.KeyPrefix+strconv.Itoa(k), m.Partitions()))
	}
	return r, nil
}

// read fetches the cluster status from the first node that answers and
// maps it onto the endpoints.
func (r *leaderRoutes) read(ctx context.Context) (*leaders.Map, error) {
	st, err := r.status.ClusterStatus(ctx)
	if err != nil {
		return nil, err
	}
	if st.Type != wire.Got {
		return nil, fmt.Errorf("%s answered type %d", st.ServedFrom, st.Type)
	}
	return leaders.FromStatus(st, r.addrs), nil
}

// follow refreshes the map every interval until ctx ends, then releases
// the status client; a failed read keeps the old map, which at worst costs
// forwarded requests.
func (r *leaderRoutes) follow(ctx context.Context, every time.Duration, log *slog.Logger) {
	defer r.status.Close()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		m, err := r.read(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Debug("leader map not refreshed", "err", err)
			}
			continue
		}
		// The partition count is fixed when a cluster is created; a status
		// with another count is from some other cluster and is ignored.
		if m.Partitions() == r.table.Load().Partitions() {
			r.table.Store(m)
		}
	}
}

// lookup returns the endpoint and node that key's requests go to.
func (r *leaderRoutes) lookup(key int) (endpoint int, node string, ok bool) {
	return r.table.Load().ForPartition(int(r.partOf[key]))
}
