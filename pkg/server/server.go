// Package server is kahunad's composition root: it turns a Config into a
// running node (data directory, listeners, partitions, router, HTTP API)
// and takes it down again in order.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/api"
	"github.com/kahuna-go/kahuna/pkg/auth"
	"github.com/kahuna-go/kahuna/pkg/clock"
	"github.com/kahuna-go/kahuna/pkg/cluster"
	"github.com/kahuna-go/kahuna/pkg/forward"
	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/metrics"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
	"github.com/kahuna-go/kahuna/pkg/tlsconfig"
	"github.com/kahuna-go/kahuna/pkg/transport"
	"github.com/kahuna-go/kahuna/pkg/ui"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// DefaultPartitions is the partition count of a new cluster of
// bootstrapExpect voters: one partition per voter, so that every node can
// lead one. More would cost throughput: every partition fsyncs its own log
// per batch, and with a fixed number of clients more partitions mean more,
// smaller batches; see docs/architecture.md for the measurements.
func DefaultPartitions(bootstrapExpect int) int {
	return max(1, bootstrapExpect)
}

// DefaultDeadNodeTimeout is --dead-node-timeout's default (CONTRACT §7).
const DefaultDeadNodeTimeout = 30 * time.Second

// The API server's connection timeouts, shared with kahuna-ceiling, whose
// measurement means something only on the same HTTP set-up.
const (
	APIReadHeaderTimeout = 10 * time.Second
	APIIdleTimeout       = 2 * time.Minute
)

// Config is everything kahunad's flags set.
type Config struct {
	NodeID  string
	DataDir string

	HTTPAddr   string
	RaftAddr   string
	GossipAddr string
	// Advertised addresses, for when the bind address is not reachable
	// as such (0.0.0.0, NAT). Empty means "same as bound".
	AdvertiseHTTP   string
	AdvertiseRaft   string
	AdvertiseGossip string
	// DebugAddr, when set, serves Go's pprof endpoints there.
	DebugAddr string

	Join            []string
	BootstrapExpect int
	// Partitions is 0 for "as stored, else DefaultPartitions".
	Partitions int
	// LogStore is "" for "as stored, else partition.DefaultLogStore".
	LogStore partition.LogStore

	Logger *slog.Logger
	Clock  clock.Clock
	// Tuning knobs for tests and benchmarks; zero values take the defaults.
	Raft        partition.RaftTimings
	Tick        time.Duration
	Grace       time.Duration
	MaxInflight int
	LeaderWait  time.Duration
	BodyTimeout time.Duration
	Gossip      membership.Timings
	// BalanceInterval is how often the leader balance is looked at
	// (default 500 ms); a plan is carried out once it has stood for two.
	BalanceInterval time.Duration
	// AuthFile turns on bearer tokens (--auth-file); Reload reads it again.
	AuthFile string
	// PeerTLSCertFile, PeerTLSKeyFile and PeerTLSCAFile put the internal
	// port (Raft and forwarding) under mutual TLS.
	PeerTLSCertFile, PeerTLSKeyFile, PeerTLSCAFile string
	// GossipKeyFile holds a base64 key (16, 24 or 32 bytes) that encrypts
	// gossip.
	GossipKeyFile string
	// TLSCertFile and TLSKeyFile make the API serve HTTPS only;
	// TLSClientCAFile also requires client certificates signed by it.
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	// JoinTimeout bounds how long a new node with --join looks for a
	// formed cluster before it gives up (default 1 min).
	JoinTimeout time.Duration
	// DeadNodeTimeout is how long a member must have been failed before
	// the cluster removes it; 0 never (--dead-node-timeout).
	DeadNodeTimeout time.Duration
	// ForceNewCluster makes every partition a single-voter group of this
	// node with the state it holds (--force-new-cluster, CONTRACT §7).
	ForceNewCluster bool
	// Hostname defaults to os.Hostname.
	Hostname func() (string, error)
	// WrapLogStore lets fault tests slow the Raft log store (see
	// partition.Config).
	WrapLogStore func(partition int, store raft.LogStore) raft.LogStore
}

