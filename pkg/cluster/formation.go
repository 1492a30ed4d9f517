// Package cluster turns a set of nodes that can see each other into one
// Kahuna cluster: it bootstraps every partition's Raft group once the
// expected voters are present (as Consul and Nomad do with
// bootstrap_expect), and keeps partition leaders spread over the healthy
// nodes.
package cluster

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// Formation bootstraps the partitions of a new cluster.
type Formation struct {
	Self string
	// Join makes a node without Raft state join a formed cluster instead
	// of forming one: the partition leaders add it (Autopilot).
	Join    bool
	Expect  int
	Parts   *partition.Set
	Members *membership.Membership
	Log     *slog.Logger
}

// Run returns once this node belongs to a formed cluster, or ctx ends.
//
//   - A node with Raft state (a restart) never bootstraps again; it only
//     announces the cluster it belongs to.
//   - With Expect 1 the node forms a cluster of itself at once.
//   - Otherwise it waits until Expect nodes that agree on the partition
//     count are alive and none of them is formed, then bootstraps every
//     partition with exactly those voters. Each of them computes the same
//     list from the same gossip, and Raft expects the same configuration
//     to be bootstrapped on several nodes.
//   - A node that sees another one already formed, with itself among that
//     cluster's voters, bootstraps the same voters (it was simply slower to
//     see everyone). One that is not among them is a newcomer to a formed
//     cluster; it waits and says so, and never forms a second cluster.
func (f *Formation) Run(ctx context.Context) error {
	all, err := f.Parts.Formed(false)
	if err != nil {
		return err
	}
	if all {
		voters, err := f.Parts.Group(0).Voters()
		if err != nil {
			return err
		}
		f.Members.SetFormed(sortedKeys(voters))
		return nil
	}
	// Some partitions but not all: the node stopped while it was joining
	// (bootstrapping writes every partition before it returns). Never
	// bootstrap next to a cluster's existing groups.
	some, err := f.hasState()
	if err != nil {
		return err
	}
	if f.Join || some {
		return f.join(ctx)
	}
	if f.Expect <= 1 {
		self := f.Members.Self()
		if err := f.Parts.Bootstrap([]raft.Server{{ID: raft.ServerID(self.ID), Address: raft.ServerAddress(self.RaftAddr)}}); err != nil {
			return err
		}
		f.Members.SetFormed([]string{self.ID})
		return nil
	}
	warned := map[string]bool{}
	warn := func(key, msg string, args ...any) {
		if !warned[key] {
			warned[key] = true
			f.Log.Warn(msg, args...)
		}
	}
	for {
		changed := f.Members.Changed()
		known := map[string]membership.Member{}
		var alive []string
		var formedBy *membership.Member
		for _, m := range f.Members.Members() {
			if m.Partitions != f.Parts.Count() {
				warn("partitions/"+m.ID, "ignoring a node with a different partition count",
					"node", m.ID, "its_partitions", m.Partitions, "ours", f.Parts.Count())
				continue
			}
			known[m.ID] = m
			if !m.Alive() {
				continue
			}
			alive = append(alive, m.ID)
			if m.Formed && m.ID != f.Self && formedBy == nil {
				formedBy = &m
			}
		}
		var voters []string
		switch {
		case formedBy != nil && slices.Contains(formedBy.Voters, f.Self):
			voters = formedBy.Voters
		case formedBy != nil:
			f.Log.Info("found a cluster that is already formed without this node; joining it", "formed_by", formedBy.ID)
			return f.join(ctx)
		case len(alive) >= f.Expect:
			if len(alive) > f.Expect {
				f.Log.Warn("more nodes than --bootstrap-expect; forming the cluster with all of them", "expect", f.Expect, "nodes", alive)
			}
			voters = alive
		default:
			f.Log.Debug("waiting for nodes to form the cluster", "seen", alive, "expect", f.Expect)
		}
		if servers, ok := resolve(voters, known); ok {
			if err := f.Parts.Bootstrap(servers); err != nil {
				return err
			}
			f.Log.Info("cluster formed", "voters", voters)
			f.Members.SetFormed(voters)
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// resolve maps voter IDs to Raft servers; ok is false until every voter's
// address is known.
func resolve(ids []string, known map[string]membership.Member) ([]raft.Server, bool) {
	if len(ids) == 0 {
		return nil, false
	}
	servers := make([]raft.Server, 0, len(ids))
	for _, id := range ids {
		m, ok := known[id]
		if !ok || m.RaftAddr == "" {
			return nil, false
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(m.RaftAddr)})
	}
	return servers, true
}

func (f *Formation) hasState() (bool, error) {
	for _, g := range f.Parts.Groups() {
		has, err := g.HasState()
		if err != nil {
			return false, err
		}
		if has {
			return true, nil
		}
	}
	return false, nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// joinPoll is how often a joining node looks at its partitions.
const joinPoll = 100 * time.Millisecond

// join asks the cluster to add this node and returns once it is a voter of
// every partition. The partitions' leaders do the adding and promoting;
// this node only announces itself and watches its configurations arrive.
func (f *Formation) join(ctx context.Context) error {
	f.Members.SetJoining(true)
	f.Log.Info("asking the cluster to add this node")
	t := time.NewTicker(joinPoll)
	defer t.Stop()
	for {
		voters, done, err := f.votersEverywhere()
		if err != nil {
			return err
		}
		if done {
			f.Members.SetFormed(voters)
			f.Log.Info("joined the cluster: a voter of every partition", "voters", voters)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// votersEverywhere reports whether this node is a voter of every
// partition, and partition 0's voters.
func (f *Formation) votersEverywhere() ([]string, bool, error) {
	var first []string
	for _, g := range f.Parts.Groups() {
		has, err := g.HasLog()
		if err != nil || !has {
			return nil, false, err
		}
		c, err := g.Configuration()
		if err != nil {
			return nil, false, err
		}
		if _, voter := c.Has(f.Self); !voter {
			return nil, false, nil
		}
		if first == nil {
			first = c.Voters()
		}
	}
	return first, true, nil
}
