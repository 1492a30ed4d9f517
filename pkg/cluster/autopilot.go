package cluster

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// Autopilot carries out membership changes on the partitions this node
// leads, the way Consul's autopilot does for its servers: it adds nodes
// that ask to join as non-voters, promotes them once they have caught up,
// removes the nodes an operator asked to remove (after moving their
// leaderships away), removes members that gossip has reported failed for
// longer than DeadNodeTimeout, and tells a node that is not in a
// partition's configuration any more that it was removed.
//
// Every node runs one; each acts only on the partitions it leads, so each
// partition has one decider at a time, and each change names the
// configuration it was decided from, so a change decided on a stale view
// is refused by Raft instead of interleaving with another.
type Autopilot struct {
	Self    string
	Parts   *partition.Set
	Members *membership.Membership
	// Interval is how often the partitions are looked at.
	Interval time.Duration
	Log      *slog.Logger
	// Applied reports how far a node has applied a partition's log (its
	// status); nil, or an error, means unknown and blocks promotion.
	Applied func(ctx context.Context, m membership.Member, partition int) (uint64, error)
	// Healthy reports whether a node can serve (a leadership target).
	Healthy func(ctx context.Context, m membership.Member) bool
	// Reachable reports whether this node can talk to m over the internal
	// port (with mutual TLS on, whether m holds a node certificate): a
	// node that gossips but cannot be reached is never added, and only a
	// reachable voter counts as live for a removal's quorum (not Healthy:
	// a voter that is briefly not ready while a leadership moves still
	// votes). Nil: any.
	Reachable func(ctx context.Context, m membership.Member) bool
	// DeadNodeTimeout is how long a voter must have been failed before it
	// is removed; 0 never removes failed members.
	DeadNodeTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// caughtUp remembers, per partition and node, when a non-voter was
	// first seen caught up: promotion waits for it to stay so.
	caughtUp map[promotion]time.Time
	// SelfRemoved is called when this node finds itself missing from a
	// partition's configuration that it holds.
	SelfRemoved func(partition int, index uint64)

	// told limits "you were removed" notices to one per node and
	// partition a while.
	told map[promotion]time.Time
	// missing remembers since when a voter has been unknown to gossip
	// (a node that died before this one joined never shows up as failed).
	missing map[string]time.Time
}

type promotion struct {
	partition int
	node      string
}

// Catch-up: a non-voter is promoted once it has applied the leader's log
// to within maxLag entries and stayed there for stableFor. A voter that
// lags far behind would count towards the quorum without being able to
// acknowledge new entries quickly.
const (
	maxLag    = 256
	stableFor = time.Second
	// tellEvery spaces the notices to a removed node that is still up.
	tellEvery = 2 * time.Second
)

// minAutoVoters is the fewest live voters the automatic removal of failed
// members leaves: a three-node cluster that loses one node waits for a
// replacement instead of shrinking to two.
const minAutoVoters = 3

// Run works until ctx ends.
func (a *Autopilot) Run(ctx context.Context) {
	if a.Now == nil {
		a.Now = time.Now
	}
	a.caughtUp = map[promotion]time.Time{}
	a.told = map[promotion]time.Time{}
	a.missing = map[string]time.Time{}
	t := time.NewTicker(a.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.round(ctx)
		}
	}
}

// view is the cluster as gossip shows it in one round.
type view struct {
	members  map[string]membership.Member
	removing map[string]bool
}

func (a *Autopilot) look() view {
	v := view{members: map[string]membership.Member{}, removing: map[string]bool{}}
	for _, m := range a.Members.Members() {
		v.members[m.ID] = m
		if m.Alive() {
			for _, id := range m.Removing {
				v.removing[id] = true
			}
		}
	}
	return v
}

