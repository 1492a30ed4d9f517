package partition

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/transport"
)

// Group is one partition's Raft group on this node.
type Group struct {
	id      int
	cfg     *Config
	log     *slog.Logger
	machine *fsm.Machine
	raft    *raft.Raft
	store   *closedStore
	logs    raft.LogStore
	snaps   raft.SnapshotStore
	trans   *voteRelay
	layer   *transport.Layer
	prop    *proposer
	// propReady is prop for the FSM goroutine, which may run before prop
	// exists (replaying the log at start-up).
	propReady atomic.Pointer[proposer]
	verify    *verifier
	// committed is the newest configuration entry the FSM applied.
	committed atomic.Pointer[Configuration]

	// lead is the current leadership term while this node is the
	// partition's established leader, nil otherwise.
	lead atomic.Pointer[term]
	// changed is notified whenever leadership of the partition may have
	// moved, here or elsewhere.
	changed *broadcast

	notifyCh  chan bool
	isLeader  atomic.Bool
	leaderSig chan struct{}
	observeCh chan raft.Observation
	observer  *raft.Observer
	shutdown  chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// openGroup opens (or creates) partition id under cfg.Dir.
func openGroup(cfg *Config, id int) (g *Group, err error) {
	dir := filepath.Join(cfg.Dir, strconv.Itoa(id))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("partition %d: create %s: %w", id, dir, err)
	}
	log := cfg.Logger.With("partition", id)
	hlog := logging.HCLog(log, "raft", true)

	g = &Group{
		id:        id,
		cfg:       cfg,
		log:       log,
		machine:   fsm.New(),
		changed:   newBroadcast(),
		notifyCh:  make(chan bool, 1),
		leaderSig: make(chan struct{}, 1),
		observeCh: make(chan raft.Observation, 16),
		shutdown:  make(chan struct{}),
	}
	var cleanup []io.Closer
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i].Close()
			}
		}
	}()

	g.store, err = openDurableStore(cfg.LogStore, dir, hlog.Named("logstore"))
	if err != nil {
		return nil, fmt.Errorf("partition %d: %w", id, err)
	}
	cleanup = append(cleanup, g.store)
	g.store.onWrite = cfg.OnLogWrite
	var durable raft.LogStore = g.store
	if cfg.WrapLogStore != nil {
		durable = cfg.WrapLogStore(id, durable)
	}
	g.logs, err = raft.NewLogCache(512, durable)
	if err != nil {
		return nil, fmt.Errorf("partition %d: log cache: %w", id, err)
	}
	g.snaps, err = raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("partition %d: snapshot store: %w", id, err)
	}
	g.layer, err = cfg.Mux.Register(transport.Header{Kind: transport.KindRaft, Partition: uint16(id)})
	if err != nil {
		return nil, fmt.Errorf("partition %d: %w", id, err)
	}
	cleanup = append(cleanup, g.layer)
	g.trans = newVoteRelay(transport.NewRaftTransport(&raft.NetworkTransportConfig{
		Stream:  g.layer,
		MaxPool: 3,
		// 1 turns off pipelined replication. In hashicorp/raft v1.7.3 a
		// follower that rejects a pipelined append (a log mismatch after a
		// restart, a newer term) ends the pipeline's reader, while the sender
		// may already be parked handing the next append to it: replication
		// to that follower stops for good while heartbeats keep it looking
		// healthy, and Raft's shutdown waits on the parked sender forever.
		// Without the pipeline each append waits for its reply, which costs
		// nothing here since a partition has one batch in flight anyway.
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          hlog.Named("transport"),
	}), raft.ServerID(cfg.NodeID))
	cleanup = append(cleanup, g.trans)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.NotifyCh = g.notifyCh
	rc.HeartbeatTimeout = cfg.Raft.HeartbeatTimeout
	rc.ElectionTimeout = cfg.Raft.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.Raft.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.Raft.CommitTimeout
	rc.SnapshotInterval = cfg.Raft.SnapshotInterval
	rc.SnapshotThreshold = cfg.Raft.SnapshotThreshold
	rc.TrailingLogs = cfg.Raft.TrailingLogs
	rc.BatchApplyCh = true
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("partition %d: raft config: %w", id, err)
	}
	if cfg.ForceNewCluster {
		if err := g.forceNewCluster(rc); err != nil {
			return nil, err
		}
	}

	adapter := &fsmAdapter{machine: g.machine, onRelease: g.released, onApplied: g.applied, onConfig: g.configured, log: log}
	g.raft, err = raft.NewRaft(rc, adapter, g.logs, g.store, g.snaps, g.trans)
	if err != nil {
		return nil, fmt.Errorf("partition %d: start raft: %w", id, err)
	}
	g.trans.watch(func() raft.Configuration { return g.raft.GetConfiguration().Configuration() })
	g.verify = &verifier{raft: g.raft, self: cfg.NodeID, timeout: cfg.ApplyTimeout}
	g.prop = newProposer(g.raft, g.term, cfg.MaxBatch, cfg.MaxInflight, cfg.ApplyTimeout, cfg.BatchLinger)
	g.prop.onBatch = cfg.OnBatch
	g.propReady.Store(g.prop)
	g.observer = raft.NewObserver(g.observeCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	g.raft.RegisterObserver(g.observer)

	g.wg.Add(3)
	go g.drainNotify()
	go g.monitorLeadership()
	go g.watchLeader()
	return g, nil
}

