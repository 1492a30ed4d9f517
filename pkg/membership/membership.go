// Package membership tells a node which other nodes exist, where to reach
// them and whether they look alive. It runs hashicorp/memberlist (SWIM
// gossip) and carries each node's addresses and cluster settings as node
// metadata, the way Consul and Nomad find their servers.
package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Node states as the cluster status reports them.
const (
	StateAlive   = wire.NodeAlive
	StateSuspect = wire.NodeSuspect
	StateFailed  = wire.NodeFailed
	StateLeft    = wire.NodeLeft
)

// Errors.
var (
	ErrConfig = errors.New("membership: invalid configuration")
)

// Member is one node as gossip describes it.
type Member struct {
	ID         string
	HTTPAddr   string
	RaftAddr   string
	GossipAddr string
	// Partitions is the partition count the node's data was created with;
	// nodes only form a cluster when they agree on it.
	Partitions int
	// Formed reports that the node has Raft state, i.e. belongs to a
	// cluster that was bootstrapped already; Voters are that cluster's
	// voter IDs.
	Formed bool
	Voters []string
	// LogStore is the engine of the node's Raft logs.
	LogStore string
	// Joining: the node has no (or not all) Raft state and asks the
	// partition leaders to add it.
	Joining bool
	// Removing lists the nodes this one asks the cluster to remove.
	Removing []string
	State    string
	// Since is when this node last saw the member's state change.
	Since time.Time
	// leaving is the node's own announcement that it is about to leave.
	leaving bool
}

// Alive reports whether the member is up as far as gossip knows.
func (m Member) Alive() bool { return m.State == StateAlive || m.State == StateSuspect }

// meta is what a node gossips about itself; memberlist limits it to 512
// bytes, which short keys leave plenty of room in.
type meta struct {
	Version    int    `json:"v"`
	HTTP       string `json:"h"`
	Raft       string `json:"r"`
	Partitions int    `json:"p"`
	Formed     bool   `json:"f,omitempty"`
	// Voters are the IDs the cluster was formed with, so that a node
	// still waiting to bootstrap can join the same configuration.
	Voters []string `json:"vs,omitempty"`
	// Leaving is set just before a graceful leave: memberlist's leave
	// notification does not say whether a node left or died.
	Leaving  bool     `json:"l,omitempty"`
	LogStore string   `json:"ls,omitempty"`
	Joining  bool     `json:"j,omitempty"`
	Removing []string `json:"rm,omitempty"`
}

const metaVersion = 1

// Timings are the gossip intervals; tests shorten them.
type Timings struct {
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	GossipInterval time.Duration
	SuspicionMult  int
	// JoinRetry is how often a node retries --join until it reaches a peer.
	JoinRetry time.Duration
	// Reconnect is how often a node tries to reach the members it sees
	// as failed (SetWanted).
	Reconnect time.Duration
}

// LANTimings are memberlist's LAN defaults.
func LANTimings() Timings {
	c := memberlist.DefaultLANConfig()
	return Timings{
		ProbeInterval:  c.ProbeInterval,
		ProbeTimeout:   c.ProbeTimeout,
		GossipInterval: c.GossipInterval,
		SuspicionMult:  c.SuspicionMult,
		JoinRetry:      time.Second,
		Reconnect:      2 * time.Second,
	}
}

// FastTimings detect failures within about a second, for tests.
func FastTimings() Timings {
	return Timings{
		ProbeInterval:  100 * time.Millisecond,
		ProbeTimeout:   50 * time.Millisecond,
		GossipInterval: 20 * time.Millisecond,
		SuspicionMult:  2,
		JoinRetry:      100 * time.Millisecond,
		Reconnect:      200 * time.Millisecond,
	}
}

// Config configures a node's membership.
type Config struct {
	NodeID string
	// BindAddr is host:port for gossip (UDP and TCP on the same port).
	BindAddr string
	// AdvertiseAddr is what other nodes dial; a host name is resolved
	// once at start. Empty: BindAddr.
	AdvertiseAddr string
	HTTPAddr      string
	RaftAddr      string
	// Partitions is 0 while a joining node has yet to learn the
	// cluster's count.
	Partitions int
	LogStore   string
	Formed     bool
	Joining    bool
	// Removed is called when a partition leader tells this node that it
	// is no longer in that partition's configuration, as of the
	// configuration at index.
	Removed func(by string, partition int, index uint64)
	// Conflict is called when another node claims this node's ID from
	// another address.
	Conflict func(addr string)
	// SecretKey (16, 24 or 32 bytes) encrypts and authenticates gossip;
	// a node without it, or with another, cannot join or be heard.
	SecretKey []byte
	// Join lists gossip addresses of other nodes; they are retried until
	// one answers.
	Join    []string
	Timings Timings
	Logger  *slog.Logger

	// transport replaces memberlist's UDP/TCP transport; tests cut it.
	transport memberlist.Transport
}

