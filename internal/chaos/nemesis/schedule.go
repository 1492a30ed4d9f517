package nemesis

import (
	"context"
	"errors"
	"log/slog"
	"math/rand"
	"slices"
	"sync"
	"time"
)

// Schedule runs faults one after the other: a quiet spell, a fault held for
// a while, its heal, and again, cycling through Kinds in a shuffled order
// so that every kind comes up. Membership kinds (join, remove, replace)
// run on a second time line at the same time, one change after the other,
// on a Dynamic cluster: the two never strike the same node at once (a node
// one of them crashed, paused, adds or removes is left alone by the other).
type Schedule struct {
	Kinds []Kind
	// Membership bounds the membership changes (zero: from the cluster's
	// size to two more and back, never fewer than three voters).
	Membership MembershipLimits
	// Quiet is the time between a heal and the next fault; during it the
	// schedule watches for recovery (a leader in every partition).
	Quiet time.Duration
	// A fault is held for a random time in [MinHold, MaxHold].
	MinHold, MaxHold time.Duration
	// Now reads the run's clock (the history recorder's), so faults and
	// operations share a time line.
	Now func() time.Duration
	Log *slog.Logger
}

// Run injects faults until ctx ends, heals the last one, finishes the
// membership change under way (and any removal left unfinished), and
// returns the faults in the order they started. Kinds the cluster does
// not support are dropped after the first try.
func (s Schedule) Run(ctx context.Context, c Cluster, rng *rand.Rand) []Fault {
	g := &guard{held: map[int]Kind{}}
	var kinds, changes []Kind
	for _, k := range s.Kinds {
		if IsMembership(k) {
			changes = append(changes, k)
		} else {
			kinds = append(kinds, k)
		}
	}
	var (
		wg     sync.WaitGroup
		member []Fault
	)
	if len(changes) > 0 {
		d, ok := c.(Dynamic)
		if !ok {
			s.Log.Info("membership nemeses need a cluster whose members can change; dropped", "nemeses", changes)
		} else {
			// Its own random source, drawn first: the fault schedule's
			// choices stay repeatable for a seed.
			m := &changer{c: d, rng: rand.New(rand.NewSource(rng.Int63())), kinds: changes,
				lim: s.Membership.withDefaults(len(d.Members())), now: s.Now, log: s.Log}
			m.in = newInjector(c, m.rng, nil, g)
			wg.Add(1)
			go func() {
				defer wg.Done()
				member = m.run(ctx, s.Quiet)
			}()
		}
	}
	faults := s.faults(ctx, c, newInjector(c, rng, nil, g), rng, kinds)
	wg.Wait()
	faults = append(faults, member...)
	slices.SortStableFunc(faults, func(a, b Fault) int { return int(a.Start - b.Start) })
	return faults
}

// faults runs the one-at-a-time faults until ctx ends.
func (s Schedule) faults(ctx context.Context, c Cluster, in *Injector, rng *rand.Rand, kinds []Kind) []Fault {
	var faults []Fault
	var queue []Kind
	// The first quiet spell lets the workload warm up; later ones are
	// spent watching the cluster recover from the previous fault.
	if len(kinds) == 0 || !sleep(ctx, s.Quiet) {
		return nil
	}
	for len(kinds) > 0 && ctx.Err() == nil {
		if len(queue) == 0 {
			queue = append(queue, kinds...)
			rng.Shuffle(len(queue), func(i, j int) { queue[i], queue[j] = queue[j], queue[i] })
		}
		k := queue[0]
		queue = queue[1:]
		f := Fault{Kind: k, Start: s.Now()}
		detail, heal, err := in.Inject(k)
		if errors.Is(err, ErrUnsupported) {
			s.Log.Info("nemesis not supported here; dropped", "nemesis", k)
			kinds = remove(kinds, k)
			continue
		}
		f.Detail, f.Err = detail, err
		gaps := newGapWatch(c, s.Now)
		if heal != nil {
			s.Log.Info("fault injected", "nemesis", k, "detail", detail)
			hold := s.MinHold
			if span := s.MaxHold - s.MinHold; span > 0 {
				hold += time.Duration(rng.Int63n(int64(span)))
			}
			// Hold the fault even if ctx ends meanwhile: it is healed below.
			gaps.watch(time.Now().Add(hold), false)
			f.Err = errors.Join(f.Err, heal())
		}
		f.Healed = s.Now()
		s.Log.Info("fault healed", "nemesis", k, "err", f.Err)
		// Watch for a leader everywhere for up to Quiet or 10 s, whichever
		// is longer, then spend the rest of the quiet spell watching.
		f.Recovered = gaps.watch(time.Now().Add(max(s.Quiet, 10*time.Second)), true)
		gaps.watch(time.Now().Add(s.Quiet-(s.Now()-f.Healed)), false)
		f.LeaderGap = gaps.longest()
		faults = append(faults, f)
	}
	return faults
}

// gapWatch measures, per partition, the longest time without a leader.
type gapWatch struct {
	c     Cluster
	now   func() time.Duration
	since []time.Duration // when each partition lost its leader; -1 if it has one
	max   time.Duration
}

func newGapWatch(c Cluster, now func() time.Duration) *gapWatch {
	g := &gapWatch{c: c, now: now, since: make([]time.Duration, c.Partitions())}
	for p := range g.since {
		g.since[p] = -1
	}
	return g
}

// watch polls the leaders until the deadline or, with untilAll, until
// every partition has one; it returns when that was seen (zero if not).
func (g *gapWatch) watch(until time.Time, untilAll bool) time.Duration {
	for {
		t := g.now()
		all := true
		for p := range g.since {
			switch has := g.c.Leader(p) >= 0; {
			case has && g.since[p] >= 0:
				g.max = max(g.max, t-g.since[p])
				g.since[p] = -1
			case !has && g.since[p] < 0:
				g.since[p] = t
			}
			all = all && g.since[p] < 0
		}
		if all && untilAll {
			return t
		}
		if !time.Now().Before(until) {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// longest is the longest gap seen, counting gaps still open.
func (g *gapWatch) longest() time.Duration {
	t := g.now()
	for _, s := range g.since {
		if s >= 0 {
			g.max = max(g.max, t-s)
		}
	}
	return g.max
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func remove(ks []Kind, k Kind) []Kind {
	out := ks[:0]
	for _, x := range ks {
		if x != k {
			out = append(out, x)
		}
	}
	return out
}
