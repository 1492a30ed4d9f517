package cluster

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// Balancer spreads partition leaders over the healthy nodes, so that no node
// leads more than one partition more than another (max − min ≤ 1).
//
// Every node runs one and computes the same plan from the same view: the
// fewest moves that balance the leaders, each partition moved at most once.
// A node carries out the moves of the partitions it leads, all at once, so a
// new cluster whose partitions all elected one node is balanced in one
// round, and a node that comes back gets its share in one round too.
//
// Gossip alone is not proof that a node can take a leadership: a node cut
// off from the others' Raft traffic may still gossip. So a plan is carried
// out only after it has stood unchanged for Settle, and only to targets that
// pass Healthy (the server asks their /readyz) at that moment; a target that
// failed a transfer is left alone for a while.
type Balancer struct {
	Self    string
	Parts   *partition.Set
	Members *membership.Membership
	// Interval is how often the plan is recomputed; Settle is how long it
	// must stand before it is carried out (default: two intervals).
	Interval time.Duration
	Settle   time.Duration
	Log      *slog.Logger
	// Healthy reports whether a node can serve; nil means gossip is
	// trusted alone.
	Healthy func(ctx context.Context, m membership.Member) bool

	last      []Move
	lastSince time.Time
	backoff   map[string]time.Time
}

// failedTargetPause is how long a node that failed a transfer is skipped
// as a target. A transfer to a node that cannot take over stalls the
// partition's writes for up to an election timeout, so it is not retried
// every round; and hashicorp/raft #696 can wedge a second transfer to the
// same follower in one term while the first one's catch-up request still
// waits in that follower's replication queue, which drains within its
// longest back-off (~10 s) plus one RPC timeout (10 s).
const failedTargetPause = 30 * time.Second

// Run balances until ctx ends.
func (b *Balancer) Run(ctx context.Context) {
	if b.Settle == 0 {
		b.Settle = 2 * b.Interval
	}
	t := time.NewTicker(b.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			b.round(ctx, now)
		}
	}
}

// Move is one leadership transfer of a plan.
type Move struct {
	Partition int
	From, To  string
}

// plan returns the fewest moves that leave every healthy node leading
// within one partition of every other, given each partition's leader. Only
// partitions led by healthy nodes move, each at most once; the most loaded
// node gives to the least loaded, lowest IDs and partitions first, so every
// node that sees the same leaders computes the same plan. It returns nil
// when leaders are balanced or an election is under way.
func plan(leaders []string, healthy []string) []Move {
	if len(healthy) < 2 {
		return nil
	}
	count := map[string]int{}
	for _, id := range healthy {
		count[id] = 0
	}
	for _, l := range leaders {
		if l == "" {
			return nil // an election is under way; look again later
		}
		if _, ok := count[l]; ok {
			count[l]++
		}
	}
	ids := slices.Clone(healthy)
	slices.Sort(ids)
	moved := make([]bool, len(leaders))
	var moves []Move
	for {
		from, to := ids[0], ids[0]
		for _, id := range ids {
			if count[id] > count[from] {
				from = id
			}
			if count[id] < count[to] {
				to = id
			}
		}
		if count[from]-count[to] <= 1 {
			return moves
		}
		p := -1
		for i, l := range leaders {
			if l == from && !moved[i] {
				p = i
				break
			}
		}
		if p < 0 {
			return moves // cannot happen: from leads count[from] > 1 unmoved partitions
		}
		moved[p] = true
		count[from]--
		count[to]++
		moves = append(moves, Move{Partition: p, From: from, To: to})
	}
}

func (b *Balancer) round(ctx context.Context, now time.Time) {
	var healthy []string
	members := map[string]membership.Member{}
	all := b.Members.Members()
	// Leaderships go only to voters of every partition, and never to a
	// node that some member asked to remove: it is handing its own over.
	voters := votersEverywhere(b.Parts)
	removing := map[string]bool{}
	for _, m := range all {
		if m.Alive() {
			for _, id := range m.Removing {
				removing[id] = true
			}
		}
	}
	for _, m := range all {
		if m.State == membership.StateAlive && m.Formed && voters[m.ID] && !removing[m.ID] && now.After(b.backoff[m.ID]) {
			healthy = append(healthy, m.ID)
			members[m.ID] = m
		}
	}
	leaders := make([]string, b.Parts.Count())
	for i, g := range b.Parts.Groups() {
		leaders[i], _ = g.Leader()
	}
	moves := plan(leaders, healthy)
	if !slices.Equal(moves, b.last) {
		b.last, b.lastSince = moves, now
		return
	}
	if len(moves) == 0 || now.Sub(b.lastSince) < b.Settle {
		return
	}
	var mine []Move
	for _, mv := range moves {
		if mv.From == b.Self && b.Parts.Group(mv.Partition).IsLeader() {
			mine = append(mine, mv)
		}
	}
	if len(mine) == 0 {
		return
	}
	// Whatever happens next changes the leaders; the next plan starts
	// its settling time afresh.
	b.last = nil
	healthyNow := b.probeTargets(ctx, mine, members)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, mv := range mine {
		if !healthyNow[mv.To] {
			b.Log.Debug("not moving a leadership to a node that is not ready", "partition", mv.Partition, "to", mv.To)
			continue
		}
		wg.Go(func() {
			b.Log.Info("moving partition leadership to balance the cluster", "partition", mv.Partition, "to", mv.To)
			if err := b.Parts.Group(mv.Partition).TransferLeadership(mv.To); err != nil {
				b.Log.Warn("leadership transfer failed", "partition", mv.Partition, "to", mv.To, "err", err)
				mu.Lock()
				b.pause(mv.To, now)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// probeTargets asks each distinct target of moves whether it can serve.
func (b *Balancer) probeTargets(ctx context.Context, moves []Move, members map[string]membership.Member) map[string]bool {
	out := map[string]bool{}
	for _, mv := range moves {
		if _, done := out[mv.To]; done {
			continue
		}
		out[mv.To] = b.Healthy == nil || b.Healthy(ctx, members[mv.To])
	}
	return out
}

func (b *Balancer) pause(id string, now time.Time) {
	if b.backoff == nil {
		b.backoff = map[string]time.Time{}
	}
	b.backoff[id] = now.Add(failedTargetPause)
}

// votersEverywhere is the set of nodes that vote in every partition.
func votersEverywhere(parts *partition.Set) map[string]bool {
	count := map[string]int{}
	for _, g := range parts.Groups() {
		c, err := g.Configuration()
		if err != nil {
			return nil
		}
		for _, id := range c.Voters() {
			count[id]++
		}
	}
	out := map[string]bool{}
	for id, n := range count {
		if n == parts.Count() {
			out[id] = true
		}
	}
	return out
}
