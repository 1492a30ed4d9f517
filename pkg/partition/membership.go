package partition

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Server is one member of a partition's Raft configuration.
type Server struct {
	ID    string
	Addr  string
	Voter bool
}

// Configuration is a partition's latest Raft configuration as this node
// knows it, and the log index it was written at. Changes name that index,
// so two changes decided from the same configuration never both apply.
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

// ErrConfigChanged reports a membership change refused because the
// configuration changed since the caller read it: another change went
// first. Read the configuration again and decide anew.
var ErrConfigChanged = errors.New("partition: configuration changed meanwhile")

// Configuration returns the group's latest configuration. It reads Raft's
// cached copy, without a round trip through Raft's main loop.
func (g *Group) Configuration() (Configuration, error) {
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return Configuration{}, fmt.Errorf("partition %d: read configuration: %w", g.id, err)
	}
	out := Configuration{Index: f.Index()}
	for _, s := range f.Configuration().Servers {
		out.Servers = append(out.Servers, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// membershipTimeout bounds how long a change waits to enter Raft; hashicorp/raft
// takes one configuration change at a time, so a second one waits for the
// first to commit.
const membershipTimeout = 10 * time.Second

// AddNonvoter adds id to the partition as a non-voter, which receives the
// log (a snapshot first when it is far behind) but does not vote. The
// change applies only if the configuration is still the one at prevIndex.
func (g *Group) AddNonvoter(id, addr string, prevIndex uint64) error {
	return g.change("add non-voter "+id, g.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), prevIndex, membershipTimeout))
}

// AddVoter promotes (or adds) id as a voter, from the configuration at
// prevIndex.
func (g *Group) AddVoter(id, addr string, prevIndex uint64) error {
	return g.change("add voter "+id, g.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), prevIndex, membershipTimeout))
}

// RemoveServer removes id from the partition, from the configuration at
// prevIndex. Removing the leader itself makes it step down once the
// change commits.
func (g *Group) RemoveServer(id string, prevIndex uint64) error {
	return g.change("remove "+id, g.raft.RemoveServer(raft.ServerID(id), prevIndex, membershipTimeout))
}

func (g *Group) change(what string, f raft.IndexFuture) error {
	err := f.Error()
	switch {
	case err == nil:
		g.log.Info("partition membership changed", "change", what, "index", f.Index())
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("partition %d: %s: %w: %w", g.id, what, ErrNotLeader, err)
	case strings.HasPrefix(err.Error(), "configuration changed since "):
		// hashicorp/raft returns a stale prevIndex as a plain error.
		return fmt.Errorf("partition %d: %s: %w: %w", g.id, what, ErrConfigChanged, err)
	default:
		return fmt.Errorf("partition %d: %s: %w", g.id, what, err)
	}
}