// Membership is this node's view of the cluster.
type Membership struct {
	cfg  Config
	ml   *memberlist.Memberlist
	log  *slog.Logger
	self Member

	mu      sync.Mutex
	meta    meta
	members map[string]Member
	changed chan struct{}
	// wanted filters the failed members worth reaching (SetWanted).
	wanted func(id string) bool

	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// Start begins gossiping and, if Join is set, keeps trying to reach the
// listed nodes in the background until one answers.
func Start(cfg Config) (*Membership, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timings == (Timings{}) {
		cfg.Timings = LANTimings()
	}
	host, portStr, err := net.SplitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip address %q: %w", ErrConfig, cfg.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip port %q: %w", ErrConfig, portStr, err)
	}
	m := &Membership{
		cfg:     cfg,
		log:     cfg.Logger,
		members: make(map[string]Member),
		changed: make(chan struct{}),
		stop:    make(chan struct{}),
		meta: meta{
			Version:    metaVersion,
			HTTP:       cfg.HTTPAddr,
			Raft:       cfg.RaftAddr,
			Partitions: cfg.Partitions,
			LogStore:   cfg.LogStore,
			Formed:     cfg.Formed,
			Joining:    cfg.Joining,
		},
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeID
	mc.BindAddr = host
	mc.BindPort = port
	mc.ProbeInterval = cfg.Timings.ProbeInterval
	mc.ProbeTimeout = cfg.Timings.ProbeTimeout
	mc.GossipInterval = cfg.Timings.GossipInterval
	mc.SuspicionMult = cfg.Timings.SuspicionMult
	mc.Delegate = delegate{m}
	mc.Events = events{m}
	mc.Conflict = conflicts{m}
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = cfg.SecretKey
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Logger = logging.StdLogger(cfg.Logger.With("component", "memberlist"))
	if cfg.transport != nil {
		mc.Transport = cfg.transport
	}
	if cfg.AdvertiseAddr != "" {
		ip, aport, err := resolve(cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("%w: --advertise-gossip %q: %w", ErrConfig, cfg.AdvertiseAddr, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ip, aport
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", cfg.BindAddr, err)
	}
	m.ml = ml
	local := ml.LocalNode()
	m.self = m.toMember(local)
	if len(cfg.Join) > 0 {
		m.wg.Add(1)
		go m.joinLoop()
	}
	if cfg.Timings.Reconnect > 0 {
		m.wg.Add(1)
		go m.reconnectLoop()
	}
	return m, nil
}

// resolve turns host:port into an IP and port, as memberlist advertises
// only IPs.
func resolve(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, err
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), port, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return "", 0, fmt.Errorf("resolve %s: %w", host, err)
	}
	return ips[0].String(), port, nil
}

// joinLoop retries Join until some listed node answers; nodes may start in
// any order. Once joined, gossip keeps the node connected; if it finds
// itself alone again (every peer restarted), it goes back to joining.
func (m *Membership) joinLoop() {
	defer m.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		if m.ml.NumMembers() < 2 {
			n, err := m.ml.Join(m.cfg.Join)
			if err != nil && n == 0 {
				m.log.Debug("join failed, retrying", "peers", m.cfg.Join, "err", err)
			} else if n > 0 {
				m.log.Info("joined cluster", "contacted", n)
			}
		}
		t.Reset(m.cfg.Timings.JoinRetry)
	}
}

