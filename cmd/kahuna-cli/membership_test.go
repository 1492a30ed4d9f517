package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// fakeNode answers the cluster endpoints the way a node does, from canned
// replies, and records the removals it is asked for. It stands in for
// cluster states (a catching-up non-voter, a partition without a leader)
// and refusals that a real cluster reaches only slowly or by chance.
type fakeNode struct {
	*httptest.Server
	mu      sync.Mutex
	removes []string // the node IDs of the remove-node requests, in order
}

// Canned remove-node replies, by node ID; any other ID is unknown (404).
var fakeRemovals = map[string]struct {
	code  int
	reply wire.RemoveNodeResponse
}{
	"n4":     {http.StatusOK, wire.RemoveNodeResponse{Removed: "n4", ServedFrom: "n1"}},
	"n3":     {http.StatusConflict, wire.RemoveNodeResponse{ServedFrom: "n1", Error: "removing n3 would leave partition 1 with 1 live voter of 2; a quorum is 2"}},
	"bad id": {http.StatusBadRequest, wire.RemoveNodeResponse{ServedFrom: "n1", Error: `node ID "bad id" has a blank`}},
	"n7":     {http.StatusServiceUnavailable, wire.RemoveNodeResponse{ServedFrom: "n1", Error: "no leader for partition 2"}},
}

// fakeStatus is a four-node cluster as n1 sees it: n4 joined and is still
// a non-voter of partition 0, n2 is suspect, partition 2 has no leader.
var fakeStatus = wire.ClusterStatus{
	ServedFrom: "n1",
	Node:       wire.NodeStatus{ID: "n1", HTTPAddr: "10.0.0.1:8082", RaftAddr: "10.0.0.1:9082", GossipAddr: "10.0.0.1:7946", State: wire.NodeAlive, Role: wire.RoleVoter},
	Nodes: []wire.NodeStatus{
		{ID: "n1", HTTPAddr: "10.0.0.1:8082", RaftAddr: "10.0.0.1:9082", GossipAddr: "10.0.0.1:7946", State: wire.NodeAlive, Role: wire.RoleVoter},
		{ID: "n2", HTTPAddr: "10.0.0.2:8082", RaftAddr: "10.0.0.2:9082", GossipAddr: "10.0.0.2:7946", State: wire.NodeSuspect, Role: wire.RoleVoter},
		{ID: "n3", HTTPAddr: "10.0.0.3:8082", RaftAddr: "10.0.0.3:9082", GossipAddr: "10.0.0.3:7946", State: wire.NodeAlive, Role: wire.RoleVoter},
		{ID: "n4", HTTPAddr: "10.0.0.4:8082", RaftAddr: "10.0.0.4:9082", GossipAddr: "10.0.0.4:7946", State: wire.NodeAlive, Role: wire.RoleNonVoter},
	},
	Partitions: []wire.PartitionStatus{
		{ID: 0, Leader: "n1", State: "leader", Term: 3, CommitIndex: 120, AppliedIndex: 118, Voters: []string{"n1", "n2", "n3"}, NonVoters: []string{"n4"}, Locks: 7},
		{ID: 1, Leader: "n3", State: "follower", Term: 12, CommitIndex: 4096, AppliedIndex: 4096, Voters: []string{"n1", "n2", "n3", "n4"}, NonVoters: []string{}, Locks: 0},
		{ID: 2, Leader: "", State: "candidate", Term: 5, CommitIndex: 77, AppliedIndex: 77, Voters: []string{"n1", "n2", "n3"}, NonVoters: []string{"n4"}, Locks: 2},
	},
}

// fakeStatusText is fakeStatus as --cluster and the shell's cluster print it.
const fakeStatusText = `4 nodes, 3 partitions, as n1 sees it
n1 is NOT READY: partition 2 has no leader
NODE  STATE    ROLE       HTTP           RAFT
n1    alive    voter      10.0.0.1:8082  10.0.0.1:9082
n2    suspect  voter      10.0.0.2:8082  10.0.0.2:9082
n3    alive    voter      10.0.0.3:8082  10.0.0.3:9082
n4    alive    non-voter  10.0.0.4:8082  10.0.0.4:9082

PARTITION  LEADER  TERM  COMMIT  APPLIED  LOCKS  VOTERS       NON-VOTERS
0          n1      3     120     118      7      n1,n2,n3     n4
1          n3      12    4096    4096     0      n1,n2,n3,n4  -
2          (none)  5     77      77       2      n1,n2,n3     n4
`

// fakeReadiness is the fake's /readyz: partition 2 has no leader.
var fakeReadiness = wire.Health{Status: "not ready", ServedFrom: "n1", Reason: "partition 2 has no leader"}

