package partition

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Server is one member of a partition's Raft configuration.
type Server struct {
	ID    string
	Addr  string
	Voter bool
}

// Configuration is a partition's Raft configuration. Index is the log
// index it was written at, known only for the committed configuration.
type Configuration struct {
	Servers []Server
	Index   uint64
}

// Has reports whether id is in the configuration, and whether as a voter.
func (c Configuration) Has(id string) (in, voter bool) {
	for _, s := range c.Servers {
		if s.ID == id {
			return true, s.Voter
		}
	}
	return false, false
}

// Voters returns the IDs of the voters, sorted.
func (c Configuration) Voters() []string { return c.ids(true) }

// NonVoters returns the IDs of the non-voters, sorted.
func (c Configuration) NonVoters() []string { return c.ids(false) }

func (c Configuration) ids(voter bool) []string {
	out := []string{}
	for _, s := range c.Servers {
		if s.Voter == voter {
			out = append(out, s.ID)
		}
	}
	slices.Sort(out)
	return out
}

// Configuration returns the group's latest configuration, committed or
// not. It reads Raft's cached copy, without a round trip through Raft's
// main loop; hashicorp/raft v1.7 does not say at which index it was
// written, so Index is 0.
func (g *Group) Configuration() (Configuration, error) {
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return Configuration{}, fmt.Errorf("partition %d: read configuration: %w", g.id, err)
	}
	return fromRaft(f.Configuration(), 0), nil
}

// CommittedConfiguration returns the newest configuration this node has
// applied, with its index: from the log (the FSM sees configuration
// entries) or from the snapshot it restored, whichever is newer.
func (g *Group) CommittedConfiguration() (Configuration, error) {
	c := Configuration{}
	if p := g.committed.Load(); p != nil {
		c = *p
	}
	snaps, err := g.snaps.List()
	if err != nil {
		return Configuration{}, fmt.Errorf("partition %d: list snapshots: %w", g.id, err)
	}
	if len(snaps) > 0 && snaps[0].ConfigurationIndex > c.Index {
		c = fromRaft(snaps[0].Configuration, snaps[0].ConfigurationIndex)
	}
	return c, nil
}

// configured records a committed configuration entry; the FSM goroutine
// calls it.
func (g *Group) configured(index uint64, rc raft.Configuration) {
	c := fromRaft(rc, index)
	g.committed.Store(&c)
}

func fromRaft(rc raft.Configuration, index uint64) Configuration {
	out := Configuration{Index: index}
	for _, s := range rc.Servers {
		out.Servers = append(out.Servers, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out
}

// membershipTimeout bounds how long a change waits to enter Raft.
// hashicorp/raft takes one configuration change at a time: a second one
// waits until the first has committed, then applies to the configuration
// the first produced, so changes never interleave. (The prevIndex guard of
// its API needs the latest configuration's index, which v1.7 does not
// expose; the changes pass 0, and one decider per partition, its leader,
// reads the configuration again after each change.)
const membershipTimeout = 10 * time.Second

// AddNonvoter adds id to the partition as a non-voter, which receives the
// log (a snapshot first when it is far behind) but does not vote.
func (g *Group) AddNonvoter(id, addr string) error {
	return g.change("add non-voter "+id, g.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout))
}

// AddVoter promotes (or adds) id as a voter.
func (g *Group) AddVoter(id, addr string) error {
	return g.change("add voter "+id, g.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout))
}

// RemoveServer removes id from the partition. Removing the leader itself
// makes it step down once the change commits.
func (g *Group) RemoveServer(id string) error {
	return g.change("remove "+id, g.raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout))
}

func (g *Group) change(what string, f raft.IndexFuture) error {
	err := f.Error()
	switch {
	case err == nil:
		g.log.Info("partition membership changed", "change", what, "index", f.Index())
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("partition %d: %s: %w: %w", g.id, what, ErrNotLeader, err)
	default:
		return fmt.Errorf("partition %d: %s: %w", g.id, what, err)
	}
}
