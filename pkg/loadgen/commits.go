package loadgen

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// commitReadTimeout bounds one reading of the cluster status, so that a
// node that went away cannot hold up the report.
const commitReadTimeout = 2 * time.Second

// commitReader counts the Raft entries a cluster commits: one node's sum of
// its partitions' commit indexes. Read before and after the measured
// period, it tells how many log entries carried the run's commands — every
// entry costs a log write on each voter, so commands per entry is what
// persistent throughput follows.
//
// It asks the run's first endpoint, once per reading: both readings then
// come from the same node, and a server that is not Kahuna (kahuna-ceiling,
// say) costs one request, not a client's retries.
type commitReader struct {
	url   string
	http  *http.Client
	token string // bearer token, or empty
}

// commitReading is one node's sum of commit indexes.
type commitReading struct {
	node string
	sum  uint64
}

// newCommitReader reads from endpoint, over TLS with tlsConfig when it is
// https://, sending token when not empty.
func newCommitReader(endpoint string, tlsConfig *tls.Config, token string) *commitReader {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConfig.Clone() // the transport adds its protocols to it
	return &commitReader{
		url:   strings.TrimRight(endpoint, "/") + wire.PathClusterStatus,
		http:  &http.Client{Timeout: commitReadTimeout, Transport: tr},
		token: token,
	}
}

func (r *commitReader) close() { r.http.CloseIdleConnections() }

func (r *commitReader) read(ctx context.Context) (commitReading, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return commitReading{}, err
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return commitReading{}, err
	}
	defer resp.Body.Close()
	var st wire.ClusterStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return commitReading{}, fmt.Errorf("GET %s: HTTP %d, not a cluster status: %w", r.url, resp.StatusCode, err)
	}
	if st.Type != wire.Got {
		return commitReading{}, fmt.Errorf("GET %s: %s answered type %d", r.url, st.ServedFrom, st.Type)
	}
	if len(st.Partitions) == 0 {
		return commitReading{}, fmt.Errorf("GET %s: %s lists no partitions", r.url, st.ServedFrom)
	}
	reading := commitReading{node: st.ServedFrom}
	for _, p := range st.Partitions {
		reading.sum += p.CommitIndex
	}
	return reading, nil
}

// entriesBetween returns the entries committed from before to after, or
// false when the two readings cannot be compared: taken on different nodes
// (another process behind the address, whose view of the commit index
// differs), or going backwards.
func entriesBetween(before, after commitReading) (uint64, bool) {
	if before.node == "" || before.node != after.node || after.sum < before.sum {
		return 0, false
	}
	return after.sum - before.sum, true
}