func newFakeNode(t *testing.T) *fakeNode {
	f := &fakeNode{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathClusterStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, fakeStatus)
	})
	mux.HandleFunc("GET "+wire.PathReadyz, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, fakeReadiness)
	})
	mux.HandleFunc("POST "+wire.PathRemoveNode, func(w http.ResponseWriter, r *http.Request) {
		var req wire.RemoveNodeRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Header.Get("Content-Type") != "application/json" {
			writeJSON(w, http.StatusBadRequest, wire.RemoveNodeResponse{ServedFrom: "n1", Error: "the fake wants a JSON body"})
			return
		}
		f.mu.Lock()
		f.removes = append(f.removes, req.Node)
		f.mu.Unlock()
		canned, ok := fakeRemovals[req.Node]
		if !ok {
			writeJSON(w, http.StatusNotFound, wire.RemoveNodeResponse{ServedFrom: "n1", Error: "node " + req.Node + " is not a member"})
			return
		}
		writeJSON(w, canned.code, canned.reply)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// removed are the node IDs the fake was asked to remove.
func (f *fakeNode) removed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removes)
}

// exactly checks a finished kahuna-cli's exit code, stdout and stderr,
// byte for byte.
func exactly(t *testing.T, r result, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || r.stdout != stdout || r.stderr != stderr {
		t.Fatalf("want exit %d\nstdout:\n%s\nstderr:\n%s\ngot %v", code, stdout, stderr, r)
	}
}

// jsonKeys decodes one line of JSON output into v and returns the object's
// keys, sorted.
func jsonKeys(t *testing.T, r result, v any) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if strings.Count(r.stdout, "\n") != 1 || json.Unmarshal([]byte(r.stdout), &m) != nil || json.Unmarshal([]byte(r.stdout), v) != nil {
		t.Fatalf("want one JSON object on one line; got %v", r)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestClusterOneShot: --cluster prints what the shell's cluster prints,
// roles and non-voters included, and --format json the server's status.
func TestClusterOneShot(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	exactly(t, cli(t, "", "-c", f.URL, "--cluster"), 0, fakeStatusText, "")
	exactly(t, cli(t, "cluster\n", "-c", f.URL), 0, fakeStatusText, "")

	r := cli(t, "", "-c", f.URL, "--cluster", "--format", "json")
	var got struct {
		Result string `json:"result"`
		wire.ClusterStatus
		Readiness wire.Health `json:"readiness"`
	}
	keys := jsonKeys(t, r, &got)
	if r.code != 0 || r.stderr != "" || got.Result != "cluster" || !reflect.DeepEqual(got.ClusterStatus, fakeStatus) ||
		got.Readiness != fakeReadiness ||
		!slices.Equal(keys, []string{"node", "nodes", "partitions", "readiness", "result", "servedFrom", "type"}) {
		t.Fatalf("--cluster --format json: keys %q, decoded %+v; got %v", keys, got, r)
	}
}

func TestClusterUnreachable(t *testing.T) {
	t.Parallel()
	dead := deadEndpoint(t)
	r := cli(t, "", "-c", dead, "-t", "300ms", "--cluster")
	// The dead address is named (a 300 ms timeout on a busy machine may cut
	// the attempt before "connection refused").
	host := strings.TrimPrefix(dead, "http://")
	if r.code != 3 || r.stdout != "" || !strings.HasPrefix(r.stderr, "kahuna-cli: kahuna: service unavailable") ||
		!strings.Contains(r.stderr, host) || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("want exit 3 and one line on stderr; got %v", r)
	}
	r = cli(t, "", "-c", dead, "-t", "300ms", "--cluster", "--format", "json")
	var got struct{ Result, Error string }
	keys := jsonKeys(t, r, &got)
	if r.code != 3 || r.stderr != "" || got.Result != "unavailable" || !strings.Contains(got.Error, host) ||
		!slices.Equal(keys, []string{"error", "result"}) {
		t.Fatalf("want exit 3 and {result, error}; got %v", r)
	}
}

// TestRemoveNodeOneShot runs --remove-node against each answer the server
// can give, in both formats.
func TestRemoveNodeOneShot(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	for _, tc := range []struct {
		id             string
		code           int
		stdout, stderr string
		json           string
	}{
		{"n4", 0, "removed n4\n", "", `{"result":"removed","removed":"n4"}`},
		{"n9", 1, "not removed: unknown node n9\n", "",
			`{"result":"unknown-node","node":"n9","error":"unknown node n9"}`},
		{"n3", 1, "not removed: removing n3 would leave partition 1 with 1 live voter of 2; a quorum is 2\n", "",
			`{"result":"would-lose-quorum","node":"n3","error":"removing n3 would leave partition 1 with 1 live voter of 2; a quorum is 2"}`},
		{"bad id", 1, "not removed: node ID \"bad id\" has a blank\n", "",
			`{"result":"invalid-input","node":"bad id","error":"node ID \"bad id\" has a blank"}`},
		{"n7", 3, "", "kahuna-cli: kahuna: server error (type 503) from n1: no leader for partition 2\n",
			`{"result":"error","node":"n7","error":"kahuna: server error (type 503) from n1: no leader for partition 2"}`},
	} {
		exactly(t, cli(t, "", "-c", f.URL, "--remove-node", tc.id), tc.code, tc.stdout, tc.stderr)
		exactly(t, cli(t, "", "-c", f.URL, "--remove-node", tc.id, "--format", "json"), tc.code, tc.json+"\n", "")
	}
	// Each request went out once, to the remove-node endpoint: no retries.
	if got, want := f.removed(), []string{"n4", "n4", "n9", "n9", "n3", "n3", "bad id", "bad id", "n7", "n7"}; !slices.Equal(got, want) {
		t.Fatalf("the server was asked to remove %q, want %q", got, want)
	}

	// A dead node first: the next one answers.
	exactly(t, cli(t, "", "-c", deadEndpoint(t)+","+f.URL, "--remove-node", "n4"), 0, "removed n4\n", "")
}

