package suite

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos/nemesis"
	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// web is how the harness reaches the nodes' APIs: plain HTTP, or, for a
// cluster with security on, HTTPS verified against the test CA with a
// bearer token.
type web struct {
	tls   *tls.Config // nil: plain HTTP
	token string
	// kept holds one client per address for the harness's own
	// questions, asked many times a second: a new client each time
	// would pay a TLS handshake each time.
	kept *keptClients
}

type keptClients struct {
	mu sync.Mutex
	by map[string]*testutil.Client
}

func newWeb(tlsCfg *tls.Config, token string) web {
	return web{tls: tlsCfg, token: token, kept: &keptClients{by: map[string]*testutil.Client{}}}
}

// url is the base URL of the API at addr.
func (w web) url(addr string) string {
	if w.tls != nil {
		return "https://" + addr
	}
	return "http://" + addr
}

// client returns a client of the API at base, a URL from url.
func (w web) client(base string) *testutil.Client {
	if w.tls == nil && w.token == "" {
		return testutil.NewClient(base)
	}
	// A clone each: net/http adds its protocols to the config it gets.
	return testutil.NewTLSClient(base, w.tls.Clone(), w.token)
}

// clientOf returns the harness's client of the API at addr, kept for
// later calls; callers do not close it.
func (w web) clientOf(addr string) *testutil.Client {
	w.kept.mu.Lock()
	defer w.kept.mu.Unlock()
	c := w.kept.by[addr]
	if c == nil {
		c = w.client(w.url(addr))
		w.kept.by[addr] = c
	}
	return c
}

// close drops the kept clients' idle connections.
func (w web) close() {
	w.kept.mu.Lock()
	defer w.kept.mu.Unlock()
	for _, c := range w.kept.by {
		c.Close()
	}
}

// waitReady polls every endpoint's /readyz until all answer 200.
func (w web) waitReady(endpoints []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, e := range endpoints {
		c := w.client(e)
		defer c.Close()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			status, _, err := c.Get(ctx, wire.PathReadyz)
			cancel()
			if err == nil && status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %v (last: %v)", e, timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// removeNode posts a removal to the node at addr.
func (w web) removeNode(addr, id string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := w.clientOf(addr)
	var out wire.RemoveNodeResponse
	status, err := c.Post(ctx, wire.PathRemoveNode, wire.RemoveNodeRequest{Node: id}, &out)
	if status != 0 {
		err = nil // an answer that is not JSON still has a status
	}
	return status, out.Error, err
}

// statusOf is the node at addr's view of the cluster.
func (w web) statusOf(addr string) (wire.ClusterStatus, error) {
	var st wire.ClusterStatus
	status, err := w.getJSON(addr, wire.PathClusterStatus, &st)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("%s %s: HTTP %d", addr, wire.PathClusterStatus, status)
	}
	return st, err
}

// configOf reads every partition's configuration from the node at addr.
func (w web) configOf(addr string) ([]nemesis.PartitionConfig, error) {
	st, err := w.statusOf(addr)
	if err != nil {
		return nil, err
	}
	var out []nemesis.PartitionConfig
	for _, ps := range st.Partitions {
		out = append(out, nemesis.PartitionConfig{Voters: ps.Voters, NonVoters: ps.NonVoters})
	}
	return out, nil
}

// readyz asks the node at addr whether it is ready, and why not.
func (w web) readyz(addr string) (bool, string, error) {
	var h wire.Health
	status, err := w.getJSON(addr, wire.PathReadyz, &h)
	if err != nil {
		return false, "", err
	}
	return status == http.StatusOK, h.Reason, nil
}

// getJSON fetches path from the node at addr, within a second, and decodes
// the reply into out.
func (w web) getJSON(addr, path string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c := w.clientOf(addr)
	status, body, err := c.Get(ctx, path)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return status, fmt.Errorf("%s: HTTP %d, body is not JSON: %w", path, status, err)
	}
	return status, nil
}