// Errors.
var (
	ErrConfig = errors.New("invalid configuration")
	ErrListen = errors.New("cannot listen")
)

// Server is a running kahunad node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	data    *dataDir
	httpLn  net.Listener
	raftLn  net.Listener
	mux     *transport.Mux
	parts   *partition.Set
	metrics *metrics.Metrics
	members *membership.Membership
	remover *cluster.Remover
	auth    *auth.Store
	// apiTLS is the API's certificate, nil for plain HTTP; peerTLS the
	// internal port's, nil for plain TCP.
	apiTLS, peerTLS *tlsconfig.Reloader
	gossipKey       []byte
	fwd             *forward.Client
	nodeID          string
	// joining is set while a node that joins a formed cluster is not yet
	// a voter of every partition; removed once the cluster removed it.
	joining     atomic.Bool
	removed     atomic.Bool
	removedOnce sync.Once
	conflicts   chan string
	fwdSrv      *forward.Server
	router      *router.Router
	// stop ends formation and balancing.
	stop     context.CancelFunc
	formed   chan struct{}
	http     *http.Server
	debug    *http.Server
	fresh    freshConns
	cancel   context.CancelFunc
	httpAddr string
	raftAddr string
	errs     chan error
	wg       sync.WaitGroup
	once     sync.Once
}

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = "kahuna-data"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8082"
	}
	if c.RaftAddr == "" {
		c.RaftAddr = "127.0.0.1:9082"
	}
	if c.GossipAddr == "" {
		c.GossipAddr = "127.0.0.1:7946"
	}
	if c.BootstrapExpect == 0 {
		c.BootstrapExpect = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Hostname == nil {
		c.Hostname = os.Hostname
	}
	if c.BalanceInterval == 0 {
		c.BalanceInterval = 500 * time.Millisecond
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = time.Minute
	}
}

// joining reports whether the node joins a formed cluster rather than
// forming one: --join without --bootstrap-expect above one.
func (c *Config) joining() bool { return len(c.Join) > 0 && c.BootstrapExpect <= 1 }

func (c *Config) validate() error {
	if len(c.NodeID) > transport.MaxNodeIDLen {
		return fmt.Errorf("%w: --node-id is %d bytes long, at most %d", ErrConfig, len(c.NodeID), transport.MaxNodeIDLen)
	}
	if c.BootstrapExpect < 1 {
		return fmt.Errorf("%w: --bootstrap-expect must be at least 1, got %d", ErrConfig, c.BootstrapExpect)
	}
	if c.Partitions < 0 || c.Partitions > partition.MaxPartitions {
		return fmt.Errorf("%w: --partitions must be between 1 and %d, got %d", ErrConfig, partition.MaxPartitions, c.Partitions)
	}
	if c.LogStore != "" {
		if _, err := partition.ParseLogStore(string(c.LogStore)); err != nil {
			return fmt.Errorf("%w: --log-store: %w", ErrConfig, err)
		}
	}
	for _, a := range []struct{ flag, addr string }{
		{"--http-addr", c.HTTPAddr}, {"--raft-addr", c.RaftAddr}, {"--gossip-addr", c.GossipAddr},
		{"--advertise-http", c.AdvertiseHTTP}, {"--advertise-raft", c.AdvertiseRaft}, {"--advertise-gossip", c.AdvertiseGossip},
	} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%w: %s %q is not host:port: %w", ErrConfig, a.flag, a.addr, err)
		}
	}
	return nil
}