func TestRemoveNodeUnreachable(t *testing.T) {
	t.Parallel()
	dead := deadEndpoint(t)
	r := cli(t, "", "-c", dead, "--remove-node", "n2")
	if r.code != 3 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
		!strings.HasPrefix(r.stderr, `kahuna-cli: kahuna: service unavailable: no node answered the removal of "n2"`) ||
		!strings.Contains(r.stderr, "connection refused") {
		t.Fatalf("want exit 3 and one line on stderr; got %v", r)
	}
	r = cli(t, "", "-c", dead, "--remove-node", "n2", "--format", "json")
	var got struct{ Result, Node, Error string }
	keys := jsonKeys(t, r, &got)
	if r.code != 3 || r.stderr != "" || got.Result != "unavailable" || got.Node != "n2" ||
		!strings.Contains(got.Error, "connection refused") || !slices.Equal(keys, []string{"error", "node", "result"}) {
		t.Fatalf("want exit 3 and {result, node, error}; got %v", r)
	}
}

// TestRemoveNodeUsage: without an ID, kahuna-cli says so and asks no
// server.
func TestRemoveNodeUsage(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	const help = "Run 'kahuna-cli --help' for usage.\n"
	exactly(t, cli(t, "", "-c", f.URL, "--remove-node"), 2, "", "kahuna-cli: flag needs an argument: -remove-node\n"+help)
	exactly(t, cli(t, "", "-c", f.URL, "--remove-node", ""), 2, "", "kahuna-cli: --remove-node needs a node ID (--remove-node ID)\n"+help)
	exactly(t, cli(t, "", "-c", f.URL, "--remove-node", "--format", "json"), 2, "", "kahuna-cli: --remove-node needs a node ID, not the flag \"--format\"\n"+help)
	if got := f.removed(); len(got) != 0 {
		t.Fatalf("a usage error reached the server: %q", got)
	}
}

// TestShellRemoveNode: the shell's remove-node prints what --remove-node
// prints; the session's exit code is the last command's.
func TestShellRemoveNode(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	r := cli(t, "remove-node n4\nremove-node n9\nremove-node\nremove-node ''\nremove-node n3\n", "-c", f.URL)
	exactly(t, r, 1,
		"removed n4\nnot removed: unknown node n9\nnot removed: removing n3 would leave partition 1 with 1 live voter of 2; a quorum is 2\n",
		"kahuna-cli: line 3: usage: remove-node ID\nkahuna-cli: line 4: remove-node: ID is empty\n")
	if got := f.removed(); !slices.Equal(got, []string{"n4", "n9", "n3"}) {
		t.Fatalf("the server was asked to remove %q", got)
	}
	exactly(t, cli(t, "remove-node n4\nremove-node n7\n", "-c", f.URL, "--format", "json"), 3,
		`{"result":"removed","removed":"n4"}`+"\n"+`{"result":"error","node":"n7","error":"kahuna: server error (type 503) from n1: no leader for partition 2"}`+"\n", "")
	exactly(t, cli(t, "help remove-node\n"), 0, "usage: remove-node ID\n  take node ID out of the cluster (its leaderships move first)\n", "")
}

// TestShellCompletesRemoveNode: Tab and the did-you-mean hint know the new
// command.
func TestShellCompletesRemoveNode(t *testing.T) {
	s := &shell{cmds: commands(), held: map[target]bool{}}
	for line, want := range map[string]string{"rem": "remove-node ", "help rem": "help remove-node "} {
		if got, _, shown := s.complete(line, len(line)); got != want || shown != nil {
			t.Errorf("Tab after %q: %q %q, want %q", line, got, shown, want)
		}
	}
	err := unknownCommand("remvoe-node", s.cmds)
	if err == nil || !strings.Contains(err.Error(), `did you mean "remove-node"?`) {
		t.Errorf("unknownCommand(remvoe-node) = %v", err)
	}
}
