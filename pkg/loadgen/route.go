package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kahuna-go/kahuna/pkg/leaders"
	"github.com/kahuna-go/kahuna/pkg/placement"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// routeRefresh is how often a routed run re-reads the partition leaders.
const routeRefresh = time.Second

// leaderRoutes sends each key's requests to the node leading its partition,
// as a leader-aware client does, so that no node has to forward them.
type leaderRoutes struct {
	endpoints []string
	addrs     []string // host:port of each endpoint, as nodes advertise theirs
	http      *http.Client
	partOf    []int32 // partition of each key, computed once
	table     atomic.Pointer[leaders.Map]
	next      int // endpoint the next refresh asks; only the refresher touches it
}

// newLeaderRoutes reads the cluster status and maps every key of the run.
func newLeaderRoutes(ctx context.Context, cfg Config, addrs []string) (*leaderRoutes, error) {
	r := &leaderRoutes{endpoints: cfg.Endpoints, addrs: addrs, http: &http.Client{Timeout: cfg.Timeout}}
	var st *wire.ClusterStatus
	var errs []error
	for range r.endpoints {
		var err error
		if st, err = r.fetch(ctx); err == nil {
			break
		}
		errs = append(errs, err)
	}
	if st == nil {
		return nil, fmt.Errorf("routing to leaders: no cluster status: %w", errors.Join(errs...))
	}
	m := leaders.FromStatus(st, addrs)
	if m.Partitions() == 0 {
		return nil, errors.New("routing to leaders: the cluster status lists no partitions")
	}
	r.table.Store(m)
	r.partOf = make([]int32, cfg.Keys)
	for k := range r.partOf {
		r.partOf[k] = int32(placement.Partition(cfg.KeyPrefix+strconv.Itoa(k), m.Partitions()))
	}
	return r, nil
}

// fetch reads GET /v1/cluster/status from the next endpoint in turn.
func (r *leaderRoutes) fetch(ctx context.Context) (*wire.ClusterStatus, error) {
	url := r.endpoints[r.next] + wire.PathClusterStatus
	r.next = (r.next + 1) % len(r.endpoints)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	var st wire.ClusterStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("%s: HTTP %d: %w", url, resp.StatusCode, err)
	}
	if st.Type != wire.Got {
		return nil, fmt.Errorf("%s: type %d", url, st.Type)
	}
	return &st, nil
}

// follow refreshes the map every interval until ctx ends; a failed read
// keeps the old map, which at worst costs forwarded requests.
func (r *leaderRoutes) follow(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := r.fetch(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Debug("leader map not refreshed", "err", err)
			}
			continue
		}
		// The partition count is fixed when a cluster is created; a status
		// with another count is from some other cluster and is ignored.
		if m := leaders.FromStatus(st, r.addrs); m.Partitions() == r.table.Load().Partitions() {
			r.table.Store(m)
		}
	}
}

// lookup returns the endpoint and node that key's requests go to.
func (r *leaderRoutes) lookup(key int) (endpoint int, node string, ok bool) {
	return r.table.Load().ForPartition(int(r.partOf[key]))
}