// advertised picks the address other nodes and clients should use.
func advertised(flag, bound, advertise string) (string, error) {
	if advertise != "" {
		return advertise, nil
	}
	host, _, _ := net.SplitHostPort(bound)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("%w: %s %s binds every interface; set --advertise-%s to an address other nodes can reach",
			ErrConfig, flag, bound, strings.TrimSuffix(strings.TrimPrefix(flag, "--"), "-addr"))
	}
	return bound, nil
}

// advertisedHTTP is like advertised, but an API bound to every interface
// falls back to the internal address's host: exposing the API should not
// need a second flag.
func advertisedHTTP(bound, advertise, raftAddr string) string {
	if advertise != "" {
		return advertise
	}
	host, port, _ := net.SplitHostPort(bound)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		raftHost, _, _ := net.SplitHostPort(raftAddr)
		return net.JoinHostPort(raftHost, port)
	}
	return bound
}

func listen(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		hint := ""
		if errors.Is(err, syscall.EADDRINUSE) {
			hint = " (is another kahunad or another program using the port?)"
		}
		return nil, fmt.Errorf("%w: %s %s: %w%s", ErrListen, flag, addr, err, hint)
	}
	return ln, nil
}

// New starts a node: it locks the data directory, binds the ports, opens the
// partitions and serves HTTP. Failures come back as errors, never panics, and
// leave nothing running.
func New(cfg Config) (_ *Server, err error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, errs: make(chan error, 2)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" || cfg.TLSClientCAFile != "" {
		if cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" {
			return nil, fmt.Errorf("%w: HTTPS needs both --tls-cert-file and --tls-key-file (--tls-client-ca-file alone does not turn it on)", ErrConfig)
		}
		s.apiTLS, err = tlsconfig.New(tlsconfig.Files{Cert: cfg.TLSCertFile, Key: cfg.TLSKeyFile, CA: cfg.TLSClientCAFile})
		if err != nil {
			return nil, fmt.Errorf("%w: --tls-*-file: %w", ErrConfig, err)
		}
	}
	if cfg.PeerTLSCertFile != "" || cfg.PeerTLSKeyFile != "" || cfg.PeerTLSCAFile != "" {
		if cfg.PeerTLSCertFile == "" || cfg.PeerTLSKeyFile == "" || cfg.PeerTLSCAFile == "" {
			return nil, fmt.Errorf("%w: mutual TLS between nodes needs all of --peer-tls-cert-file, --peer-tls-key-file and --peer-tls-ca-file", ErrConfig)
		}
		s.peerTLS, err = tlsconfig.New(tlsconfig.Files{Cert: cfg.PeerTLSCertFile, Key: cfg.PeerTLSKeyFile, CA: cfg.PeerTLSCAFile})
		if err != nil {
			return nil, fmt.Errorf("%w: --peer-tls-*-file: %w", ErrConfig, err)
		}
	}
	if cfg.GossipKeyFile != "" {
		if s.gossipKey, err = readGossipKey(cfg.GossipKeyFile); err != nil {
			return nil, fmt.Errorf("%w: --gossip-key-file: %w", ErrConfig, err)
		}
	}
	if cfg.AuthFile != "" {
		if s.auth, err = auth.Load(cfg.AuthFile); err != nil {
			return nil, fmt.Errorf("%w: --auth-file: %w", ErrConfig, err)
		}
	}
	s.data, err = openDataDir(cfg.DataDir, dataDirWants{
		NodeID:            cfg.NodeID,
		Partitions:        cfg.Partitions,
		DefaultPartitions: DefaultPartitions(cfg.BootstrapExpect),
		LogStore:          cfg.LogStore,
		Hostname:          cfg.Hostname,
		Defer:             cfg.joining(),
	})
	if err != nil {
		return nil, err
	}
	nodeID := s.data.meta.NodeID
	s.nodeID = nodeID
	s.joining.Store(cfg.joining())

	if s.httpLn, err = listen("--http-addr", cfg.HTTPAddr); err != nil {
		return nil, err
	}
	if s.raftLn, err = listen("--raft-addr", cfg.RaftAddr); err != nil {
		return nil, err
	}
	if s.raftAddr, err = advertised("--raft-addr", s.raftLn.Addr().String(), cfg.AdvertiseRaft); err != nil {
		return nil, err
	}
	s.httpAddr = advertisedHTTP(s.httpLn.Addr().String(), cfg.AdvertiseHTTP, s.raftAddr)
	raftAdvertise, err := net.ResolveTCPAddr("tcp", s.raftAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: --advertise-raft %s: %w", ErrConfig, s.raftAddr, err)
	}
	s.mux = transport.NewMux(s.raftLn, raftAdvertise, s.log.With("component", "mux"))
	s.mux.SetNodeID(nodeID)
	if s.peerTLS != nil {
		s.mux.SetTLS(s.peerTLS.PeerServerConfig(), s.peerTLS.PeerClientConfig())
	}
	s.raftLn = nil // the mux owns it now

	s.fwd = forward.NewClient(s.mux.Dial)
	// A new node joining a cluster learns the partition count and the log
	// store from it before it creates anything.
	if s.data.meta.Partitions == 0 {
		if err := s.startMembership(false); err != nil {
			return nil, err
		}
		if err := s.discover(); err != nil {
			return nil, err
		}
	}

	s.metrics = metrics.New(partitionStats{s})
	s.parts, err = partition.Open(partition.Config{
		NodeID:      nodeID,
		Dir:         s.data.partitionsDir(),
		Count:       s.data.meta.Partitions,
		LogStore:    s.data.meta.LogStore,
		Mux:         s.mux,
		Clock:       cfg.Clock,
		Logger:      s.log,
		Raft:        cfg.Raft,
		Tick:        cfg.Tick,
		Grace:       cfg.Grace,
		MaxInflight: cfg.MaxInflight,

		ForceNewCluster: cfg.ForceNewCluster,
		WrapLogStore:    cfg.WrapLogStore,
		OnBatch:         s.metrics.Batch,
		OnLogWrite:      s.metrics.LogWrite,
	})
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.mux.Serve(); err != nil {
			s.errs <- err
		}
	}()
	formed, err := s.parts.Formed(s.data.meta.Formed)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w; restore the directory from a backup, or empty it and start the node with --join to rejoin as a new member",
			ErrDataDir, cfg.DataDir, err)
	}
	if formed {
		if err := s.data.markFormed(); err != nil {
			return nil, err
		}
	}
	if s.members == nil {
		if err := s.startMembership(formed); err != nil {
			return nil, err
		}
	} else {
		s.members.SetPartitions(s.parts.Count(), string(s.data.meta.LogStore))
	}
	// A failed member is sought out again only while some partition still
	// lists it: a dead node the cluster removed is left alone.
	s.members.SetWanted(func(id string) bool { return s.MemberOf(id) >= 0 })

	s.router = router.New(router.Config{
		NodeID:     nodeID,
		Parts:      s.parts,
		Forwarder:  s.fwd,
		LeaderWait: cfg.LeaderWait,
		Logger:     s.log,
	})
	fwdLn, err := s.mux.Register(transport.Header{Kind: transport.KindForward})
	if err != nil {
		return nil, err
	}
	s.fwdSrv = forward.NewServer(nodeID, fwdLn, s.router, s.log.With("component", "forward"))
	s.fwdSrv.SetNode(s)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.fwdSrv.Serve()
	}()

	// Formation bootstraps a new cluster (at once for a single node, once
	// the expected voters are seen otherwise); the balancer then keeps
	// leaders spread. Neither blocks start-up: /readyz says when the node
	// can serve.
	bg, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.formed = make(chan struct{})
	formation := &cluster.Formation{
		Self: nodeID, Join: cfg.joining(), Expect: cfg.BootstrapExpect, Parts: s.parts, Members: s.members,
		Log: s.log.With("component", "formation"),
	}
	balancer := &cluster.Balancer{
		Self: nodeID, Parts: s.parts, Members: s.members, Interval: cfg.BalanceInterval,
		Log: s.log.With("component", "balancer"), Healthy: s.peerReady,
	}
	autopilot := &cluster.Autopilot{
		Self: nodeID, Parts: s.parts, Members: s.members, Interval: cfg.BalanceInterval,
		Log: s.log.With("component", "autopilot"), Healthy: s.peerReady, Applied: s.peerApplied, Reachable: s.peerReachable,
		DeadNodeTimeout: cfg.DeadNodeTimeout,
		SelfRemoved:     func(p int, index uint64) { s.onRemoved(nodeID, p, index) },
	}
	s.remover = &cluster.Remover{Parts: s.parts, Members: s.members, Live: s.peerReachable}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		go s.watchConflicts(bg)
		if err := formation.Run(bg); err != nil {
			if bg.Err() == nil {
				s.errs <- fmt.Errorf("forming the cluster: %w", err)
			}
			return
		}
		if err := s.data.markFormed(); err != nil {
			s.errs <- fmt.Errorf("recording the formed cluster: %w", err)
			return
		}
		s.joining.Store(false)
		close(s.formed)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			autopilot.Run(bg)
		}()
		balancer.Run(bg)
	}()
	base, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.http = &http.Server{
		Handler: api.New(s.router, s, api.Config{Logger: s.log.With("component", "api"), BodyTimeout: cfg.BodyTimeout, Auth: s.auth,
			Metrics: s.metrics.Handler(), Observer: s.metrics, UI: ui.Handler()}),
		ReadHeaderTimeout: APIReadHeaderTimeout,
		// No ReadTimeout: the API bounds body reads per request, because
		// this one would also cancel requests waiting for a lock.
		IdleTimeout: APIIdleTimeout,
		BaseContext: func(net.Listener) context.Context { return base },
		ConnState:   s.fresh.track,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if cfg.DebugAddr != "" {
		ln, err := listen("--debug-addr", cfg.DebugAddr)
		if err != nil {
			return nil, err
		}
		s.debug = serveDebug(ln)
	}
	httpLn := s.httpLn
	s.httpLn = nil // the HTTP server owns it now
	s.wg.Add(1)
	serve := s.http.Serve
	if s.apiTLS != nil {
		s.http.TLSConfig = s.apiTLS.ServerConfig(cfg.TLSClientCAFile != "")
		serve = func(ln net.Listener) error { return s.http.ServeTLS(ln, "", "") }
	}
	go func() {
		defer s.wg.Done()
		if err := serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errs <- fmt.Errorf("http: %w", err)
		}
	}()
	s.log.Info("kahunad started",
		"node", nodeID, "http", s.httpAddr, "raft", s.raftAddr,
		"https", s.apiTLS != nil, "peer_tls", s.peerTLS != nil, "gossip_encrypted", s.gossipKey != nil, "auth", s.auth != nil,
		"data_dir", cfg.DataDir, "partitions", s.parts.Count(), "log_store", s.data.meta.LogStore, "new_data_dir", s.data.fresh)
	return s, nil
}

