package nemesis

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeCluster records what the injector did to it.
type fakeCluster struct {
	size, parts int
	down        map[int]bool
	paused      map[int]bool
	cut         func(a, b int) bool
	leader      []int
	transfers   int
	noPause     bool
	slow        map[int]time.Duration
}

func newFake(size int) *fakeCluster {
	f := &fakeCluster{size: size, parts: size, down: map[int]bool{}, paused: map[int]bool{}, slow: map[int]time.Duration{}}
	for p := range size {
		f.leader = append(f.leader, p)
	}
	return f
}

func (f *fakeCluster) Size() int       { return f.size }
func (f *fakeCluster) Partitions() int { return f.parts }
func (f *fakeCluster) Kill(i int) error {
	f.down[i] = true
	return nil
}
func (f *fakeCluster) Restart(i int) error {
	if !f.down[i] {
		return fmt.Errorf("n%d is not down", i+1)
	}
	delete(f.down, i)
	return nil
}
func (f *fakeCluster) Pause(i int) error {
	if f.noPause {
		return ErrUnsupported
	}
	f.paused[i] = true
	return nil
}
func (f *fakeCluster) Resume(i int) error {
	delete(f.paused, i)
	return nil
}
func (f *fakeCluster) Cut(cut func(a, b int) bool) error {
	f.cut = cut
	return nil
}
func (f *fakeCluster) Leader(p int) int { return f.leader[p] }
func (f *fakeCluster) TransferLeadership(p int) error {
	f.transfers++
	f.leader[p] = (f.leader[p] + 1) % f.size
	return nil
}

func (f *fakeCluster) SlowDisk(i int, d time.Duration) error {
	if d == 0 {
		delete(f.slow, i)
	} else {
		f.slow[i] = d
	}
	return nil
}

// connected lists the pairs the current cut lets talk.
func (f *fakeCluster) connected() string {
	var out []string
	for a := range f.size {
		for b := a + 1; b < f.size; b++ {
			if f.cut == nil || !(f.cut(a, b) || f.cut(b, a)) {
				out = append(out, fmt.Sprintf("%d-%d", a+1, b+1))
			}
		}
	}
	return strings.Join(out, " ")
}

func TestKillsRestartOnHeal(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		want int
	}{{KillOne, 1}, {KillLeader, 1}, {KillMajority, 3}, {KillAll, 5}} {
		f := newFake(5)
		in := NewInjector(f, rand.New(rand.NewSource(1)), nil)
		detail, heal, err := in.Inject(tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.down) != tc.want || len(strings.Fields(detail)) != tc.want {
			t.Fatalf("%s: %d down (%q), want %d", tc.kind, len(f.down), detail, tc.want)
		}
		if err := heal(); err != nil || len(f.down) != 0 {
			t.Fatalf("%s: heal: %v, still down %v", tc.kind, err, f.down)
		}
	}
}

func TestNetworkFaults(t *testing.T) {
	f := newFake(3)
	in := NewInjector(f, rand.New(rand.NewSource(2)), nil)
	for _, tc := range []struct {
		kind Kind
		// pairs is how many node pairs still talk.
		pairs int
	}{{IsolateOne, 1}, {IsolateLead, 1}, {Split, 1}, {Bridge, 2}} {
		detail, heal, err := in.Inject(tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(strings.Fields(f.connected())); got != tc.pairs {
			t.Fatalf("%s (%s): connected %q, want %d pairs", tc.kind, detail, f.connected(), tc.pairs)
		}
		if err := heal(); err != nil || f.connected() != "1-2 1-3 2-3" {
			t.Fatalf("%s: after heal %q (%v)", tc.kind, f.connected(), err)
		}
	}
	// A five-node bridge: the bridge talks to all, the halves (2 and 2)
	// to nobody across.
	f = newFake(5)
	in = NewInjector(f, rand.New(rand.NewSource(3)), nil)
	if _, _, err := in.Inject(Bridge); err != nil {
		t.Fatal(err)
	}
	if got := len(strings.Fields(f.connected())); got != 4+1+1 {
		t.Fatalf("bridge of five: %q", f.connected())
	}
}

func TestPauseAndChurn(t *testing.T) {
	f := newFake(3)
	in := NewInjector(f, rand.New(rand.NewSource(4)), nil)
	_, heal, err := in.Inject(PauseLeader)
	if err != nil || len(f.paused) != 1 {
		t.Fatalf("pause: %v %v", err, f.paused)
	}
	if heal(); len(f.paused) != 0 {
		t.Fatal("resume left a node paused")
	}
	if _, _, err := in.Inject(Churn); err != nil || f.transfers != 3 {
		t.Fatalf("churn: %v, %d transfers", err, f.transfers)
	}
	_, heal, err = in.Inject(SlowDisk)
	if err != nil || len(f.slow) != 1 {
		t.Fatalf("slow disk: %v %v", err, f.slow)
	}
	for _, d := range f.slow {
		if d < 100*time.Millisecond || d > 300*time.Millisecond {
			t.Fatalf("slow disk delay %v", d)
		}
	}
	if heal(); len(f.slow) != 0 {
		t.Fatal("heal left a slow disk")
	}
	f.noPause = true
	if _, _, err := in.Inject(PauseOne); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("pause on a cluster that cannot: %v", err)
	}
}

func TestParse(t *testing.T) {
	if ks, err := Parse("all"); err != nil || len(ks) != len(All()) {
		t.Fatalf("all: %v %v", ks, err)
	}
	if ks, err := Parse("kill-leader, split"); err != nil || len(ks) != 2 || ks[1] != Split {
		t.Fatalf("list: %v %v", ks, err)
	}
	if _, err := Parse("kill-leader,flood"); err == nil || !strings.Contains(err.Error(), `"flood"`) {
		t.Fatalf("unknown nemesis: %v", err)
	}
	if ks, err := Parse("all,membership"); err != nil || len(ks) != len(All())+3 || !slices.Contains(ks, Replace) {
		t.Fatalf("all,membership: %v %v", ks, err)
	}
	if ks, err := Parse("membership,kill-one,join"); err != nil || !slices.Equal(ks, []Kind{Join, Remove, Replace, KillOne}) {
		t.Fatalf("membership,kill-one,join: %v %v", ks, err)
	}
}
