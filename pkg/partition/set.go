package partition

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/placement"
)

// Set is every partition of the cluster as hosted on this node.
type Set struct {
	cfg    Config
	groups []*Group
}

// Open opens (or creates) cfg.Count partitions under cfg.Dir.
func Open(cfg Config) (*Set, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Set{cfg: cfg, groups: make([]*Group, cfg.Count)}
	for i := range s.groups {
		g, err := openGroup(&s.cfg, i)
		if err != nil {
			s.groups = s.groups[:i]
			return nil, errors.Join(err, s.Close())
		}
		s.groups[i] = g
	}
	return s, nil
}

// Count is the number of partitions.
func (s *Set) Count() int { return len(s.groups) }

// Group returns partition i.
func (s *Set) Group(i int) *Group { return s.groups[i] }

// For returns the partition that owns resource.
func (s *Set) For(resource string) *Group {
	return s.groups[placement.Partition(resource, len(s.groups))]
}

// Groups returns every partition, in ID order.
func (s *Set) Groups() []*Group { return slices.Clone(s.groups) }

// Bootstrap forms every partition that has no Raft state yet with the given
// voters. Partitions that already have state are left alone, so calling it
// on a restarted node is harmless.
func (s *Set) Bootstrap(servers []raft.Server) error {
	for _, g := range s.groups {
		has, err := g.HasState()
		if err != nil {
			return err
		}
		if has {
			continue
		}
		if err := g.Bootstrap(servers); err != nil {
			return err
		}
	}
	return nil
}

// ErrStateMissing reports a partition without its Raft log on a node whose
// data directory belonged to a cluster: files were deleted or damaged.
var ErrStateMissing = errors.New("partition: Raft log and snapshots missing")

// ErrDamaged reports a log store whose files cannot be read.
var ErrDamaged = errors.New("partition: log store damaged")

// Formed reports whether every partition holds a Raft log or snapshot, and
// checks the set is whole: when formed says the node belonged to a
// cluster, every partition must have one.
// Starting a damaged set would either never become ready or, worse,
// bootstrap a new, empty group in place of the lost one.
func (s *Set) Formed(formed bool) (bool, error) {
	var with, without []int
	for _, g := range s.groups {
		has, err := g.HasLog()
		if err != nil {
			return false, err
		}
		if has {
			with = append(with, g.id)
		} else {
			without = append(without, g.id)
		}
	}
	// A node that was joining a cluster when it stopped holds some
	// partitions and not yet others; only a recorded formation makes a
	// missing log damage.
	if len(without) > 0 && formed {
		return false, fmt.Errorf("%w: partition %d has no log and no snapshot under %s, but this node belonged to a cluster (partitions with a log: %v)",
			ErrStateMissing, without[0], s.cfg.Dir, with)
	}
	return len(without) == 0, nil
}

// Serving reports whether this node leads every partition and serves it.
// With one node that is what "ready" means.
func (s *Set) Serving() bool {
	for _, g := range s.groups {
		if !g.IsLeader() {
			return false
		}
	}
	return true
}

// Close stops every partition, in parallel.
func (s *Set) Close() error {
	errs := make([]error, len(s.groups))
	var wg sync.WaitGroup
	for i, g := range s.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status is one partition as this node sees it.
type Status struct {
	ID           int
	State        string
	LeaderID     string
	LeaderAddr   string
	Serving      bool
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	Voters       []string
	NonVoters    []string
	Locks        int
	// Ephemeral and Waiters are known on the partition's leader only.
	Ephemeral int
	Waiters   int
	// Batches and Commands count what this node proposed while leading;
	// Commands/Batches is the average group-commit size.
	Batches  uint64
	Commands uint64
}

// Status reports the partition's Raft and lock state.
func (g *Group) Status() Status {
	id, addr := g.Leader()
	st := Status{
		ID:           g.id,
		State:        g.raft.State().String(),
		LeaderID:     id,
		LeaderAddr:   addr,
		Term:         g.raft.CurrentTerm(),
		CommitIndex:  g.raft.CommitIndex(),
		AppliedIndex: g.raft.AppliedIndex(),
		LastIndex:    g.raft.LastIndex(),
		Locks:        g.machine.Len(),
	}
	st.Batches, st.Commands = g.prop.stats()
	if t := g.term(); t != nil {
		st.Serving = true
		st.Ephemeral = t.ephemeral.len()
		st.Waiters = t.waiters.Total()
	}
	if c, err := g.Configuration(); err == nil {
		st.Voters, st.NonVoters = c.Voters(), c.NonVoters()
	}
	return st
}

// String names the durability.
func (d Durability) String() string {
	switch d {
	case Persistent:
		return "persistent"
	case Ephemeral:
		return "ephemeral"
	default:
		return "durability(" + strconv.Itoa(int(d)) + ")"
	}
}

// ParseDurability converts the wire value.
func ParseDurability(v int) (Durability, error) {
	switch v {
	case 0:
		return Ephemeral, nil
	case 1:
		return Persistent, nil
	default:
		return 0, fmt.Errorf("%w: durability %d", ErrInvalid, v)
	}
}
