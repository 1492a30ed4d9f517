package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
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
type commitReader struct {
	status *client.Client
}

// commitReading is one node's sum of commit indexes.
type commitReading struct {
	node string
	sum  uint64
}

func newCommitReader(endpoints []string) (*commitReader, error) {
	c, err := client.New(client.Config{Endpoints: endpoints, AttemptTimeout: commitReadTimeout, NoLeaderRouting: true})
	if err != nil {
		return nil, fmt.Errorf("status client: %w", err)
	}
	return &commitReader{status: c}, nil
}

func (r *commitReader) close() { r.status.Close() }

// read asks the first node that answers for its commit indexes.
func (r *commitReader) read(ctx context.Context) (commitReading, error) {
	ctx, cancel := context.WithTimeout(ctx, commitReadTimeout)
	defer cancel()
	st, err := r.status.ClusterStatus(ctx)
	if err != nil {
		return commitReading{}, err
	}
	if st.Type != wire.Got {
		return commitReading{}, fmt.Errorf("%s answered type %d", st.ServedFrom, st.Type)
	}
	if len(st.Partitions) == 0 {
		return commitReading{}, fmt.Errorf("%s lists no partitions", st.ServedFrom)
	}
	reading := commitReading{node: st.ServedFrom}
	for _, p := range st.Partitions {
		reading.sum += p.CommitIndex
	}
	return reading, nil
}

// entriesBetween returns the entries committed from before to after, or
// false when the two readings cannot be compared: taken on different nodes
// (whose views of the commit index differ slightly), or going backwards.
func entriesBetween(before, after commitReading) (uint64, bool) {
	if before.node == "" || before.node != after.node || after.sum < before.sum {
		return 0, false
	}
	return after.sum - before.sum, true
}
