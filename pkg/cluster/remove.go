package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// Remover carries out an operator's removal of a node. It checks the
// removal against every partition's configuration, then asks the cluster
// for it through gossip: each partition's leader removes the node from its
// partition (Autopilot), after the node handed over the leaderships it
// held. Remove returns once this node sees the node out of every
// partition's configuration.
type Remover struct {
	Parts   *partition.Set
	Members *membership.Membership
	// Poll is how often the configurations are looked at while waiting.
	Poll time.Duration
	// Live asks a node whether it is up (answers on the internal port);
	// nil trusts gossip alone.
	Live func(ctx context.Context, m membership.Member) bool

	mu sync.Mutex
	// removing counts the removals under way per node: two requests for
	// one node share the announcement.
	removing map[string]int
}

// Remove removes id from every partition. It answers ErrUnknownNode when
// no partition has id, and ErrWouldLoseQuorum, changing nothing, when
// removing it would leave some partition without a quorum of live voters.
// The caller must not be id itself: a removed node may never see the
// configuration that leaves it out.
func (r *Remover) Remove(ctx context.Context, id string) error {
	members := map[string]membership.Member{}
	for _, m := range r.Members.Members() {
		members[m.ID] = m
	}
	live := NewLiveness(ctx, members, r.Live).Live
	known := false
	for _, g := range r.Parts.Groups() {
		c, err := g.Configuration()
		if err != nil {
			return err
		}
		if in, _ := c.Has(id); !in {
			continue
		}
		known = true
		if err := RemovalAllowed(c, id, live); err != nil {
			return fmt.Errorf("%w: partition %d has voters %v; without %s, %d of them are live", err, g.ID(), c.Voters(), id, liveVoters(c, live, id))
		}
	}
	if !known {
		return fmt.Errorf("%w %q: no partition has it as a voter or non-voter", ErrUnknownNode, id)
	}

	r.announce(id, true)
	defer r.announce(id, false)
	poll := r.Poll
	if poll == 0 {
		poll = 100 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		left, err := r.partitionsWith(id)
		if err != nil {
			return err
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("removal of %s not finished: still in partitions %v: %w", id, left, ctx.Err())
		case <-t.C:
		}
	}
}

// partitionsWith lists the partitions whose configuration still has id.
func (r *Remover) partitionsWith(id string) ([]int, error) {
	var out []int
	for _, g := range r.Parts.Groups() {
		c, err := g.Configuration()
		if err != nil {
			return nil, err
		}
		if in, _ := c.Has(id); in {
			out = append(out, g.ID())
		}
	}
	return out, nil
}

// announce adds id to, or takes it off, the removals this node gossips.
func (r *Remover) announce(id string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removing == nil {
		r.removing = map[string]int{}
	}
	if on {
		r.removing[id]++
	} else if r.removing[id]--; r.removing[id] <= 0 {
		delete(r.removing, id)
	}
	ids := make([]string, 0, len(r.removing))
	for id := range r.removing {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	r.Members.SetRemoving(ids)
}
