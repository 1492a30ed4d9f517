package nemesis

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDynamic is a cluster whose members change, checking as it goes the
// rules the nemeses must keep: crashes, pauses and restarts only of
// members that run or were crashed by the same fault, never of a node
// being added or removed; never fewer than three voters; one membership
// change at a time.
type fakeDynamic struct {
	t  *testing.T
	mu sync.Mutex

	nodes []*fakeNode
	// refuse makes the next removals answer these statuses, in order.
	refuse []int
	// deadNode, when set, removes a killed voter by itself once the
	// voters left are at least three.
	deadNode time.Duration
	// stuck makes the next join never finish.
	stuck bool

	// What happened.
	sizes      []int // members after each change
	removals   map[int]int
	violations []string
}

type fakeNode struct {
	id                           string
	voter, down, paused, removed bool
	retired, wiped               bool
	joining, stuck               bool
	// kills counts the node's crashes: the dead-node timeout runs from
	// the last one.
	kills int
}

func newFakeDynamic(t *testing.T, size int) *fakeDynamic {
	f := &fakeDynamic{t: t, removals: map[int]int{}}
	for i := range size {
		f.nodes = append(f.nodes, &fakeNode{id: fmt.Sprintf("n%d", i+1), voter: true})
	}
	return f
}

func (f *fakeDynamic) violate(format string, args ...any) {
	var state []string
	for _, n := range f.nodes {
		if !n.retired {
			state = append(state, fmt.Sprintf("%s%+v", n.id, *n))
		}
	}
	f.violations = append(f.violations, fmt.Sprintf(format, args...)+" "+strings.Join(state, " "))
}

func (f *fakeDynamic) Size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.nodes)
}
func (f *fakeDynamic) Partitions() int { return 3 }

func (f *fakeDynamic) Members() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for i, n := range f.nodes {
		if !n.retired {
			out = append(out, i)
		}
	}
	return out
}

func (f *fakeDynamic) ID(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[i].id
}

func (f *fakeDynamic) voters() int {
	v := 0
	for _, n := range f.nodes {
		if n.voter && !n.removed {
			v++
		}
	}
	return v
}

