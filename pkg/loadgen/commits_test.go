package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// scriptedStatus serves lock requests from a fake and answers the n-th
// cluster status read with readings[n] (the last one again after that).
type scriptedStatus struct {
	locks    *fakeLocks
	mu       sync.Mutex
	readings []wire.ClusterStatus
	reads    int
}

func (s *scriptedStatus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != wire.PathClusterStatus {
		s.locks.ServeHTTP(w, r)
		return
	}
	s.mu.Lock()
	st := s.readings[min(s.reads, len(s.readings)-1)]
	s.reads++
	s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(st)
}

func statusWith(node string, commits ...uint64) wire.ClusterStatus {
	st := wire.ClusterStatus{Type: wire.Got, ServedFrom: node}
	for i, c := range commits {
		st.Partitions = append(st.Partitions, wire.PartitionStatus{ID: i, CommitIndex: c})
	}
	return st
}

// TestRunCountsRaftEntries checks that the entries reported are the growth
// of one node's commit indexes, summed over partitions, from the start of
// the measured period to its end, and that the text report divides the
// requests by them.
func TestRunCountsRaftEntries(t *testing.T) {
	srv := &scriptedStatus{locks: newFakeLocks(), readings: []wire.ClusterStatus{
		statusWith("n1", 5, 7, 0),
		statusWith("n1", 105, 57, 0),
	}}
	url := startFake(t, srv)
	res, err := Run(context.Background(), testConfig(url), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	reads := srv.reads
	srv.mu.Unlock()
	if reads != 2 {
		t.Fatalf("%d status reads, want 2 (one before, one after)", reads)
	}
	if res.RaftEntries == nil || *res.RaftEntries != 150 || res.RaftEntriesFrom != "n1" {
		t.Fatalf("raft entries %v from %q, want 150 from n1", res.RaftEntries, res.RaftEntriesFrom)
	}
	var text bytes.Buffer
	if err := WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	want := "persistent raft: 150 entries committed (as n1 saw them), "
	if !strings.Contains(text.String(), want) || res.Requests == 0 {
		t.Fatalf("text lacks %q for %d requests:\n%s", want, res.Requests, text.String())
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"raftEntries": 150`) || !strings.Contains(js.String(), `"raftEntriesFrom": "n1"`) {
		t.Fatalf("JSON lacks the entries:\n%s", js.String())
	}
}

// TestRunLeavesRaftEntriesOutWhenUnknown covers readings that cannot be
// compared, and servers that give none: the report then says nothing
// rather than a wrong number.
func TestRunLeavesRaftEntriesOutWhenUnknown(t *testing.T) {
	for name, readings := range map[string][]wire.ClusterStatus{
		"different nodes": {statusWith("n1", 5), statusWith("n2", 50)},
		"backwards":       {statusWith("n1", 50), statusWith("n1", 5)},
		"no partitions":   {statusWith("n1")},
		"not got":         {{Type: wire.Errored, ServedFrom: "n1"}},
	} {
		t.Run(name, func(t *testing.T) {
			srv := &scriptedStatus{locks: newFakeLocks(), readings: readings}
			res, err := Run(context.Background(), testConfig(startFake(t, srv)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.RaftEntries != nil || res.Requests == 0 {
				t.Fatalf("raft entries %d from %q after %d requests, want none", *res.RaftEntries, res.RaftEntriesFrom, res.Requests)
			}
			var text bytes.Buffer
			if err := WriteText(&text, res); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text.String(), "raft:") {
				t.Fatalf("text reports entries:\n%s", text.String())
			}
		})
	}
	// A server without a cluster status at all (the plain fake answers
	// 400) is benchmarked as before.
	res, err := Run(context.Background(), testConfig(startFake(t, newFakeLocks())), nil)
	if err != nil || res.RaftEntries != nil || res.Requests == 0 {
		t.Fatalf("err %v, raft entries %v, %d requests", err, res.RaftEntries, res.Requests)
	}
}

// TestRunAsksAServerWithoutStatusOnce: a server that is not Kahuna (as
// kahuna-ceiling, whose router answers 404 in plain text) gets one status
// request, and the run ends on time rather than after a client's retries.
func TestRunAsksAServerWithoutStatusOnce(t *testing.T) {
	locks := newFakeLocks()
	var statusReads atomic.Int32
	url := startFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.PathClusterStatus {
			statusReads.Add(1)
			http.NotFound(w, r)
			return
		}
		locks.ServeHTTP(w, r)
	}))
	cfg := testConfig(url)
	start := time.Now()
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > cfg.Duration+commitReadTimeout/2 {
		t.Errorf("a %v run took %v", cfg.Duration, took)
	}
	if n := statusReads.Load(); n != 1 || res.RaftEntries != nil || res.Requests == 0 {
		t.Fatalf("%d status requests, raft entries %v, %d requests; want one request and no entries", n, res.RaftEntries, res.Requests)
	}
}

// TestRunGivesUpOnAFrozenStatus: a node that accepts the status request
// and never answers (a frozen process) holds the report up for one read
// timeout at most.
func TestRunGivesUpOnAFrozenStatus(t *testing.T) {
	locks := newFakeLocks()
	url := startFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.PathClusterStatus {
			<-r.Context().Done() // until the client gives up
			return
		}
		locks.ServeHTTP(w, r)
	}))
	start := time.Now()
	res, err := Run(context.Background(), testConfig(url), nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > commitReadTimeout+time.Second {
		t.Errorf("run took %v with a frozen status", took)
	}
	if res.RaftEntries != nil || res.Requests == 0 {
		t.Fatalf("raft entries %v after %d requests, want none", res.RaftEntries, res.Requests)
	}
}