// Reload reads the auth file again (SIGHUP). A file that fails to load
// leaves the tokens in force as they were, and the error says why.
func (s *Server) Reload() error {
	var errs []error
	if s.auth != nil {
		if err := s.auth.Reload(s.cfg.AuthFile); err != nil {
			errs = append(errs, fmt.Errorf("--auth-file %s not reloaded, the previous tokens stay in force: %w", s.cfg.AuthFile, err))
		} else {
			s.log.Info("auth file reloaded", "file", s.cfg.AuthFile, "tokens", s.auth.Len())
		}
	}
	if s.peerTLS != nil {
		if err := s.peerTLS.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("peer certificate not reloaded, the previous one stays in use: %w", err))
		} else {
			s.log.Info("peer certificate reloaded", "not_after", s.peerTLS.Leaf().NotAfter)
		}
	}
	if s.apiTLS != nil {
		if err := s.apiTLS.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("API certificate not reloaded, the previous one stays in use: %w", err))
		} else {
			s.log.Info("API certificate reloaded", "not_after", s.apiTLS.Leaf().NotAfter)
		}
	}
	return errors.Join(errs...)
}

// HTTPAddr is the address clients use.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// RaftAddr is the address of the internal port.
func (s *Server) RaftAddr() string { return s.raftAddr }

