package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kahuna-go/kahuna/internal/testcluster"
	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/placement"
)

// scrape reads a node's /metrics over HTTP, as Prometheus would.
func scrape(t *testing.T, n *testcluster.Node) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTP + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", n.ID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d, %v", n.ID, resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("scrape %s: Content-Type %q, want Prometheus's text format", n.ID, ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("scrape %s: not the text format: %v", n.ID, err)
	}
	return fams, body
}

// value is the value of the series of family name whose labels include
// want; -1 if there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// histogramSum is the sum of the first series of histogram name.
func histogramSum(fams map[string]*dto.MetricFamily, name string) float64 {
	if f := fams[name]; f != nil && len(f.Metric) > 0 && f.Metric[0].Histogram != nil {
		return f.Metric[0].Histogram.GetSampleSum()
	}
	return 0
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func lockReq(res, owner string) testutil.LockRequest {
	return testutil.LockRequest{Resource: res, Owner: owner, ExpiresMs: time.Minute.Milliseconds(), Durability: testutil.Persistent}
}

// TestMetricsFollowTheCluster scrapes real nodes of a three-node cluster
// while requests run and checks that every metric of the contract moves
// the way the cluster did.
func TestMetricsFollowTheCluster(t *testing.T) {
	const partitions = 3
	c := testcluster.Start(t, testcluster.Options{Nodes: 3, Partitions: partitions})
	ctx := testcluster.Ctx(t)
	const p = 1
	res := func(i int) string {
		for k := 0; ; k++ {
			r := fmt.Sprintf("m-%d-%d", i, k)
			if placement.Partition(r, partitions) == p {
				return r
			}
		}
	}
	l := c.LeaderIndex(p)
	if l < 0 {
		t.Fatal("no leader")
	}
	leader, follower := c.Node(l), c.Node((l+1)%3)
	part := fmt.Sprint(p)

	before, _ := scrape(t, follower)
	lb, _ := scrape(t, leader)

	// Through a follower: every request is forwarded to the leader.
	const n = 20
	fc := follower.Client()
	for i := range n {
		if _, err := fc.TryLock(ctx, lockReq(res(i), "alice")); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := fc.TryLock(ctx, lockReq(res(0), "bob")); err != nil || rep.Type != testutil.Busy {
		t.Fatalf("contended try-lock: %+v, %v", rep, err)
	}
	if rep, err := fc.TryLock(ctx, testutil.LockRequest{Resource: "", Owner: "x"}); err != nil || rep.Type != testutil.InvalidInput {
		t.Fatalf("bad try-lock: %+v, %v", rep, err)
	}
	after, _ := scrape(t, follower)
	la, _ := scrape(t, leader)
	delta := func(b, a map[string]*dto.MetricFamily, name string, l map[string]string) float64 {
		return value(a, name, l) - max(value(b, name, l), 0)
	}
	for _, tc := range []struct {
		what string
		got  float64
		want float64
	}{
		{"try-lock locked on the follower", delta(before, after, "kahuna_requests_total", labels("op", "try-lock", "outcome", "locked")), n},
		{"try-lock busy on the follower", delta(before, after, "kahuna_requests_total", labels("op", "try-lock", "outcome", "busy")), 1},
		{"try-lock invalid_input on the follower", delta(before, after, "kahuna_requests_total", labels("op", "try-lock", "outcome", "invalid_input")), 1},
		{"try-lock durations observed on the follower", delta(before, after, "kahuna_request_duration_seconds", labels("op", "try-lock")), n + 2},
		{"forwarded by the follower", delta(before, after, "kahuna_forwarded_requests_total", nil), n + 1},
		{"requests the leader's API answered", delta(lb, la, "kahuna_requests_total", labels("op", "try-lock", "outcome", "locked")), 0},
		{"persistent locks in the partition, on the leader", delta(lb, la, "kahuna_locks", labels("partition", part, "durability", "persistent")), n},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: went up by %v, want %v", tc.what, tc.got, tc.want)
		}
	}
	// Batches: the leader proposed the n+1 commands (a Busy answer is
	// committed too) in one or more entries.
	if b := delta(lb, la, "kahuna_batch_commands", nil); b < 1 {
		t.Errorf("batches observed on the leader: %v, want at least 1", b)
	}
	if w := delta(lb, la, "kahuna_raft_log_write_seconds", nil); w < 1 {
		t.Errorf("Raft log writes observed on the leader: %v, want at least 1", w)
	}
	if cmds := histogramSum(la, "kahuna_batch_commands") - histogramSum(lb, "kahuna_batch_commands"); cmds < n+1 {
		t.Errorf("commands in the leader's batches: %v, want at least %d", cmds, n+1)
	}
	// Followers apply what the leader commits: their lock gauge follows.
	c.WaitFor(5*time.Second, "the follower's lock gauge follows", func() bool {
		f, _ := scrape(t, follower)
		return value(f, "kahuna_locks", labels("partition", part, "durability", "persistent")) == value(la, "kahuna_locks", labels("partition", part, "durability", "persistent"))
	})

	// Commit and applied indexes and the term are the partition's.
	st := leader.Server().Partitions().Group(p).Status()
	if got := value(la, "kahuna_raft_term", labels("partition", part)); got != float64(st.Term) {
		t.Errorf("kahuna_raft_term %v, want %d", got, st.Term)
	}
	if got := value(la, "kahuna_raft_commit_index", labels("partition", part)); got < 1 || got > float64(st.CommitIndex) {
		t.Errorf("kahuna_raft_commit_index %v, want 1…%d", got, st.CommitIndex)
	}
	if got := value(la, "kahuna_raft_applied_index", labels("partition", part)); got < 1 || got > float64(st.AppliedIndex) {
		t.Errorf("kahuna_raft_applied_index %v, want 1…%d", got, st.AppliedIndex)
	}

	// A waiter shows on the leader while it waits.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req := lockReq(res(0), "carol")
		req.WaitMs = testutil.Ms(10 * time.Second)
		_, _ = fc.TryLock(context.Background(), req)
	}()
	c.WaitFor(5*time.Second, "kahuna_waiters is 1 on the leader", func() bool {
		f, _ := scrape(t, leader)
		return value(f, "kahuna_waiters", labels("partition", part)) == 1
	})
	// Releasing hands the lock to the waiter; then every lock goes.
	if rep, err := fc.TryUnlock(ctx, lockReq(res(0), "alice")); err != nil || rep.Type != testutil.Unlocked {
		t.Fatalf("unlock: %+v, %v", rep, err)
	}
	wg.Wait()
	if rep, err := fc.TryUnlock(ctx, lockReq(res(0), "carol")); err != nil || rep.Type != testutil.Unlocked {
		t.Fatalf("unlock of the waiter's lock: %+v, %v", rep, err)
	}
	for i := 1; i < n; i++ {
		if _, err := fc.TryUnlock(ctx, lockReq(res(i), "alice")); err != nil {
			t.Fatal(err)
		}
	}
	end, body := scrape(t, leader)
	t.Run("promtool", func(t *testing.T) { lint(t, body) })
	if got := value(end, "kahuna_waiters", labels("partition", part)); got != 0 {
		t.Errorf("kahuna_waiters after the waiter was served: %v", got)
	}
	if got, was := value(end, "kahuna_locks", labels("partition", part, "durability", "persistent")), value(lb, "kahuna_locks", labels("partition", part, "durability", "persistent")); got != was {
		t.Errorf("persistent locks after every unlock: %v, want %v as before", got, was)
	}

	// A leadership transfer flips the leader gauge.
	if err := leader.Server().Partitions().Group(p).TransferLeadership(""); err != nil {
		t.Fatalf("transfer leadership: %v", err)
	}
	c.WaitFor(10*time.Second, "another node leads the partition and says so in its metrics", func() bool {
		nl := c.LeaderIndex(p)
		if nl < 0 || nl == l {
			return false
		}
		old, _ := scrape(t, leader)
		now, _ := scrape(t, c.Node(nl))
		return value(old, "kahuna_partition_leader", labels("partition", part)) == 0 &&
			value(now, "kahuna_partition_leader", labels("partition", part)) == 1
	})
	// Exactly one node says it leads each partition.
	c.WaitFor(10*time.Second, "one leader per partition in the metrics", func() bool {
		for q := range partitions {
			sum := 0.0
			for i := range 3 {
				f, _ := scrape(t, c.Node(i))
				sum += value(f, "kahuna_partition_leader", labels("partition", fmt.Sprint(q)))
			}
			if sum != 1 {
				return false
			}
		}
		return true
	})
	// The Go and process collectors are there.
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if value(end, name, nil) <= 0 {
			t.Errorf("%s missing or zero", name)
		}
	}
}

// lint runs Prometheus's own linter over a scrape. CI installs promtool
// (Debian's prometheus package); elsewhere the subtest says it cannot run.
func lint(t *testing.T, body []byte) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (apt-get install prometheus): the scrape is not linted here")
	}
	path := filepath.Join(t.TempDir(), "scrape.txt")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n(scrape kept in %s)", err, out, path)
	}
	if len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics has remarks:\n%s", out)
	}
}