func (a *Autopilot) round(ctx context.Context) {
	v := a.look()
	a.trackMissing(v)
	for _, g := range a.Parts.Groups() {
		committed, err := g.CommittedConfiguration()
		if err != nil {
			a.Log.Warn("cannot read a partition's configuration", "partition", g.ID(), "err", err)
			continue
		}
		if in, _ := committed.Has(a.Self); !in && len(committed.Servers) > 0 && a.SelfRemoved != nil && !a.inLatest(g) {
			// The change that removed this node reached its log and
			// committed. (The committed configuration alone can be a
			// snapshot's that predates this node: one a leader sent it
			// when it joined, read after a restart before the newer
			// entries of its log are applied again. Its log has the
			// entry that added it, and so its latest configuration.)
			a.SelfRemoved(g.ID(), committed.Index)
			return
		}
		if !g.IsLeader() {
			continue
		}
		a.tellRemoved(g, committed, v)
		c, err := g.Configuration()
		if err != nil {
			continue
		}
		// One change per partition per round: the next round decides
		// from the configuration that change produced.
		_ = a.removeRequested(ctx, g, c, v) || a.addJoiner(ctx, g, c, v) || a.promote(ctx, g, c, v) || a.removeDead(ctx, g, c, v)
	}
}

// trackMissing notes since when each voter has been unknown to gossip.
func (a *Autopilot) trackMissing(v view) {
	now := a.Now()
	seen := map[string]bool{}
	for _, g := range a.Parts.Groups() {
		c, err := g.Configuration()
		if err != nil {
			continue
		}
		for _, id := range c.Voters() {
			if _, known := v.members[id]; known {
				continue
			}
			seen[id] = true
			if _, ok := a.missing[id]; !ok {
				a.missing[id] = now
			}
		}
	}
	for id := range a.missing {
		if !seen[id] {
			delete(a.missing, id)
		}
	}
}

// removeRequested removes a node some live member asked to remove. A
// leader asked to remove itself hands the leadership over instead; the
// next leader removes it.
func (a *Autopilot) removeRequested(ctx context.Context, g *partition.Group, c partition.Configuration, v view) bool {
	for _, s := range c.Servers {
		if !v.removing[s.ID] {
			continue
		}
		if s.ID == a.Self {
			target := a.handOverTarget(ctx, c, v)
			if target != "" {
				a.Log.Info("moving a leadership off this node before its removal", "partition", g.ID(), "to", target)
				err := g.TransferLeadership(target)
				if err == nil {
					return true
				}
				a.Log.Warn("leadership hand-over before removal failed", "partition", g.ID(), "err", err)
			}
			// No voter can take over now: remove this node as the leader.
			// Raft commits the change without it and then steps down,
			// which costs the partition an election instead of a
			// hand-over.
			if err := RemovalAllowed(c, s.ID, NewLiveness(ctx, v.members, a.Reachable).Live); err != nil {
				a.Log.Warn("not removing this node", "partition", g.ID(), "err", err)
				return true
			}
			a.Log.Info("removing this node as the partition's leader", "partition", g.ID())
			if err := g.RemoveServer(s.ID); err != nil {
				a.Log.Warn("removing this node failed", "partition", g.ID(), "err", err)
			}
			return true
		}
		if err := RemovalAllowed(c, s.ID, NewLiveness(ctx, v.members, a.Reachable).Live); err != nil {
			a.Log.Warn("not removing a node", "partition", g.ID(), "node", s.ID, "err", err)
			return false
		}
		if err := g.RemoveServer(s.ID); err != nil {
			a.Log.Warn("removing a node failed", "partition", g.ID(), "node", s.ID, "err", err)
		}
		return true
	}
	return false
}

// handOverTarget picks a healthy voter other than this node.
func (a *Autopilot) handOverTarget(ctx context.Context, c partition.Configuration, v view) string {
	for _, id := range c.Voters() {
		m, ok := v.members[id]
		if id == a.Self || !ok || m.State != membership.StateAlive || v.removing[id] {
			continue
		}
		if a.Healthy == nil || a.Healthy(ctx, m) {
			return id
		}
	}
	return ""
}