// NodeID is this node's ID.
func (s *Server) NodeID() string { return s.nodeID }

// Isolate cuts the node's internal traffic (Raft and forwarding) off from
// every other node, or restores it; a fault hook for tests and drills.
func (s *Server) Isolate(on bool) { s.mux.SetIsolated(on) }

// BlockPeers cuts the connections this node makes to the given internal
// addresses (nil: none); see transport.Mux.SetBlocked. A fault hook.
func (s *Server) BlockPeers(addrs []string) { s.mux.SetBlocked(addrs) }

// Partitions exposes the node's partitions (for tests and tools).
func (s *Server) Partitions() *partition.Set { return s.parts }

// Errors delivers fatal serving errors (a listener that died).
func (s *Server) Errors() <-chan error { return s.errs }

// Ready reports whether this node can serve: the cluster is formed and
// every partition has a leader, this node serving it or another node that
// gossip says is up.
func (s *Server) Ready() (bool, string) {
	if s.removed.Load() {
		return false, "this node was removed from the cluster"
	}
	select {
	case <-s.formed:
	default:
		if s.joining.Load() {
			return false, "joining the cluster: not yet a voter of every partition"
		}
		return false, fmt.Sprintf("waiting for %d nodes to form the cluster", s.cfg.BootstrapExpect)
	}
	for _, g := range s.parts.Groups() {
		c, err := g.Configuration()
		if err != nil {
			return false, err.Error()
		}
		if _, voter := c.Has(s.nodeID); !voter {
			return false, fmt.Sprintf("partition %d: this node is not a voter", g.ID())
		}
		if g.IsLeader() {
			continue
		}
		id, _ := g.Leader()
		switch {
		case id == "":
			return false, fmt.Sprintf("partition %d has no leader", g.ID())
		case id == s.NodeID():
			return false, fmt.Sprintf("partition %d: this node is taking over leadership", g.ID())
		}
		if m, ok := s.members.Member(id); !ok || !m.Alive() {
			return false, fmt.Sprintf("partition %d: leader %s is not reachable", g.ID(), id)
		}
	}
	return true, ""
}