// reconnectLoop reaches out to failed members, the way Serf does for
// Consul. A push/pull with a failed member that is in fact up shows each
// side that the other saw it dead; both refute with a new incarnation, and
// the next push/pull carries those: two rounds bring a healed partition
// back together. Each attempt runs on its own, as dialing a dead host can
// take memberlist's whole TCP timeout, and stopping does not wait for one:
// all a late push/pull can tell a peer is that this node is alive at its
// last incarnation, which never outweighs the peer's news of its death or
// leave at that same incarnation.
func (m *Membership) reconnectLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Timings.Reconnect)
	defer t.Stop()
	var (
		mu       sync.Mutex
		inFlight = map[string]bool{}
	)
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		for _, mem := range m.Members() {
			if mem.State != StateFailed || mem.GossipAddr == "" || !m.wants(mem.ID) {
				continue
			}
			mu.Lock()
			busy := inFlight[mem.ID]
			inFlight[mem.ID] = true
			mu.Unlock()
			if busy {
				continue
			}
			go func() {
				defer func() {
					mu.Lock()
					delete(inFlight, mem.ID)
					mu.Unlock()
				}()
				if _, err := m.ml.Join([]string{mem.GossipAddr}); err == nil {
					m.log.Debug("reached a failed member", "node", mem.ID)
				}
			}()
		}
	}
}

// SetWanted says which failed members are still worth reaching: memberlist
// never contacts a failed node again, so after a network partition heals,
// two sides that each saw the other fail would otherwise stay apart for
// good. Until it is set, every failed member is.
func (m *Membership) SetWanted(wanted func(id string) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wanted = wanted
}

func (m *Membership) wants(id string) bool {
	m.mu.Lock()
	wanted := m.wanted
	m.mu.Unlock()
	return wanted == nil || wanted(id)
}

// Self is this node.
func (m *Membership) Self() Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.self
	s.Formed = m.meta.Formed
	s.Voters = slices.Clone(m.meta.Voters)
	s.Partitions = m.meta.Partitions
	s.LogStore = m.meta.LogStore
	s.Joining = m.meta.Joining
	s.Removing = slices.Clone(m.meta.Removing)
	s.State = StateAlive
	return s
}

// SetFormed announces that this node now belongs to a cluster with these
// voters. The new metadata is ours at once; gossip spreads it. Waiting for
// the broadcast only bounds how long we hold the caller: a busy machine can
// take longer than that to send it, and push/pull sync delivers it anyway,
// so a slow broadcast is not a failure.
func (m *Membership) SetFormed(voters []string) {
	m.update(func(md *meta) {
		md.Formed = true
		md.Joining = false
		md.Voters = slices.Clone(voters)
	})
}

// SetPartitions announces the partition count and log store a joining
// node learned from the cluster.
func (m *Membership) SetPartitions(n int, logStore string) {
	m.update(func(md *meta) { md.Partitions, md.LogStore = n, logStore })
}

// SetJoining announces whether this node asks to be added.
func (m *Membership) SetJoining(on bool) {
	m.update(func(md *meta) { md.Joining = on })
}

// SetRemoving announces the nodes this node asks the cluster to remove.
func (m *Membership) SetRemoving(ids []string) {
	m.update(func(md *meta) { md.Removing = slices.Clone(ids) })
}

// update changes this node's metadata and gossips it.
func (m *Membership) update(change func(*meta)) {
	m.mu.Lock()
	change(&m.meta)
	m.mu.Unlock()
	if err := m.ml.UpdateNode(time.Second); err != nil {
		m.log.Warn("node metadata is announced slowly; gossip will carry it", "error", err)
	}
}

// Members returns every node ever seen, this one included, sorted by ID,
// with its current state.
func (m *Membership) Members() []Member {
	live := map[string]memberlist.NodeStateType{}
	for _, n := range m.ml.Members() {
		live[n.Name] = n.State
	}
	self := m.Self()
	m.mu.Lock()
	out := make([]Member, 0, len(m.members)+1)
	for id, mem := range m.members {
		if id == self.ID {
			continue
		}
		if st, ok := live[id]; ok {
			mem.State = stateName(st)
		}
		out = append(out, mem)
	}
	m.mu.Unlock()
	out = append(out, self)
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Member returns one node by ID.
func (m *Membership) Member(id string) (Member, bool) {
	for _, mem := range m.Members() {
		if mem.ID == id {
			return mem, true
		}
	}
	return Member{}, false
}

// Changed returns a channel closed at the next membership change.
func (m *Membership) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *Membership) notify() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Close leaves the cluster gracefully (others see "left", not "failed")
// and stops gossip.
func (m *Membership) Close() error {
	return m.shutdown(true)
}