func (f *fakeDynamic) Kill(i int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[i]
	if n.retired || n.joining && !n.stuck {
		f.violate("kill of %s (retired %v, joining %v)", n.id, n.retired, n.joining)
	}
	n.down = true
	n.kills++
	if kill := n.kills; f.deadNode > 0 && n.voter && !n.removed {
		go func() {
			time.Sleep(f.deadNode)
			for {
				f.mu.Lock()
				switch {
				case !n.down || n.removed || n.kills != kill:
					f.mu.Unlock()
					return
				case f.voters()-1 >= 3:
					n.removed, n.voter = true, false
					f.mu.Unlock()
					return
				}
				f.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	return nil
}

func (f *fakeDynamic) Restart(i int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[i]
	if !n.down || n.wiped || n.retired || n.removed {
		f.violate("restart of %s (down %v, wiped %v, retired %v, removed %v)", n.id, n.down, n.wiped, n.retired, n.removed)
	}
	n.down = false
	return nil
}

func (f *fakeDynamic) Pause(i int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[i]
	if n.retired || n.joining || n.down {
		f.violate("pause of %s (retired %v, joining %v, down %v)", n.id, n.retired, n.joining, n.down)
	}
	n.paused = true
	return nil
}

func (f *fakeDynamic) Resume(i int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[i].paused = false
	return nil
}

func (f *fakeDynamic) Cut(func(a, b int) bool) error { return nil }
func (f *fakeDynamic) Leader(p int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.nodes {
		if n.voter && !n.down && !n.paused && !n.removed {
			return i
		}
	}
	return -1
}
func (f *fakeDynamic) TransferLeadership(int) error      { return ErrUnsupported }
func (f *fakeDynamic) SlowDisk(int, time.Duration) error { return ErrUnsupported }

func (f *fakeDynamic) Join() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		if n.joining && !n.retired && !n.down {
			f.violate("%s joins while %s still joins", fmt.Sprintf("n%d", len(f.nodes)+1), n.id)
		}
	}
	n := &fakeNode{id: fmt.Sprintf("n%d", len(f.nodes)+1), joining: true, stuck: f.stuck}
	f.stuck = false
	f.nodes = append(f.nodes, n)
	return len(f.nodes) - 1, nil
}

func (f *fakeDynamic) Wipe(i int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.nodes[i].down {
		f.violate("wipe of running %s", f.nodes[i].id)
	}
	f.nodes[i].wiped = true
	return nil
}

func (f *fakeDynamic) Retire(i int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[i]
	if !n.removed {
		f.violate("retire of %s, still a member", n.id)
	}
	n.retired, n.down = true, true
	f.sizes = append(f.sizes, f.voters())
	return nil
}

func (f *fakeDynamic) RemoveNode(via int, id string, _ time.Duration) (int, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes[via].down || f.nodes[via].paused {
		return 0, "", fmt.Errorf("connection refused")
	}
	if len(f.refuse) > 0 {
		s := f.refuse[0]
		f.refuse = f.refuse[1:]
		return s, "refused by the test", nil
	}
	for i, n := range f.nodes {
		if n.id != id {
			continue
		}
		if n.removed {
			return 404, "unknown node", nil
		}
		if n.voter && f.voters()-1 < 3 {
			f.violate("removal of %s would leave %d voters", id, f.voters()-1)
		}
		n.removed, n.voter = true, false
		f.removals[i]++
		return 200, "", nil
	}
	return 404, "unknown node", nil
}

func (f *fakeDynamic) Config(i int) ([]PartitionConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes[i].down || f.nodes[i].paused {
		return nil, fmt.Errorf("down")
	}
	var c PartitionConfig
	for _, n := range f.nodes {
		if n.voter && !n.removed {
			c.Voters = append(c.Voters, n.id)
		}
	}
	return []PartitionConfig{c, c, c}, nil
}

func (f *fakeDynamic) Ready(i int) (bool, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[i]
	switch {
	case n.down || n.paused:
		return false, "", fmt.Errorf("down")
	case n.removed:
		return false, "this node was removed from the cluster", nil
	case n.joining && n.stuck:
		return false, "joining the cluster: not yet a voter of every partition", nil
	case n.joining:
		// Promoted on the first look.
		n.joining, n.voter = false, true
		f.sizes = append(f.sizes, f.voters())
		// Five members at most, and a replacement beside them
		// before the node it replaces leaves.
		if v := f.voters(); v > 6 {
			f.violate("%d voters", v)
		}
	}
	return true, "", nil
}

func (f *fakeDynamic) StartRemoved(i int, _ time.Duration) (bool, string, error) {
	return true, "exit 1", nil
}

func (f *fakeDynamic) DeadNodeTimeout() time.Duration { return f.deadNode }

func TestMembershipChangesKeepTheirBounds(t *testing.T) {
	for _, deadNode := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run(fmt.Sprint("dead-node=", deadNode), func(t *testing.T) {
			f := newFakeDynamic(t, 3)
			f.deadNode = deadNode
			f.refuse = []int{409, 503} // the first two removals are refused
			clock := time.Now()
			s := Schedule{
				Kinds: slices.Concat(Membership(), []Kind{KillOne, KillMajority, KillAll, PauseOne, PauseLeader, Split}),
				Quiet: 5 * time.Millisecond, MinHold: time.Millisecond, MaxHold: 5 * time.Millisecond,
				Now: func() time.Duration { return time.Since(clock) },
				Log: slog.New(slog.DiscardHandler),
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			faults := s.Run(ctx, f, rand.New(rand.NewSource(7)))

			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.violations) > 0 {
				t.Fatalf("the nemeses broke their rules:\n%s", strings.Join(f.violations, "\n"))
			}
			count := map[Kind]int{}
			outcomes := map[string]int{}
			for i, fl := range faults {
				count[fl.Kind]++
				if IsMembership(fl.Kind) {
					outcomes[fl.Outcome]++
				}
				if fl.Err != nil || fl.Anomaly != "" {
					t.Errorf("%s (%s): err %v, anomaly %q", fl.Kind, fl.Detail, fl.Err, fl.Anomaly)
				}
				if i > 0 && fl.Start < faults[i-1].Start {
					t.Errorf("faults out of order at %d", i)
				}
			}
			for _, k := range []Kind{Join, Remove, Replace, KillOne, PauseOne} {
				if count[k] == 0 {
					t.Errorf("no %s in %v", k, count)
				}
			}
			if outcomes["refused (409)"] != 1 || outcomes["refused (503)"] != 1 {
				t.Errorf("outcomes %v, want one 409 and one 503", outcomes)
			}
			// Both bounds were reached: 3 → 5 → 3.
			if !slices.Contains(f.sizes, 5) || slices.Index(f.sizes[slices.Index(f.sizes, 5):], 3) < 0 {
				t.Errorf("voters over the run %v, want 5 and then 3", f.sizes)
			}
			if slices.Min(f.sizes) < 3 || slices.Max(f.sizes) > 6 {
				t.Errorf("voters over the run %v, want within [3, 6]", f.sizes)
			}
			for _, n := range f.nodes {
				if n.removed && !n.retired {
					t.Errorf("%s removed but never retired", n.id)
				}
				if n.down && !n.retired {
					t.Errorf("%s left down", n.id)
				}
			}
			if deadNode > 0 && outcomes["removed (dead-node timeout)"] == 0 {
				t.Errorf("no replacement removed by the dead-node timeout: %v", outcomes)
			}
		})
	}
}