// Status reports every node gossip knows and every partition.
func (s *Server) Status() wire.ClusterStatus {
	st := wire.ClusterStatus{Type: wire.Got, ServedFrom: s.NodeID()}
	groups := s.parts.Groups()
	// seats counts, per node, the partitions it is in and those it votes in.
	type seats struct{ in, voter int }
	seat := map[string]*seats{}
	for _, g := range groups {
		c, err := g.Configuration()
		if err != nil {
			continue
		}
		for _, srv := range c.Servers {
			if seat[srv.ID] == nil {
				seat[srv.ID] = &seats{}
			}
			seat[srv.ID].in++
			if srv.Voter {
				seat[srv.ID].voter++
			}
		}
	}
	for _, m := range s.members.Members() {
		ns := wire.NodeStatus{ID: m.ID, HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr, GossipAddr: m.GossipAddr, State: m.State, Role: wire.RoleNone}
		switch n := seat[m.ID]; {
		case n != nil && n.voter == len(groups):
			ns.Role = wire.RoleVoter
		case n != nil:
			ns.Role = wire.RoleNonVoter
		case m.Joining:
			ns.Role = wire.RoleJoining
		case !m.Alive():
			continue // gone, and in no configuration: nothing to show
		}
		if m.ID == s.NodeID() {
			st.Node = ns
		}
		st.Nodes = append(st.Nodes, ns)
	}
	for _, g := range groups {
		ps := g.Status()
		st.Partitions = append(st.Partitions, wire.PartitionStatus{
			ID:           ps.ID,
			Leader:       ps.LeaderID,
			State:        strings.ToLower(ps.State),
			Term:         ps.Term,
			CommitIndex:  ps.CommitIndex,
			AppliedIndex: ps.AppliedIndex,
			Voters:       ps.Voters,
			NonVoters:    ps.NonVoters,
			Locks:        ps.Locks,
		})
	}
	return st
}