// HasState reports whether the group has Raft state on disk, i.e. whether
// it was bootstrapped or joined before.
func (g *Group) HasState() (bool, error) {
	ok, err := raft.HasExistingState(g.logs, g.store, g.snaps)
	if err != nil {
		return false, fmt.Errorf("partition %d: read raft state: %w", g.id, err)
	}
	return ok, nil
}

// HasLog reports whether the group holds a Raft log or a snapshot. Every
// group of a formed cluster does from its first configuration entry on, so
// a group without either on a node that belonged to a cluster has lost its
// files. (HasState is not enough: raft-wal keeps the term in its metadata
// file, which survives the loss of its segments.)
func (g *Group) HasLog() (bool, error) {
	last, err := g.store.lastIndexUnlessClosed()
	if err != nil {
		return false, fmt.Errorf("partition %d: read log: %w", g.id, err)
	}
	if last > 0 {
		return true, nil
	}
	snaps, err := g.snaps.List()
	if err != nil {
		return false, fmt.Errorf("partition %d: list snapshots: %w", g.id, err)
	}
	return len(snaps) > 0, nil
}

// Bootstrap forms the group with the given voters. It must be called with
// the same servers on every voter, and only on a group without state.
func (g *Group) Bootstrap(servers []raft.Server) error {
	err := g.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("partition %d: bootstrap: %w", g.id, err)
	}
	return nil
}

// ID is the partition number.
func (g *Group) ID() int { return g.id }

// term returns the established leadership term, or nil.
func (g *Group) term() *term { return g.lead.Load() }

// IsLeader reports whether this node is the partition's established leader
// and can serve requests for it.
func (g *Group) IsLeader() bool { return g.lead.Load() != nil }

// Leader returns the Raft leader's ID and address as this node knows them;
// empty while there is none.
func (g *Group) Leader() (id, addr string) {
	a, i := g.raft.LeaderWithID()
	return string(i), string(a)
}

// Changed returns a channel closed the next time leadership may have moved.
func (g *Group) Changed() <-chan struct{} { return g.changed.C() }

// applied hands an applied batch's results to the proposer, which answers
// its callers if the batch was its own.
func (g *Group) applied(term, seq uint64, res []fsm.Result) {
	if p := g.propReady.Load(); p != nil {
		p.applied(term, seq, res)
	}
}

// released wakes the waiters of a persistent lock that was just unlocked. It
// runs on Raft's FSM goroutine on every replica; only a leader has waiters.
func (g *Group) released(resource string) {
	if t := g.lead.Load(); t != nil {
		t.waiters.Wake(waitKey(Persistent, resource))
	}
}

