package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kahuna-go/kahuna/pkg/cluster"
	"github.com/kahuna-go/kahuna/pkg/forward"
	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// ErrJoin reports a node that cannot join the cluster it found: a setting
// differs from the cluster's, its ID is taken, or no cluster answered.
// Nothing changed on the cluster.
var ErrJoin = errors.New("cannot join the cluster")

// startMembership starts gossip with what this node knows so far; a
// joining node does not know its partition count yet and announces 0,
// which the cluster's leaders take as "not ready to be added".
func (s *Server) startMembership(formed bool) error {
	var err error
	s.conflicts = make(chan string, 1)
	s.members, err = membership.Start(membership.Config{
		NodeID:        s.nodeID,
		BindAddr:      s.cfg.GossipAddr,
		AdvertiseAddr: s.cfg.AdvertiseGossip,
		HTTPAddr:      s.httpAddr,
		RaftAddr:      s.raftAddr,
		Partitions:    s.data.meta.Partitions,
		LogStore:      string(s.data.meta.LogStore),
		Formed:        formed,
		Join:          s.cfg.Join,
		Timings:       s.cfg.Gossip,
		Logger:        s.log,
		Removed:       s.onRemoved,
		SecretKey:     s.gossipKey,
		Conflict: func(addr string) {
			select {
			case s.conflicts <- addr:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("%w: --gossip-addr %s: %w", ErrListen, s.cfg.GossipAddr, err)
	}
	return nil
}

// discover waits for a formed cluster through --join and settles this new
// node's partition count and log store from it; a flag that contradicts
// the cluster, or an ID the cluster already has, is refused before this
// node creates anything or asks to be added.
func (s *Server) discover() error {
	s.log.Info("looking for a formed cluster to join", "join", s.cfg.Join)
	deadline := time.NewTimer(s.cfg.JoinTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var found membership.Member
	for found.ID == "" {
		for _, m := range s.members.Members() {
			if m.ID != s.nodeID && m.Alive() && m.Formed && m.Partitions > 0 {
				found = m
				break
			}
		}
		if found.ID != "" {
			break
		}
		select {
		case addr := <-s.conflicts:
			return fmt.Errorf("%w: another node already uses the node ID %q (at %s); give this node its own --node-id", ErrJoin, s.nodeID, addr)
		case <-deadline.C:
			return fmt.Errorf("%w: no formed cluster answered through --join %v within %v", ErrJoin, s.cfg.Join, s.cfg.JoinTimeout)
		case <-tick.C:
		}
	}
	store := partition.LogStore(found.LogStore)
	if store == "" {
		store = partition.DefaultLogStore
	}
	switch {
	case s.cfg.Partitions != 0 && s.cfg.Partitions != found.Partitions:
		return fmt.Errorf("%w: the cluster (seen through %s) has %d partitions, but --partitions is %d; drop the flag to take the cluster's",
			ErrJoin, found.ID, found.Partitions, s.cfg.Partitions)
	case s.cfg.LogStore != "" && s.cfg.LogStore != store:
		return fmt.Errorf("%w: the cluster (seen through %s) uses --log-store %s, but --log-store is %s; drop the flag to take the cluster's",
			ErrJoin, found.ID, store, s.cfg.LogStore)
	}
	if err := s.checkIDFree(found); err != nil {
		return err
	}
	select {
	case addr := <-s.conflicts:
		return fmt.Errorf("%w: another node already uses the node ID %q (at %s); give this node its own --node-id", ErrJoin, s.nodeID, addr)
	default:
	}
	s.log.Info("found the cluster to join", "through", found.ID, "partitions", found.Partitions, "log_store", store)
	return s.data.create(found.Partitions, store)
}

// checkIDFree refuses an ID that the cluster still has in a partition's
// configuration. It asks over the internal port, where the cluster's own
// peer TLS applies and API tokens do not, each live member in turn until
// one answers. If none does (a cluster of an older version does not know
// the question), the join goes on with a warning.
func (s *Server) checkIDFree(found membership.Member) error {
	members := []membership.Member{found}
	for _, m := range s.members.Members() {
		if m.ID != found.ID && m.ID != s.nodeID && m.Alive() && m.Formed {
			members = append(members, m)
		}
	}
	var errs []error
	for _, m := range members {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		p, err := s.fwd.MemberOf(ctx, m.RaftAddr, s.nodeID)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.ID, err))
			continue
		}
		if p >= 0 {
			return fmt.Errorf("%w: the node ID %q is still a member of the cluster (partition %d, as %s sees it); remove it first (kahuna-cli --remove-node %s) or give this node another --node-id",
				ErrJoin, s.nodeID, p, m.ID, s.nodeID)
		}
		return nil
	}
	s.log.Warn("no member answered whether this node's ID is free; joining all the same", "err", errors.Join(errs...))
	return nil
}

// MemberOf is the first partition whose latest configuration lists node
// id, or -1 (forward.Node).
func (s *Server) MemberOf(id string) int {
	if s.parts == nil {
		return -1
	}
	for _, g := range s.parts.Groups() {
		c, err := g.Configuration()
		if err == nil && (slices.Contains(c.Voters(), id) || slices.Contains(c.NonVoters(), id)) {
			return g.ID()
		}
	}
	return -1
}

// watchConflicts turns a claim on this node's ID into a fatal error while
// the node is joining; a member that is already in the cluster keeps its
// ID, and memberlist ignores the newcomer.
func (s *Server) watchConflicts(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case addr := <-s.conflicts:
			if s.joining.Load() {
				select {
				case s.errs <- fmt.Errorf("%w: another node already uses the node ID %q (at %s)", ErrJoin, s.nodeID, addr):
				default:
				}
				return
			}
			s.log.Warn("another node claims this node's ID; the cluster ignores it", "addr", addr)
		}
	}
}

