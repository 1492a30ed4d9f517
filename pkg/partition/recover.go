package partition

import (
	"fmt"
	"slices"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/fsm"
)

// forceNewCluster is disaster recovery (--force-new-cluster): before Raft
// starts, it rewrites the group's configuration to this node alone, keeping
// every entry this node holds, so that it can elect itself and serve after
// the rest of its quorum is lost for good.
//
// raft.RecoverCluster replays the snapshot and every log entry (committed or
// not: a follower cannot tell) into a throwaway state machine, writes the
// result as a new snapshot that carries the new configuration, and deletes
// the whole log. NewRaft then restores that snapshot as on any restart.
//
// A group without a log and without a snapshot is left alone: either the
// node never belonged to a cluster, or the partition's files are gone, which
// Set.Formed reports (recovering it would turn the loss into an empty group
// that hands out tokens again). A group that already is this node alone, at
// this address, is left alone too, so a repeated start with the flag is a
// no-op until other nodes join.
func (g *Group) forceNewCluster(rc *raft.Config) error {
	has, err := raft.HasExistingState(g.logs, g.store, g.snaps)
	if err != nil {
		return fmt.Errorf("partition %d: force new cluster: read raft state: %w", g.id, err)
	}
	hasLog := false
	if has {
		if hasLog, err = g.HasLog(); err != nil {
			return fmt.Errorf("partition %d: force new cluster: %w", g.id, err)
		}
	}
	if !hasLog {
		g.log.Warn("--force-new-cluster: partition has no Raft log or snapshot on this node; nothing to recover, left alone",
			"has_raft_state", has)
		return nil
	}

	old, err := readRaftState(g.logs, g.snaps)
	if err != nil {
		return fmt.Errorf("partition %d: force new cluster: %w", g.id, err)
	}
	self := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(g.cfg.NodeID), Address: g.trans.LocalAddr()}
	want := raft.Configuration{Servers: []raft.Server{self}}
	if len(old.config.Servers) == 1 && old.config.Servers[0] == self {
		g.log.Warn("--force-new-cluster: partition already is a single-voter group of this node; left as it is",
			"voter", serverNames(want), "last_index", old.lastIndex)
		return nil
	}

	// RecoverCluster calls Apply and Snapshot only; the callbacks serve a
	// running group and have nobody to tell here.
	scratch := &fsmAdapter{
		machine:   fsm.New(),
		onRelease: func(string) {},
		onApplied: func(uint64, uint64, []fsm.Result) {},
		log:       g.log.With("recovery", true),
	}
	if err := raft.RecoverCluster(rc, scratch, g.logs, g.store, g.snaps, g.trans, want); err != nil {
		return fmt.Errorf("partition %d: force new cluster: %w", g.id, err)
	}
	g.log.Warn("--force-new-cluster: partition is now a single-voter group of this node, with every entry it held",
		"old_voters", serverNames(onlySuffrage(old.config, raft.Voter)),
		"old_nonvoters", serverNames(onlySuffrage(old.config, raft.Nonvoter)),
		"new_voters", serverNames(want),
		"last_index", old.lastIndex, "last_term", old.lastTerm,
		"snapshot_index", old.snapshotIndex, "locks", scratch.machine.Len())
	return nil
}

// raftState is what a group's stores hold, read without starting Raft.
type raftState struct {
	// config is the latest configuration: the newest snapshot's, unless a
	// configuration entry in the log after it replaced it (Raft uses the
	// latest one, committed or not).
	config raft.Configuration
	// lastIndex and lastTerm are those of the last entry, in the log or
	// in the newest snapshot.
	lastIndex, lastTerm uint64
	snapshotIndex       uint64
}

// readRaftState reads the latest configuration and the last index from a
// group's log and snapshot stores.
func readRaftState(logs raft.LogStore, snaps raft.SnapshotStore) (raftState, error) {
	var st raftState
	metas, err := snaps.List()
	if err != nil {
		return st, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) > 0 { // newest first
		st.config = metas[0].Configuration
		st.lastIndex, st.lastTerm = metas[0].Index, metas[0].Term
		st.snapshotIndex = metas[0].Index
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return st, fmt.Errorf("read first log index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return st, fmt.Errorf("read last log index: %w", err)
	}
	if last == 0 {
		return st, nil
	}
	for i := max(first, st.snapshotIndex+1); i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return st, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if l.Type == raft.LogConfiguration {
			if st.config, err = decodeConfiguration(l.Data); err != nil {
				return st, fmt.Errorf("log entry %d: %w", i, err)
			}
		}
		st.lastIndex, st.lastTerm = l.Index, l.Term
	}
	return st, nil
}

// decodeConfiguration is raft.DecodeConfiguration, which panics on bad
// input, returning an error instead.
func decodeConfiguration(b []byte) (c raft.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("undecodable configuration: %v", r)
		}
	}()
	return raft.DecodeConfiguration(b), nil
}

func onlySuffrage(c raft.Configuration, s raft.ServerSuffrage) raft.Configuration {
	var out raft.Configuration
	for _, srv := range c.Servers {
		if srv.Suffrage == s {
			out.Servers = append(out.Servers, srv)
		}
	}
	return out
}

// serverNames lists a configuration's servers as "id@address", sorted.
func serverNames(c raft.Configuration) []string {
	out := make([]string, 0, len(c.Servers))
	for _, srv := range c.Servers {
		out = append(out, fmt.Sprintf("%s@%s", srv.ID, srv.Address))
	}
	slices.Sort(out)
	return out
}
