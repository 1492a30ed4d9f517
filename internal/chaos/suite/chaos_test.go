package suite

import (
	"cmp"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
	"github.com/kahuna-go/kahuna/internal/chaos/check"
	"github.com/kahuna-go/kahuna/internal/chaos/nemesis"
	"github.com/kahuna-go/kahuna/internal/chaos/workload"
	"github.com/kahuna-go/kahuna/internal/netlab"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// The long run (make chaos) is one test run with flags; without them
// TestChaos runs the short version every `make test` runs.
var (
	flagDuration  = flag.Duration("chaos.duration", 0, "run one chaos experiment this long (default: the short suite)")
	flagNemeses   = flag.String("chaos.nemeses", "all", "comma-separated nemeses; all (every fault below but the membership changes), membership (join,remove,replace), or: "+strings.Join(kindNames(), ","))
	flagNodes     = flag.Int("chaos.nodes", 3, "cluster size")
	flagMaxNodes  = flag.Int("chaos.max-nodes", 0, "with the membership nemeses: the most members the cluster grows to before it shrinks back to three (default: -chaos.nodes + 2)")
	flagSeed      = flag.Int64("chaos.seed", 0, "seed (0: random, printed)")
	flagClients   = flag.Int("chaos.clients", 12, "concurrent workload clients")
	flagProcesses = flag.Bool("chaos.processes", false, "run real kahunad processes instead of in-process servers")
	flagNetns     = flag.Bool("chaos.netns", false, "with -chaos.processes: run each process in its own network namespace, so partitions apply")
	flagRecheck   = flag.String("chaos.recheck", "", "check a saved run's history.jsonl in this folder again, with -chaos.check-timeout, instead of running")
	flagCheckTime = flag.Duration("chaos.check-timeout", 0, "the checkers' time budget (default: a tenth of the run, at least 2m; with -chaos.recheck: 30m)")
	flagSecure    = flag.Bool("chaos.secure", false, "with -chaos.processes: HTTPS on the API, mutual TLS between nodes, an encrypted gossip ring and tokens")
	flagLogStore  = flag.String("chaos.log-store", string(partition.DefaultLogStore), "Raft log engine of every node: wal or boltdb")
	flagHotGen    = flag.Duration("chaos.hot-generation", 0, "how long the hot locks keep one set of names before the workload moves to fresh ones (default 20s)")
	flagArtifacts = flag.String("chaos.artifacts", "", "folder for a failed run's history and reports (default: a new folder under the temp dir)")
)

func kindNames() []string {
	var out []string
	for _, k := range append(nemesis.All(), nemesis.Membership()...) {
		out = append(out, string(k))
	}
	return out
}

// run is one experiment of the suite.
type run struct {
	seed      int64
	nodes     int
	duration  time.Duration
	nemeses   []nemesis.Kind
	clients   int
	processes bool
	netns     bool
	// secure turns every protection on (processes only).
	secure bool
	store  partition.LogStore
	// maxNodes bounds the membership nemeses (0: nodes + 2).
	maxNodes int
	// brisk paces faults closer together, for the short suite.
	brisk bool
}

// membership reports whether the run changes the cluster's members.
func (r run) membership() bool { return slices.ContainsFunc(r.nemeses, nemesis.IsMembership) }

// The dead-node timeout of runs with membership changes: a replaced node
// is removed by it half of the time. It is well above the longest a
// crash or pause nemesis holds a node (2 s, plus a restart), so only
// replaced nodes are ever removed that way.
const (
	deadNodeInProcess = 4 * time.Second
	deadNodeProcesses = 8 * time.Second
)

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos runs take tens of seconds")
	}
	if *flagRecheck != "" {
		recheck(t, *flagRecheck)
		return
	}
	if *flagDuration > 0 {
		kinds, err := nemesis.Parse(*flagNemeses)
		if err != nil {
			t.Fatal(err)
		}
		store, err := partition.ParseLogStore(*flagLogStore)
		if err != nil {
			t.Fatal(err)
		}
		experiment(t, run{seed: seedOrRandom(*flagSeed), nodes: *flagNodes, duration: *flagDuration, maxNodes: *flagMaxNodes,
			nemeses: kinds, clients: *flagClients, processes: *flagProcesses, netns: *flagNetns, secure: *flagSecure, store: store})
		return
	}
	// The short suite: fixed seeds, so a failure reproduces its choices,
	// plus one fresh seed per run, printed, to keep finding new ones; each
	// with every log store.
	runs := []run{
		{seed: 1, nodes: 3, duration: 12 * time.Second, brisk: true},
		{seed: 2, nodes: 5, duration: 10 * time.Second, brisk: true,
			nemeses: []nemesis.Kind{nemesis.KillMajority, nemesis.Split, nemesis.Bridge, nemesis.IsolateLead, nemesis.KillLeader}},
		{seed: seedOrRandom(0), nodes: 3, duration: 10 * time.Second, brisk: true},
		// Real processes: kill -9 and SIGSTOP, and partitions where
		// network namespaces can be made (root, as in CI).
		{seed: 3, nodes: 3, duration: 12 * time.Second, brisk: true, processes: true, netns: netlab.Available() == nil},
	}
	for _, store := range partition.LogStores() {
		for _, r := range runs {
			r.store = store
			t.Run(r.name(), func(t *testing.T) { experiment(t, r) })
		}
	}
	// Membership changes, once (on the default log store): real
	// processes grow from three members to five and back while kills,
	// pauses and (with namespaces) partitions strike beside them.
	r := run{seed: 5, nodes: 3, duration: 30 * time.Second, brisk: true, processes: true, netns: netlab.Available() == nil,
		store: partition.DefaultLogStore, nemeses: slices.Concat(nemesis.Membership(), []nemesis.Kind{
			nemesis.KillOne, nemesis.KillLeader, nemesis.PauseOne, nemesis.PauseLeader, nemesis.IsolateOne, nemesis.Split, nemesis.Bridge})}
	t.Run(r.name()+"/membership", func(t *testing.T) { experiment(t, r) })
	// Every protection on, once: HTTPS on the API, mutual TLS on the
	// internal port (Raft and forwarding), an encrypted gossip ring and
	// tokens, under kills, pauses and partitions.
	r = run{seed: 7, nodes: 3, duration: 12 * time.Second, brisk: true, processes: true, netns: netlab.Available() == nil,
		secure: true, store: partition.DefaultLogStore}
	t.Run(r.name(), func(t *testing.T) { experiment(t, r) })
}