// addJoiner adds one node that asks to join and is not in the
// configuration yet, as a non-voter.
func (a *Autopilot) addJoiner(ctx context.Context, g *partition.Group, c partition.Configuration, v view) bool {
	for _, id := range sortedIDs(v.members) {
		m := v.members[id]
		if !m.Joining || m.State != membership.StateAlive || v.removing[id] || m.RaftAddr == "" {
			continue
		}
		if m.Partitions != a.Parts.Count() {
			continue // it has not learned the count yet, or refused to join
		}
		if in, _ := c.Has(id); in {
			continue
		}
		if a.Reachable != nil && !a.Reachable(ctx, m) {
			a.Log.Warn("not adding a joining node that cannot be reached on the internal port (no or a foreign certificate, or another node at its address?)", "partition", g.ID(), "node", id)
			continue
		}
		if a.Reachable != nil && a.dropStaleHolder(ctx, g, c, v, m) {
			return true
		}
		a.Log.Info("adding a joining node to the partition as a non-voter", "partition", g.ID(), "node", id)
		if err := g.AddNonvoter(id, m.RaftAddr); err != nil {
			a.Log.Warn("adding a non-voter failed", "partition", g.ID(), "node", id, "err", err)
		}
		return true
	}
	return false
}

// dropStaleHolder removes the member of c that is listed at the address
// joiner m now answers on (Reachable proved it is m there), as Consul does
// for a server that comes back at a dead one's address: a machine replaced
// by one with the same IP. Raft refuses two servers at one address, and
// the node at it now is the joiner (which refuses the old entry's Raft
// messages), so the entry is dead whatever gossip still says of it, and
// it keeps the joiner out until removed. It goes first, if the voters
// left keep a live quorum; the joiner is added in the next round. This may
// leave fewer than minAutoVoters for a moment: that is the replacement
// under way, not a shrinking cluster. Reports whether it acted.
func (a *Autopilot) dropStaleHolder(ctx context.Context, g *partition.Group, c partition.Configuration, v view, m membership.Member) bool {
	for _, s := range c.Servers {
		if s.Addr != m.RaftAddr || s.ID == m.ID {
			continue
		}
		if err := RemovalAllowed(c, s.ID, NewLiveness(ctx, v.members, a.Reachable).Live); err != nil {
			a.Log.Warn("a joining node holds a member's address, and that member cannot be removed yet",
				"partition", g.ID(), "node", m.ID, "member", s.ID, "addr", s.Addr, "err", err)
			return true
		}
		a.Log.Warn("removing a member whose address a joining node now holds",
			"partition", g.ID(), "member", s.ID, "node", m.ID, "addr", s.Addr)
		if err := g.RemoveServer(s.ID); err != nil {
			a.Log.Warn("removing the member failed", "partition", g.ID(), "member", s.ID, "err", err)
		}
		return true
	}
	return false
}

// promote makes one caught-up non-voter a voter.
func (a *Autopilot) promote(ctx context.Context, g *partition.Group, c partition.Configuration, v view) bool {
	now := a.Now()
	for _, s := range c.Servers {
		if s.Voter {
			continue
		}
		key := promotion{g.ID(), s.ID}
		m, ok := v.members[s.ID]
		if !ok || m.State != membership.StateAlive || v.removing[s.ID] || !a.isCaughtUp(ctx, g, m) {
			delete(a.caughtUp, key)
			continue
		}
		since, seen := a.caughtUp[key]
		if !seen {
			a.caughtUp[key] = now
			continue
		}
		if now.Sub(since) < stableFor {
			continue
		}
		delete(a.caughtUp, key)
		a.Log.Info("promoting a caught-up non-voter to voter", "partition", g.ID(), "node", s.ID)
		if err := g.AddVoter(s.ID, s.Addr); err != nil {
			a.Log.Warn("promotion failed", "partition", g.ID(), "node", s.ID, "err", err)
		}
		return true
	}
	return false
}

func (a *Autopilot) isCaughtUp(ctx context.Context, g *partition.Group, m membership.Member) bool {
	if a.Applied == nil {
		return false
	}
	applied, err := a.Applied(ctx, m, g.ID())
	if err != nil {
		return false
	}
	commit := g.Status().CommitIndex
	return applied > 0 && applied+maxLag >= commit
}

