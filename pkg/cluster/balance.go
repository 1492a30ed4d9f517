package cluster

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// Balancer spreads partition leaders over the healthy nodes, so that no node
// leads more than one partition more than another (max − min ≤ 1). Every
// node runs one, but only the most loaded node (the lowest ID among ties)
// acts, handing one of its partitions to the least loaded node per round;
// that keeps nodes from moving leaders against each other.
//
// Gossip alone is not proof that a node can take a leadership: a node cut
// off from the others' Raft traffic may still gossip. So a move needs the
// same plan two rounds in a row, and the target must pass Healthy (the
// server asks its /readyz); a target that failed a transfer is left alone
// for a while.
type Balancer struct {
	Self     string
	Parts    *partition.Set
	Members  *membership.Membership
	Interval time.Duration
	Log      *slog.Logger
	// Healthy reports whether a node can serve; nil means gossip is
	// trusted alone.
	Healthy func(ctx context.Context, m membership.Member) bool

	last    Plan
	hasLast bool
	backoff map[string]time.Time
}

// failedTargetPause is how many rounds a node that failed a transfer is
// skipped as a target.
const failedTargetPause = 10

// Run balances until ctx ends.
func (b *Balancer) Run(ctx context.Context) {
	t := time.NewTicker(b.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.round(ctx)
		}
	}
}

// Plan is one leadership move.
type Plan struct {
	Partition int
	From, To  string
}

// plan decides the next move from a snapshot of leaders and healthy nodes,
// or returns false when leaders are balanced (or leadership is in flux).
func plan(leaders []string, healthy []string) (Plan, bool) {
	if len(healthy) < 2 {
		return Plan{}, false
	}
	count := map[string]int{}
	for _, id := range healthy {
		count[id] = 0
	}
	for _, l := range leaders {
		if l == "" {
			return Plan{}, false // an election is under way; look again later
		}
		if _, ok := count[l]; ok {
			count[l]++
		}
	}
	ids := slices.Clone(healthy)
	slices.Sort(ids)
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
		return Plan{}, false
	}
	for p, l := range leaders {
		if l == from {
			return Plan{Partition: p, From: from, To: to}, true
		}
	}
	return Plan{}, false
}

func (b *Balancer) round(ctx context.Context) {
	now := time.Now()
	var healthy []string
	members := map[string]membership.Member{}
	for _, m := range b.Members.Members() {
		if m.State == membership.StateAlive && m.Formed && now.After(b.backoff[m.ID]) {
			healthy = append(healthy, m.ID)
			members[m.ID] = m
		}
	}
	leaders := make([]string, b.Parts.Count())
	for i, g := range b.Parts.Groups() {
		leaders[i], _ = g.Leader()
	}
	p, ok := plan(leaders, healthy)
	stable := ok && b.hasLast && p == b.last
	b.last, b.hasLast = p, ok
	if !stable || p.From != b.Self {
		return
	}
	g := b.Parts.Group(p.Partition)
	if !g.IsLeader() {
		return
	}
	if b.Healthy != nil && !b.Healthy(ctx, members[p.To]) {
		b.pause(p.To, now)
		return
	}
	b.Log.Info("moving partition leadership to balance the cluster", "partition", p.Partition, "to", p.To)
	if err := g.TransferLeadership(p.To); err != nil {
		b.Log.Warn("leadership transfer failed", "partition", p.Partition, "to", p.To, "err", err)
		b.pause(p.To, now)
	}
	b.hasLast = false
}

func (b *Balancer) pause(id string, now time.Time) {
	if b.backoff == nil {
		b.backoff = map[string]time.Time{}
	}
	b.backoff[id] = now.Add(failedTargetPause * b.Interval)
	b.hasLast = false
}