// recheck judges a saved history again and prints the checks' table.
func recheck(t *testing.T, dir string) {
	h, err := chaos.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	opt := check.Options{LeaseSlack: Config{}.withDefaults().LeaseSlack, Timeout: cmp.Or(*flagCheckTime, 30*time.Minute)}
	rep, err := Recheck(h, opt)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Print(rep.Summary.String())
	for _, a := range rep.Anomalies {
		fmt.Println(a)
	}
	if !rep.Passed() {
		t.Fatalf("%d anomalies or undecided locks", len(rep.Anomalies))
	}
}

func (r run) name() string {
	name := fmt.Sprintf("%s/seed=%d/nodes=%d", r.store, r.seed, r.nodes)
	if r.processes {
		name += "/processes"
	}
	if r.secure {
		name += "/secure"
	}
	return name
}

// kindList renders nemeses for -chaos.nemeses, with "all" and
// "membership" for the whole groups.
func kindList(ks []nemesis.Kind) string {
	var out []string
	for _, group := range []struct {
		name  string
		kinds []nemesis.Kind
	}{{"all", nemesis.All()}, {"membership", nemesis.Membership()}} {
		if !slices.ContainsFunc(group.kinds, func(k nemesis.Kind) bool { return !slices.Contains(ks, k) }) {
			out = append(out, group.name)
			ks = slices.DeleteFunc(slices.Clone(ks), func(k nemesis.Kind) bool { return slices.Contains(group.kinds, k) })
		}
	}
	for _, k := range ks {
		out = append(out, string(k))
	}
	return strings.Join(out, ",")
}

func seedOrRandom(s int64) int64 {
	if s != 0 {
		return s
	}
	return time.Now().UnixNano() % 1_000_000
}

func experiment(t *testing.T, r run) {
	rerun := fmt.Sprintf("-chaos.duration %v -chaos.seed %d -chaos.nodes %d -chaos.log-store %s", r.duration, r.seed, r.nodes, r.store)
	if r.nemeses != nil {
		rerun += " -chaos.nemeses " + kindList(r.nemeses)
	}
	if r.maxNodes != 0 {
		rerun += fmt.Sprintf(" -chaos.max-nodes %d", r.maxNodes)
	}
	if r.processes {
		rerun += " -chaos.processes"
	}
	if r.netns {
		rerun += " -chaos.netns"
	}
	if r.secure {
		rerun += " -chaos.secure"
	}
	t.Logf("seed %d (rerun: go test ./internal/chaos/suite -run TestChaos -args %s)", r.seed, rerun)
	limits := nemesis.MembershipLimits{Max: r.maxNodes}
	var target Target
	switch {
	case r.processes && r.membership():
		limits.Max = cmp.Or(r.maxNodes, r.nodes+2)
		// Room for the most members plus a replacement that joins
		// before the node it replaces leaves.
		target = startProcesses(t, r.nodes, limits.Max+1, r.netns, r.secure, r.store, deadNodeProcesses)
	case r.processes:
		target = startProcesses(t, r.nodes, r.nodes, r.netns, r.secure, r.store, 0)
	case r.membership():
		target = startInProcess(t, r.nodes, r.store, deadNodeInProcess)
	default:
		target = startInProcess(t, r.nodes, r.store, 0)
	}
	dir := *flagArtifacts
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", fmt.Sprintf("kahuna-chaos-seed%d-", r.seed)); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(dir) // only if empty: a failed run keeps its files
	}
	cfg := Config{
		Workload:     workload.Config{Clients: r.clients, HotGeneration: *flagHotGen},
		Nemeses:      r.nemeses,
		Membership:   limits,
		Duration:     r.duration,
		CheckTimeout: *flagCheckTime,
		Seed:         r.seed,
		ArtifactsDir: dir,
		Log:          slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if *flagDuration > 0 {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)) // live progress
	}
	if p, ok := target.(*processes); ok {
		cfg.Workload.NewClient = p.web.client
	}
	if r.brisk {
		cfg.Quiet, cfg.MinHold, cfg.MaxHold = 700*time.Millisecond, 300*time.Millisecond, 1200*time.Millisecond
	}
	res, err := Run(cfg, target)
	if err != nil {
		t.Fatal(err)
	}
	if *flagDuration > 0 {
		fmt.Print(res.String()) // make chaos prints the summary, pass or fail
	} else {
		t.Log("\n" + res.String())
	}
	if !res.Passed() {
		t.Fatalf("%d anomalies; artifacts in %s", len(res.Anomalies), dir)
	}
	if len(res.Faults) == 0 {
		t.Fatal("no fault was injected")
	}
	if res.Report.Summary.Definite < 100 {
		t.Fatalf("only %d definite operations: the workload did not run", res.Report.Summary.Definite)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