// Kill stops gossip without leaving, the way a crash looks to the others.
// Tests use it to simulate a dead node in process.
func (m *Membership) Kill() error {
	return m.shutdown(false)
}

func (m *Membership) shutdown(leave bool) (err error) {
	m.once.Do(func() {
		close(m.stop)
		m.wg.Wait()
		if leave {
			m.mu.Lock()
			m.meta.Leaving = true
			m.mu.Unlock()
			// Best effort: a node that cannot announce it will show up
			// as failed rather than left.
			_ = m.ml.UpdateNode(500 * time.Millisecond)
			err = m.ml.Leave(time.Second)
		}
		if serr := m.ml.Shutdown(); err == nil {
			err = serr
		}
	})
	return err
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return StateAlive
	case memberlist.StateSuspect:
		return StateSuspect
	case memberlist.StateLeft:
		return StateLeft
	default:
		return StateFailed
	}
}

func (m *Membership) toMember(n *memberlist.Node) Member {
	mem := Member{ID: n.Name, GossipAddr: n.Address(), State: stateName(n.State)}
	var md meta
	if err := json.Unmarshal(n.Meta, &md); err != nil {
		m.log.Warn("ignoring undecodable node metadata", "node", n.Name, "err", err)
		return mem
	}
	mem.HTTPAddr, mem.RaftAddr, mem.Partitions, mem.Formed = md.HTTP, md.Raft, md.Partitions, md.Formed
	mem.Voters = md.Voters
	mem.LogStore, mem.Joining, mem.Removing = md.LogStore, md.Joining, md.Removing
	mem.leaving = md.Leaving
	return mem
}

// record stores what an event says about a node.
func (m *Membership) record(n *memberlist.Node, state string) {
	mem := m.toMember(n)
	if state != "" {
		mem.State = state
	}
	m.mu.Lock()
	mem.Since = time.Now()
	if old, ok := m.members[mem.ID]; ok && old.State == mem.State {
		mem.Since = old.Since
	}
	m.members[mem.ID] = mem
	m.notify()
	m.mu.Unlock()
}

type events struct{ m *Membership }

func (e events) NotifyJoin(n *memberlist.Node)   { e.m.record(n, StateAlive) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.m.record(n, "") }
func (e events) NotifyLeave(n *memberlist.Node) {
	state := StateFailed
	if e.m.toMember(n).leaving {
		state = StateLeft
	}
	e.m.record(n, state)
	e.m.log.Info("node is gone", "node", n.Name, "state", state)
}

type delegate struct{ m *Membership }

func (d delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	md := d.m.meta
	d.m.mu.Unlock()
	b, err := json.Marshal(md)
	if err != nil || len(b) > limit {
		d.m.log.Error("node metadata does not fit", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

func (d delegate) NotifyMsg(b []byte)                       { d.m.receive(b) }
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

type conflicts struct{ m *Membership }

// NotifyConflict is memberlist's report of two nodes with one name. Only
// a claim on this node's own ID concerns it: the other nodes keep the
// first claimant and ignore the second.
func (c conflicts) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name != c.m.cfg.NodeID || c.m.cfg.Conflict == nil {
		return
	}
	c.m.cfg.Conflict(other.Address())
}

// notice is a message one node sends another directly.
type notice struct {
	Kind      string `json:"k"`
	From      string `json:"f"`
	Partition int    `json:"p"`
	Index     uint64 `json:"i"`
}

const noticeRemoved = "removed"

// TellRemoved tells node id that it is not in partition's configuration
// as of the configuration at index.
func (m *Membership) TellRemoved(id string, partition int, index uint64) error {
	var target *memberlist.Node
	for _, n := range m.ml.Members() {
		if n.Name == id {
			target = n
			break
		}
	}
	if target == nil {
		return fmt.Errorf("membership: no live node %q", id)
	}
	b, err := json.Marshal(notice{Kind: noticeRemoved, From: m.cfg.NodeID, Partition: partition, Index: index})
	if err != nil {
		return err
	}
	return m.ml.SendReliable(target, b)
}

func (m *Membership) receive(b []byte) {
	var n notice
	if err := json.Unmarshal(b, &n); err != nil {
		m.log.Warn("ignoring an undecodable message", "err", err)
		return
	}
	if n.Kind == noticeRemoved && m.cfg.Removed != nil {
		m.cfg.Removed(n.From, n.Partition, n.Index)
	}
}
