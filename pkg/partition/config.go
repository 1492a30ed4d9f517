// Package partition runs a node's share of Kahuna's partitions: one
// hashicorp/raft group per partition, each with its own log store and
// snapshot store, all on one TCP port through the transport mux. A group
// batches lock commands into Raft entries, serves linearizable reads, keeps
// the leader-only ephemeral locks and blocking waiters, and reclaims expired
// locks.
package partition

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/clock"
	"github.com/kahuna-go/kahuna/pkg/transport"
)

// Durability selects which lock namespace a request addresses.
type Durability uint8

const (
	// Ephemeral locks live in the partition leader's memory only.
	Ephemeral Durability = 0
	// Persistent locks are committed through Raft before the reply.
	Persistent Durability = 1
)

// Errors. A caller may retry ErrNotLeader anywhere, since the request was
// not applied; ErrUnknownOutcome means it may or may not have been.
var (
	ErrNotLeader      = errors.New("partition: not the leader")
	ErrUnknownOutcome = errors.New("partition: outcome unknown, leadership lost during commit")
	ErrClosed         = errors.New("partition: closed")
	ErrInvalid        = errors.New("partition: invalid request")
)

// RaftTimings are the Raft timeouts. Production uses DefaultRaftTimings;
// tests shorten them.
type RaftTimings struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is also the idle heartbeat interval; every group pays
	// it, so it is larger than Raft's default.
	CommitTimeout     time.Duration
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
}

// DefaultRaftTimings suit a LAN cluster. A follower notices a dead leader
// after 0.5–1 s and elections take about as long, which keeps failover
// inside the contract's 3 s (measured in docs/operations.md).
func DefaultRaftTimings() RaftTimings {
	return RaftTimings{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      250 * time.Millisecond,
		SnapshotInterval:   30 * time.Second,
		SnapshotThreshold:  4096,
		TrailingLogs:       4096,
	}
}

// FastRaftTimings are for tests on one machine.
func FastRaftTimings() RaftTimings {
	return RaftTimings{
		HeartbeatTimeout:   150 * time.Millisecond,
		ElectionTimeout:    150 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		SnapshotInterval:   5 * time.Second,
		SnapshotThreshold:  1024,
		TrailingLogs:       512,
	}
}

// Config configures a node's partitions.
type Config struct {
	// NodeID is this node's Raft server ID.
	NodeID string
	// Dir holds one folder per partition.
	Dir string
	// LogStore is the engine of every partition's Raft log (default
	// DefaultLogStore). The caller keeps it the same for a directory.
	LogStore LogStore
	// Count is the number of partitions.
	Count int
	// Mux carries every group's Raft transport.
	Mux *transport.Mux
	// Clock stamps commands on the leader.
	Clock  clock.Clock
	Logger *slog.Logger
	Raft   RaftTimings

	// MaxBatch is the most commands one Raft entry carries.
	MaxBatch int
	// MaxInflight is the most batches a group has in Raft at once; while
	// they commit, new commands queue up and form the next batch.
	MaxInflight int
	// ApplyTimeout bounds how long a write waits to enter Raft.
	ApplyTimeout time.Duration
	// BatchLinger is the longest a batch waits to fill up to the size of
	// the one before it (and never more than half that one's time in
	// Raft). Zero means 2 ms; negative turns the wait off.
	BatchLinger time.Duration
	// OnBatch, if set, is told the size of every batch a leader proposes
	// (metrics); it runs on the proposer's loop and must be quick.
	OnBatch func(commands int)
	// OnLogWrite, if set, is told how long each write to a partition's
	// Raft log took, its sync included (metrics); it must be quick.
	OnLogWrite func(time.Duration)

	// Tick is how often a leader reclaims expired locks and records its
	// time in the log.
	Tick time.Duration
	// Grace is how long an expired lock is kept, so that its owner can
	// still unlock it, before it is reclaimed.
	Grace time.Duration
	// MaxExpirePerTick bounds one reclaim command.
	MaxExpirePerTick uint64
	// EphemeralBlock is how many fencing tokens a leader reserves through
	// Raft at a time for ephemeral locks.
	EphemeralBlock uint64

	// ForceNewCluster rewrites, before Raft starts, the configuration of
	// every partition that has state to this node alone (raft.RecoverCluster):
	// disaster recovery after a quorum is lost for good.
	ForceNewCluster bool

	// WrapLogStore, if set, wraps each partition's durable log store
	// (under the in-memory cache): fault tests use it to slow the disk.
	WrapLogStore func(partition int, store raft.LogStore) raft.LogStore
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LogStore == "" {
		c.LogStore = DefaultLogStore
	}
	if c.Raft == (RaftTimings{}) {
		c.Raft = DefaultRaftTimings()
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1024
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 1
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 5 * time.Second
	}
	if c.BatchLinger == 0 {
		c.BatchLinger = 2 * time.Millisecond
	}
	if c.Tick == 0 {
		c.Tick = time.Second
	}
	if c.Grace == 0 {
		c.Grace = 30 * time.Second
	}
	if c.MaxExpirePerTick == 0 {
		c.MaxExpirePerTick = 10_000
	}
	if c.EphemeralBlock == 0 {
		// A million tokens: a busy leader reserves a block every few
		// seconds at most, and 2^53 (safe JSON integers) lasts billions of
		// blocks.
		c.EphemeralBlock = 1 << 20
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.NodeID == "":
		return fmt.Errorf("%w: node ID is empty", ErrInvalid)
	case c.Dir == "":
		return fmt.Errorf("%w: data directory is empty", ErrInvalid)
	case c.Count < 1 || c.Count > MaxPartitions:
		return fmt.Errorf("%w: partition count %d outside 1..%d", ErrInvalid, c.Count, MaxPartitions)
	case c.Mux == nil:
		return fmt.Errorf("%w: no transport mux", ErrInvalid)
	}
	if _, err := ParseLogStore(string(c.LogStore)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// MaxPartitions is the most partitions a cluster may have; partition IDs
// travel as 16-bit numbers.
const MaxPartitions = 1024