func TestMembershipNeedsADynamicCluster(t *testing.T) {
	f := newFake(3)
	clock := time.Now()
	s := Schedule{Kinds: []Kind{Join, KillOne}, Quiet: 5 * time.Millisecond, MinHold: time.Millisecond, MaxHold: time.Millisecond,
		Now: func() time.Duration { return time.Since(clock) }, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	for _, fl := range s.Run(ctx, f, rand.New(rand.NewSource(1))) {
		if fl.Kind != KillOne {
			t.Fatalf("%s on a cluster whose members cannot change", fl.Kind)
		}
	}
	if _, _, err := NewInjector(f, rand.New(rand.NewSource(1)), nil).Inject(Remove); err == nil {
		t.Fatal("Inject(remove) did not say it runs on its own schedule")
	}
}

// TestJoinThatNeverFinishes: a new node that never becomes a voter is an
// anomaly; it is then killed and removed, and the run goes on.
func TestJoinThatNeverFinishes(t *testing.T) {
	f := newFakeDynamic(t, 3)
	f.stuck = true
	clock := time.Now()
	s := Schedule{
		Kinds: slices.Concat(Membership(), []Kind{KillOne, PauseOne}),
		Quiet: 5 * time.Millisecond, MinHold: time.Millisecond, MaxHold: 5 * time.Millisecond,
		Membership: MembershipLimits{JoinTimeout: 300 * time.Millisecond},
		Now:        func() time.Duration { return time.Since(clock) },
		Log:        slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	faults := s.Run(ctx, f, rand.New(rand.NewSource(3)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.violations) > 0 {
		t.Fatalf("the nemeses broke their rules:\n%s", strings.Join(f.violations, "\n"))
	}
	var anomalies, joined int
	for _, fl := range faults {
		if fl.Err != nil {
			t.Errorf("%s (%s): %v", fl.Kind, fl.Detail, fl.Err)
		}
		if fl.Anomaly != "" {
			anomalies++
		}
		if fl.Outcome == "joined" {
			joined++
		}
	}
	if anomalies != 1 || joined == 0 {
		t.Fatalf("%d anomalies and %d joins, want the one that never finished and later ones that did", anomalies, joined)
	}
	for _, n := range f.nodes {
		if n.stuck && !n.retired {
			t.Errorf("%s never joined and was not removed", n.id)
		}
	}
}