// Close shuts the node down cleanly: waiting requests are cancelled, HTTP
// drains, partitions this node leads are handed to other nodes, the node
// leaves the gossip cluster, every Raft group stops and the data directory is
// unlocked.
func (s *Server) Close() error { return s.shutdown(true) }

// Abort stops the node without the courtesies of Close: no leadership
// hand-off and no goodbye to the cluster, so the other nodes see what a
// crash looks like. Tests and failure drills use it.
func (s *Server) Abort() error { return s.shutdown(false) }

func (s *Server) shutdown(clean bool) error {
	var errs []error
	s.once.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		if s.cancel != nil {
			s.cancel()
		}
		if s.http != nil {
			if err := s.closeHTTP(); err != nil {
				errs = append(errs, err)
			}
		}
		if s.debug != nil {
			s.debug.Close()
		}
		for _, ln := range []net.Listener{s.httpLn, s.raftLn} {
			if ln != nil {
				ln.Close()
			}
		}
		if clean && s.parts != nil {
			s.handOffLeadership()
		}
		if s.fwdSrv != nil {
			s.fwdSrv.Close()
		}
		if s.members != nil {
			if clean {
				s.members.Close()
			} else {
				s.members.Kill()
			}
		}
		if s.parts != nil {
			if err := s.parts.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if s.mux != nil {
			s.mux.Close()
		}
		if s.fwd != nil {
			s.fwd.Close()
		}
		s.wg.Wait()
		if s.data != nil {
			s.data.close()
		}
		if s.parts != nil {
			s.log.Info("kahunad stopped")
		}
	})
	return errors.Join(errs...)
}

// closeHTTP drains the HTTP server for up to 5 s.
func (s *Server) closeHTTP() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.http.Shutdown(ctx) }()
	// Repeat: a connection accepted just before the listener closed may
	// only now show up.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.fresh.closeAll()
		select {
		case err := <-done:
			if err != nil {
				s.http.Close()
				return fmt.Errorf("http shutdown: %w", err)
			}
			return nil
		case <-tick.C:
		}
	}
}

// handOffLeadership moves the leadership of every partition this node leads
// to another voter before stopping, so that a planned restart costs the
// cluster a hand-over instead of an election timeout.
func (s *Server) handOffLeadership() {
	var wg sync.WaitGroup
	for _, g := range s.parts.Groups() {
		voters, err := g.Voters()
		if !g.IsLeader() || err != nil || len(voters) < 2 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.TransferLeadership(""); err != nil {
				s.log.Warn("could not hand off leadership before stopping", "partition", g.ID(), "err", err)
			}
		}()
	}
	wg.Wait()
}

// partitionStats reads the partitions for a metrics scrape.
type partitionStats struct{ s *Server }

func (p partitionStats) PartitionStats() []metrics.PartitionStats {
	groups := p.s.parts.Groups()
	out := make([]metrics.PartitionStats, 0, len(groups))
	for _, g := range groups {
		st := g.Status()
		out = append(out, metrics.PartitionStats{
			ID: st.ID, Leader: st.Serving, Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
			PersistentLocks: st.Locks, EphemeralLocks: st.Ephemeral, Waiters: st.Waiters,
		})
	}
	return out
}