// removeDead removes one voter that gossip has reported failed for longer
// than DeadNodeTimeout, if the live voters left are at least
// minAutoVoters and a quorum.
func (a *Autopilot) removeDead(ctx context.Context, g *partition.Group, c partition.Configuration, v view) bool {
	if a.DeadNodeTimeout <= 0 {
		return false
	}
	now := a.Now()
	for _, s := range c.Servers {
		failedSince, failed := a.missing[s.ID]
		if m, ok := v.members[s.ID]; ok {
			failedSince, failed = m.Since, m.State == membership.StateFailed
		}
		if !failed || now.Sub(failedSince) < a.DeadNodeTimeout {
			continue
		}
		live := NewLiveness(ctx, v.members, a.Reachable).Live
		if liveVoters(c, live, s.ID) < minAutoVoters {
			continue
		}
		if err := RemovalAllowed(c, s.ID, live); err != nil {
			continue
		}
		a.Log.Warn("removing a member that has been failed longer than the dead-node timeout",
			"partition", g.ID(), "node", s.ID, "failed_for", now.Sub(failedSince).Round(time.Second), "timeout", a.DeadNodeTimeout)
		if err := g.RemoveServer(s.ID); err != nil {
			a.Log.Warn("removing a failed member failed", "partition", g.ID(), "node", s.ID, "err", err)
		}
		return true
	}
	return false
}

// inLatest reports whether this node is in the partition's latest
// configuration (the newest in its log, committed or not); an error counts
// as in, so that nothing is concluded from it.
func (a *Autopilot) inLatest(g *partition.Group) bool {
	c, err := g.Configuration()
	if err != nil {
		return true
	}
	in, _ := c.Has(a.Self)
	return in
}

// tellRemoved tells live nodes that belong to a formed cluster but not to
// this partition's committed configuration c that they were removed: a
// node removed while it was down learns it when it comes back, since the
// removal never reached its log. The notice names c's index, so that the
// node can tell a newer configuration from a stale one.
func (a *Autopilot) tellRemoved(g *partition.Group, c partition.Configuration, v view) {
	now := a.Now()
	for id, m := range v.members {
		if id == a.Self || !m.Alive() || !m.Formed || m.Joining || m.Partitions != a.Parts.Count() {
			continue
		}
		key := promotion{g.ID(), id}
		if in, _ := c.Has(id); in || now.Sub(a.told[key]) < tellEvery {
			continue
		}
		a.told[key] = now
		a.Log.Info("telling a node outside the partition's configuration that it was removed", "partition", g.ID(), "node", id)
		if err := a.Members.TellRemoved(id, g.ID(), c.Index); err != nil {
			a.Log.Warn("could not tell a removed node", "node", id, "err", err)
		}
	}
}

// Removal refusals.
var (
	ErrUnknownNode     = errors.New("unknown node")
	ErrWouldLoseQuorum = errors.New("removal would leave a partition without a quorum of live voters")
)

// RemovalAllowed checks that the voters left after removing id from c
// include a quorum of live ones.
func RemovalAllowed(c partition.Configuration, id string, live func(id string) bool) error {
	in, voter := c.Has(id)
	if !in {
		return ErrUnknownNode
	}
	n := len(c.Voters())
	if voter {
		n--
	}
	if n == 0 {
		return ErrWouldLoseQuorum
	}
	if l := liveVoters(c, live, id); l < n/2+1 {
		return ErrWouldLoseQuorum
	}
	return nil
}

// liveVoters counts c's voters other than except that live says are up.
func liveVoters(c partition.Configuration, live func(id string) bool, except string) int {
	n := 0
	for _, id := range c.Voters() {
		if id != except && live(id) {
			n++
		}
	}
	return n
}

// Liveness answers whether nodes are up: gossip says alive (or suspect),
// and, when probe is set, the node answers it. Gossip takes seconds to
// notice a dead node; a removal that counted one as live could leave a
// partition without a quorum, so each answer asks the node itself, once
// per Liveness.
type Liveness struct {
	ctx     context.Context
	members map[string]membership.Member
	probe   func(ctx context.Context, m membership.Member) bool
	seen    map[string]bool
}

// NewLiveness takes a view of the members; probe may be nil.
func NewLiveness(ctx context.Context, members map[string]membership.Member, probe func(ctx context.Context, m membership.Member) bool) *Liveness {
	return &Liveness{ctx: ctx, members: members, probe: probe, seen: map[string]bool{}}
}

// Live reports whether node id is up.
func (l *Liveness) Live(id string) bool {
	if v, ok := l.seen[id]; ok {
		return v
	}
	m, ok := l.members[id]
	v := ok && m.Alive() && (l.probe == nil || l.probe(l.ctx, m))
	l.seen[id] = v
	return v
}

func sortedIDs(m map[string]membership.Member) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