// onRemoved handles a partition leader's notice that this node is not in
// its committed configuration. A notice is believed only when it is news:
// it names a configuration newer than this node's committed one, or that
// one already leaves this node out. A stale leader cannot remove a node
// added after the configuration it knows.
func (s *Server) onRemoved(by string, p int, index uint64) {
	if p < 0 || s.parts == nil || p >= s.parts.Count() || s.joining.Load() {
		return
	}
	c, err := s.parts.Group(p).CommittedConfiguration()
	if err != nil {
		return
	}
	if in, _ := c.Has(s.nodeID); in && index <= c.Index {
		s.log.Info("ignoring a removal notice about an older configuration", "from", by, "partition", p, "index", index, "ours", c.Index)
		return
	}
	s.removedOnce.Do(func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.stopRemoved(by, p)
		}()
	})
}

// stopRemoved takes a removed node out of service for good: it records the
// removal, answers every request "must retry" and /readyz 503, stops its
// Raft groups so that it never stands for election, and leaves gossip. The
// process stays up until it is stopped, so nothing restarts it by surprise.
func (s *Server) stopRemoved(by string, p int) {
	s.log.Warn("this node was removed from the cluster; it stops serving", "told_by", by, "partition", p)
	s.router.Stop()
	// Recorded before /readyz says so: a node that said it was removed
	// and then crashed must refuse to start again.
	if err := s.data.markRemoved(by); err != nil {
		s.log.Error("could not record the removal in the data directory", "err", err)
	}
	s.removed.Store(true)
	if s.stop != nil {
		s.stop()
	}
	if err := s.parts.Close(); err != nil {
		s.log.Warn("stopping the Raft groups of a removed node", "err", err)
	}
	if err := s.members.Close(); err != nil {
		s.log.Warn("leaving gossip", "err", err)
	}
}

// RemoveNode removes a node from every partition (POST
// /v1/cluster/remove-node). A node asked to remove itself passes the
// request to another member over the internal port, since a removed node
// may never see the configuration that leaves it out.
func (s *Server) RemoveNode(ctx context.Context, id string) error {
	if s.removed.Load() {
		return fmt.Errorf("%w: this node was removed from the cluster", ErrJoin)
	}
	if id != s.nodeID {
		ctx, cancel := context.WithTimeout(ctx, removeTimeout)
		defer cancel()
		return s.remover.Remove(ctx, id)
	}
	var last error
	for _, m := range s.members.Members() {
		if m.ID == s.nodeID || m.State != membership.StateAlive || m.Joining {
			continue
		}
		err := s.fwd.RemoveNode(ctx, m.RaftAddr, id, removeTimeout)
		// An unknown outcome may be a removal under way (this node stops
		// serving as soon as a partition leaves it out, which can end the
		// request): another node asked now would judge a half-removed
		// node and could answer 409, "nothing changed". It is 503.
		if err == nil || errors.Is(err, cluster.ErrUnknownNode) || errors.Is(err, cluster.ErrWouldLoseQuorum) || errors.Is(err, partition.ErrUnknownOutcome) {
			return err
		}
		last = err
	}
	if last == nil {
		// No other node: removing the only voter would leave no quorum.
		return fmt.Errorf("%w: %s is the only live node", cluster.ErrWouldLoseQuorum, id)
	}
	return fmt.Errorf("no other node could carry out the removal: %w", last)
}

// removeTimeout bounds how long a removal waits for every partition.
const removeTimeout = 30 * time.Second

// Probe answers another node's questions about this one (forward.Node).
func (s *Server) Probe(p int) forward.Probe {
	ready, why := s.Ready()
	out := forward.Probe{Ready: ready, Reason: why}
	if p >= 0 && p < s.parts.Count() {
		out.Applied = s.parts.Group(p).Status().AppliedIndex
	}
	return out
}

// peerReady asks node m, over the internal port, whether it can serve.
func (s *Server) peerReady(ctx context.Context, m membership.Member) bool {
	p, err := s.probe(ctx, m, -1)
	return err == nil && p.Ready
}

// peerReachable reports whether node m answers a probe on the internal
// port at all.
func (s *Server) peerReachable(ctx context.Context, m membership.Member) bool {
	_, err := s.probe(ctx, m, -1)
	return err == nil
}

// peerApplied asks node m how far it has applied partition p.
func (s *Server) peerApplied(ctx context.Context, m membership.Member, p int) (uint64, error) {
	pr, err := s.probe(ctx, m, p)
	return pr.Applied, err
}

// errOtherNode: another node answers at a member's internal address.
var errOtherNode = errors.New("another node answers at that address")

// probe asks node m about itself (and partition p, -1 for none) on its
// internal address. An answer from another node is no answer from m: after
// a node was replaced by one at the same address, gossip can still show
// the old one alive, or joining, for a while, and the cluster must not
// add, promote or count it on the strength of its successor's reply.
func (s *Server) probe(ctx context.Context, m membership.Member, p int) (forward.Probe, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	pr, err := s.fwd.Probe(ctx, m.RaftAddr, p)
	if err == nil && pr.Node != m.ID {
		return forward.Probe{}, fmt.Errorf("probing %s at %s: %w (%s)", m.ID, m.RaftAddr, errOtherNode, pr.Node)
	}
	return pr, err
}
