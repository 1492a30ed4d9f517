// Package nemesis injects faults into a running Kahuna cluster while a
// workload runs: crashes and restarts of one node, a partition's leader, a
// majority or every node; paused processes; network partitions (one node
// cut off, a majority/minority split, a bridge); leader churn; and
// membership changes (a node joins, is removed, or is replaced by a new
// one), which run beside the other faults. The cluster is reached through
// the Cluster interface (Dynamic for membership changes), implemented for
// in-process clusters and for real processes.
package nemesis

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrUnsupported is returned by a Cluster that cannot apply a fault (an
// in-process cluster cannot pause a node).
var ErrUnsupported = errors.New("fault not supported by this cluster")

// ErrExited is returned by a Cluster asked to act on a member whose server
// has exited by itself: a failure of the cluster, not of the harness.
var ErrExited = errors.New("the server has exited by itself")

// Cluster is what the nemeses act on. Node indexes run from 0 to Size()-1.
type Cluster interface {
	Size() int
	Partitions() int
	// Kill crashes node i: no clean shutdown, nothing handed over.
	Kill(i int) error
	// Restart starts a killed node again on its data directory.
	Restart(i int) error
	// Pause freezes node i (SIGSTOP) and Resume thaws it.
	Pause(i int) error
	Resume(i int) error
	// Cut blocks internal traffic between every pair a, b of nodes for
	// which cut(a, b) is true; Cut(nil) heals the network.
	Cut(cut func(a, b int) bool) error
	// Leader is the index of the node leading partition p, -1 if none.
	Leader(p int) int
	// TransferLeadership asks partition p's leader to hand over.
	TransferLeadership(p int) error
	// SlowDisk makes every write to node i's Raft logs take d longer;
	// zero restores it.
	SlowDisk(i int, d time.Duration) error
}

// Kind names a nemesis.
type Kind string

// The nemeses.
const (
	KillOne      Kind = "kill-one"
	KillLeader   Kind = "kill-leader"
	KillMajority Kind = "kill-majority"
	KillAll      Kind = "kill-all"
	PauseOne     Kind = "pause-one"
	PauseLeader  Kind = "pause-leader"
	IsolateOne   Kind = "isolate-one"
	IsolateLead  Kind = "isolate-leader"
	Split        Kind = "split"
	Bridge       Kind = "bridge"
	Churn        Kind = "leader-churn"
	SlowDisk     Kind = "slow-disk"
)

// All lists every nemesis that strikes one fault at a time, in the order
// they are described in docs/safety.md. The membership nemeses
// (Membership) are not part of it: they need a cluster whose members can
// change, and they run beside these.
func All() []Kind {
	return []Kind{KillOne, KillLeader, KillMajority, KillAll, PauseOne, PauseLeader,
		IsolateOne, IsolateLead, Split, Bridge, Churn, SlowDisk}
}

// Parse reads a comma-separated list of nemesis names; "all" stands for
// All() and "membership" for Membership(), e.g. "all,membership".
func Parse(s string) ([]Kind, error) {
	if s == "" {
		s = "all"
	}
	known := slices.Concat(All(), Membership())
	var out []Kind
	add := func(ks ...Kind) {
		for _, k := range ks {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	for _, name := range strings.Split(s, ",") {
		switch k := Kind(strings.TrimSpace(name)); {
		case k == "all":
			add(All()...)
		case k == "membership":
			add(Membership()...)
		case slices.Contains(known, k):
			add(k)
		default:
			return nil, fmt.Errorf("unknown nemesis %q (known: all, membership, %s)", k, joinKinds(known))
		}
	}
	return out, nil
}

func joinKinds(ks []Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// Fault is one injected fault, on the run's clock.
type Fault struct {
	Kind Kind
	// Detail says which nodes, e.g. "n2" or "{n1 n2} | {n3}".
	Detail string
	// Start and Healed are when it was injected and undone.
	Start, Healed time.Duration
	// Recovered is when every partition had a leader again after the
	// heal (zero if it was not seen before the next step).
	Recovered time.Duration
	// LeaderGap is the longest time any partition had no leader, from
	// the injection until Quiet after the heal.
	LeaderGap time.Duration
	// Err is set when the fault could not be applied.
	Err error
	// Outcome is what a membership change came to, e.g. "joined",
	// "removed (200)", "refused (409)"; empty for other faults.
	Outcome string
	// Anomaly is set when the cluster broke its contract while a
	// membership change ran: a node that never became a voter, a removed
	// node still in a configuration after a 200, a removed node that
	// started again on its old data. The suite reports it as an anomaly.
	Anomaly string
}

// Recovery is how long the cluster took to elect leaders everywhere after
// the fault was healed, or -1 if that was not seen.
func (f Fault) Recovery() time.Duration {
	if f.Recovered == 0 {
		return -1
	}
	return f.Recovered - f.Healed
}

// Injector applies one fault at a time to a cluster. Two injectors that
// share a guard (the fault schedule and the membership schedule) never
// act on the same node at once: a node one of them crashed, paused or is
// adding or removing is left alone by the other until it is released.
type Injector struct {
	c   Cluster
	rng *rand.Rand
	// names maps an index to a node name for Detail.
	names func(i int) string
	g     *guard
}

// guard is the set of nodes some fault holds.
type guard struct {
	mu   sync.Mutex
	held map[int]Kind
}

// NewInjector returns an injector; names renders node indexes (nil: the
// cluster's node IDs for a Dynamic cluster, else n1, n2…).
func NewInjector(c Cluster, rng *rand.Rand, names func(int) string) *Injector {
	return newInjector(c, rng, names, &guard{held: map[int]Kind{}})
}

func newInjector(c Cluster, rng *rand.Rand, names func(int) string, g *guard) *Injector {
	if names == nil {
		names = func(i int) string { return fmt.Sprintf("n%d", i+1) }
		if d, ok := c.(Dynamic); ok {
			names = d.ID
		}
	}
	return &Injector{c: c, rng: rng, names: names, g: g}
}

// members are the nodes that belong to the cluster now.
func (in *Injector) members() []int {
	if d, ok := in.c.(Dynamic); ok {
		return d.Members()
	}
	out := make([]int, in.c.Size())
	for i := range out {
		out[i] = i
	}
	return out
}

// free are the members no fault holds.
func (in *Injector) free() []int {
	in.g.mu.Lock()
	defer in.g.mu.Unlock()
	var out []int
	for _, i := range in.members() {
		if _, held := in.g.held[i]; !held {
			out = append(out, i)
		}
	}
	return out
}

// claim takes, for a fault of kind k, those of nodes that are members and
// that no fault holds, and returns them. Choosing from free and claiming
// are apart, so two faults may choose the same node; only one claims it.
func (in *Injector) claim(k Kind, nodes ...int) []int {
	in.g.mu.Lock()
	defer in.g.mu.Unlock()
	members := in.members()
	var out []int
	for _, i := range nodes {
		if _, held := in.g.held[i]; !held && slices.Contains(members, i) {
			in.g.held[i] = k
			out = append(out, i)
		}
	}
	return out
}

// hold marks nodes as taken by a fault of kind k, members or not (a node
// about to join); release frees them.
func (in *Injector) hold(k Kind, nodes ...int) {
	in.g.mu.Lock()
	defer in.g.mu.Unlock()
	for _, i := range nodes {
		in.g.held[i] = k
	}
}

func (in *Injector) release(nodes ...int) {
	in.g.mu.Lock()
	defer in.g.mu.Unlock()
	for _, i := range nodes {
		delete(in.g.held, i)
	}
}

// Inject applies a fault of kind k and returns what it did and the function
// that undoes it. Crashes and pauses strike only members no other fault
// holds; network faults divide every member. With an error, heal is nil
// unless the fault was applied all the same (a node found exited by
// itself, ErrExited): heal it then too.
func (in *Injector) Inject(k Kind) (detail string, heal func() error, err error) {
	free := in.free()
	all := in.members()
	n := len(all)
	if len(free) == 0 {
		switch k {
		case KillOne, KillLeader, KillMajority, KillAll, PauseOne, PauseLeader, IsolateOne, IsolateLead, SlowDisk:
			return "no node free to strike", func() error { return nil }, nil
		}
	}
	switch k {
	case KillOne:
		return in.kill(k, []int{free[in.rng.Intn(len(free))]})
	case KillLeader:
		return in.kill(k, []int{in.leaderOrAny(free)})
	case KillMajority:
		return in.kill(k, in.pick(free, min(n/2+1, len(free))))
	case KillAll:
		return in.kill(k, in.pick(free, len(free)))
	case PauseOne, PauseLeader:
		i := free[in.rng.Intn(len(free))]
		if k == PauseLeader {
			i = in.leaderOrAny(free)
		}
		if len(in.claim(k, i)) == 0 {
			return "no node free to strike", func() error { return nil }, nil
		}
		if err := in.c.Pause(i); err != nil {
			in.release(i)
			return "", nil, err
		}
		return in.names(i), func() error {
			defer in.release(i)
			return in.c.Resume(i)
		}, nil
	case IsolateOne, IsolateLead:
		i := free[in.rng.Intn(len(free))]
		if k == IsolateLead {
			i = in.leaderOrAny(free)
		}
		return in.cut(in.names(i)+" | rest", func(a, b int) bool { return a == i || b == i })
	case Split:
		minority := in.pick(all, n/2)
		side := map[int]bool{}
		for _, i := range minority {
			side[i] = true
		}
		return in.cut(in.sides(side, -1), func(a, b int) bool { return side[a] != side[b] })
	case Bridge:
		// One node (the bridge) talks to both halves; the halves do not
		// talk to each other. With three nodes: a - b - c.
		order := in.pick(all, n)
		bridge := order[0]
		side := map[int]bool{}
		for _, i := range order[1 : 1+(n-1)/2] {
			side[i] = true
		}
		detail := fmt.Sprintf("bridge %s between %s", in.names(bridge), in.sides(side, bridge))
		return in.cut(detail, func(a, b int) bool {
			return a != bridge && b != bridge && side[a] != side[b]
		})
	case SlowDisk:
		// The leader's disk, most of the time: that is where it hurts.
		i := in.leaderOrAny(free)
		d := 100*time.Millisecond + time.Duration(in.rng.Int63n(int64(200*time.Millisecond)))
		if err := in.c.SlowDisk(i, d); err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("%s +%v per log write", in.names(i), d.Round(time.Millisecond)),
			func() error { return in.c.SlowDisk(i, 0) }, nil
	case Churn:
		var moved []string
		for p := range in.c.Partitions() {
			err := in.c.TransferLeadership(p)
			if errors.Is(err, ErrUnsupported) {
				return "", nil, err
			}
			if err == nil {
				moved = append(moved, fmt.Sprint(p))
			}
		}
		return "transferred partitions " + strings.Join(moved, ","), func() error { return nil }, nil
	case Join, Remove, Replace:
		return "", nil, fmt.Errorf("%w: %s runs on its own schedule (Schedule), beside the other faults", ErrUnsupported, k)
	}
	return "", nil, fmt.Errorf("unknown nemesis %q", k)
}

func (in *Injector) kill(k Kind, nodes []int) (string, func() error, error) {
	nodes = in.claim(k, nodes...)
	if len(nodes) == 0 {
		return "no node free to strike", func() error { return nil }, nil
	}
	slices.Sort(nodes)
	var names []string
	// A node that exited by itself is reported and, like the others,
	// started again by the heal, so that the run goes on.
	var exited []error
	for _, i := range nodes {
		if err := in.c.Kill(i); errors.Is(err, ErrExited) {
			exited = append(exited, fmt.Errorf("kill %s: %w", in.names(i), err))
		} else if err != nil {
			in.release(nodes...)
			return "", nil, fmt.Errorf("kill %s: %w", in.names(i), err)
		}
		names = append(names, in.names(i))
	}
	return strings.Join(names, " "), func() error {
		defer in.release(nodes...)
		var errs []error
		for _, i := range nodes {
			errs = append(errs, in.c.Restart(i))
		}
		return errors.Join(errs...)
	}, errors.Join(exited...)
}

func (in *Injector) cut(detail string, cut func(a, b int) bool) (string, func() error, error) {
	if err := in.c.Cut(cut); err != nil {
		return "", nil, err
	}
	return detail, func() error { return in.c.Cut(nil) }, nil
}

// pick returns k distinct random nodes of from.
func (in *Injector) pick(from []int, k int) []int {
	out := make([]int, k)
	for j, p := range in.rng.Perm(len(from))[:k] {
		out[j] = from[p]
	}
	return out
}

// leaderOrAny is the leader of a random partition if it is one of from,
// else a random node of from.
func (in *Injector) leaderOrAny(from []int) int {
	if i := in.c.Leader(in.rng.Intn(in.c.Partitions())); i >= 0 && slices.Contains(from, i) {
		return i
	}
	return from[in.rng.Intn(len(from))]
}

// sides renders a two-way split, e.g. "{n1} | {n2 n3}", leaving out the
// node except (a bridge; -1 for none).
func (in *Injector) sides(side map[int]bool, except int) string {
	var a, b []string
	for _, i := range in.members() {
		if i == except {
			continue
		}
		if side[i] {
			a = append(a, in.names(i))
		} else {
			b = append(b, in.names(i))
		}
	}
	return "{" + strings.Join(a, " ") + "} | {" + strings.Join(b, " ") + "}"
}