// drainNotify takes leadership notifications off Raft's channel at once:
// Raft blocks until they are received, and a stuck receiver would stall the
// group. The monitor reads the latest value whenever it is signalled.
func (g *Group) drainNotify() {
	defer g.wg.Done()
	for {
		select {
		case v := <-g.notifyCh:
			g.isLeader.Store(v)
			select {
			case g.leaderSig <- struct{}{}:
			default:
			}
		case <-g.shutdown:
			return
		}
	}
}

// watchLeader turns Raft's leader observations into change notifications
// for requests waiting on a leader.
func (g *Group) watchLeader() {
	defer g.wg.Done()
	for {
		select {
		case <-g.observeCh:
			g.changed.Notify()
		case <-g.shutdown:
			return
		}
	}
}

// Close stops the group: waiters and queued commands fail, Raft shuts down
// and the stores are closed.
func (g *Group) Close() error {
	var errs []error
	g.closeOnce.Do(func() {
		close(g.shutdown)
		g.wg.Wait() // the leader loop revokes the term on the way out
		// Closing the layer first cancels dials to peers that are gone,
		// which Raft's shutdown would otherwise wait out.
		g.layer.Close()
		if err := g.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("partition %d: raft shutdown: %w", g.id, err))
		}
		g.raft.DeregisterObserver(g.observer)
		g.prop.close()
		if err := g.trans.Close(); err != nil {
			errs = append(errs, err)
		}
		g.layer.Close()
		if err := g.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("partition %d: close log store: %w", g.id, err))
		}
	})
	return errors.Join(errs...)
}

// Voters returns the IDs and addresses of the group's voters.
func (g *Group) Voters() (map[string]string, error) {
	out, err := voters(g.raft)
	if err != nil {
		return nil, fmt.Errorf("partition %d: read configuration: %w", g.id, err)
	}
	return out, nil
}

// voters maps the IDs of r's voters to their addresses.
func voters(r *raft.Raft) (map[string]string, error) {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			out[string(srv.ID)] = string(srv.Address)
		}
	}
	return out, nil
}

// TransferLeadership hands this node's leadership of the partition to the
// voter id, or to any up-to-date voter when id is empty. It returns once the
// transfer has finished or failed.
func (g *Group) TransferLeadership(id string) error {
	if t := g.term(); t != nil {
		// No ephemeral grants once the hand-over starts (see lease.go); if
		// it fails, the term carries on.
		t.handingOver.Add(1)
		defer t.handingOver.Add(-1)
	}
	var f raft.Future
	if id == "" {
		f = g.raft.LeadershipTransfer()
	} else {
		voters, err := g.Voters()
		if err != nil {
			return err
		}
		addr, ok := voters[id]
		if !ok {
			return fmt.Errorf("%w: %s is not a voter of partition %d", ErrInvalid, id, g.id)
		}
		f = g.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
	}
	if err := f.Error(); err != nil {
		// A transfer refused because another runs leaves that one's flag alone.
		if !errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			g.awaitTransferCleared()
		}
		return fmt.Errorf("partition %d: leadership transfer to %q: %w", g.id, id, err)
	}
	return nil
}

// awaitTransferCleared waits, after this node's transfer failed, until
// Raft stops refusing work. hashicorp/raft v1.7.3 answers the transfer's
// future before it clears its in-progress flag, so for a moment the leader
// still rejects applies and barriers with ErrLeadershipTransferInProgress;
// ending the hand-over before then would fail the next requests for
// nothing. The flag has no getter: a barrier is the probe (refused while it
// is set, a no-op entry once it is clear).
//
// Should the flag outlive the wait (a TimeoutNow RPC to the target still
// in flight), ending the hand-over is still safe: the transfer took at
// least a heartbeat timeout, so any lease confirmed before it began has run
// out, and renewing it takes a barrier, which Raft refuses until the flag
// is clear — by then the target has either won (and the barrier fails) or
// not.
func (g *Group) awaitTransferCleared() {
	deadline := time.Now().Add(2 * g.cfg.Raft.ElectionTimeout)
	for g.raft.State() == raft.Leader && time.Now().Before(deadline) {
		err := g.raft.Barrier(g.cfg.Raft.ElectionTimeout).Error()
		if !errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
