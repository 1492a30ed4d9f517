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
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/api"
	"github.com/kahuna-go/kahuna/pkg/clock"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
	"github.com/kahuna-go/kahuna/pkg/transport"
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

	Logger *slog.Logger
	Clock  clock.Clock
	// Tuning knobs for tests and benchmarks; zero values take the defaults.
	Raft        partition.RaftTimings
	Tick        time.Duration
	Grace       time.Duration
	MaxInflight int
	LeaderWait  time.Duration
	BodyTimeout time.Duration
	// Hostname defaults to os.Hostname.
	Hostname func() (string, error)
}

// Errors.
var (
	ErrConfig     = errors.New("invalid configuration")
	ErrListen     = errors.New("cannot listen")
	ErrNotSupport = errors.New("not supported yet")
)

// Server is a running kahunad node.
type Server struct {
	cfg      Config
	log      *slog.Logger
	data     *dataDir
	httpLn   net.Listener
	raftLn   net.Listener
	mux      *transport.Mux
	parts    *partition.Set
	router   *router.Router
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
}

func (c *Config) validate() error {
	if c.BootstrapExpect < 1 {
		return fmt.Errorf("%w: --bootstrap-expect must be at least 1, got %d", ErrConfig, c.BootstrapExpect)
	}
	if c.BootstrapExpect > 1 || len(c.Join) > 0 {
		return fmt.Errorf("%w: multi-node clusters (--bootstrap-expect > 1, --join) are not available in this version; run a single node", ErrNotSupport)
	}
	if c.Partitions < 0 || c.Partitions > partition.MaxPartitions {
		return fmt.Errorf("%w: --partitions must be between 1 and %d, got %d", ErrConfig, partition.MaxPartitions, c.Partitions)
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

	s.data, err = openDataDir(cfg.DataDir, cfg.NodeID, cfg.Partitions, DefaultPartitions(cfg.BootstrapExpect), cfg.Hostname)
	if err != nil {
		return nil, err
	}
	nodeID := s.data.meta.NodeID

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
	s.raftLn = nil // the mux owns it now

	s.parts, err = partition.Open(partition.Config{
		NodeID:      nodeID,
		Dir:         s.data.partitionsDir(),
		Count:       s.data.meta.Partitions,
		Mux:         s.mux,
		Clock:       cfg.Clock,
		Logger:      s.log,
		Raft:        cfg.Raft,
		Tick:        cfg.Tick,
		Grace:       cfg.Grace,
		MaxInflight: cfg.MaxInflight,
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
	// A single node forms its own cluster on first start; a restarted one
	// already has its Raft state and skips this.
	self := []raft.Server{{ID: raft.ServerID(nodeID), Address: raft.ServerAddress(s.raftAddr)}}
	if err := s.parts.Bootstrap(self); err != nil {
		return nil, err
	}

	s.router = router.New(router.Config{
		NodeID:     nodeID,
		Parts:      s.parts,
		LeaderWait: cfg.LeaderWait,
		Logger:     s.log,
	})
	base, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.http = &http.Server{
		Handler:           api.New(s.router, s, api.Config{Logger: s.log.With("component", "api"), BodyTimeout: cfg.BodyTimeout}),
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout: the API bounds body reads per request, because
		// this one would also cancel requests waiting for a lock.
		IdleTimeout: 2 * time.Minute,
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
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errs <- fmt.Errorf("http: %w", err)
		}
	}()
	s.log.Info("kahunad started",
		"node", nodeID, "http", s.httpAddr, "raft", s.raftAddr,
		"data_dir", cfg.DataDir, "partitions", s.parts.Count(), "new_data_dir", s.data.fresh)
	return s, nil
}

// HTTPAddr is the address clients use.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// RaftAddr is the address of the internal port.
func (s *Server) RaftAddr() string { return s.raftAddr }

// NodeID is this node's ID.
func (s *Server) NodeID() string { return s.data.meta.NodeID }

// Partitions exposes the node's partitions (for tests and tools).
func (s *Server) Partitions() *partition.Set { return s.parts }

// Errors delivers fatal serving errors (a listener that died).
func (s *Server) Errors() <-chan error { return s.errs }

// Ready reports whether every partition has a leader this node can reach.
func (s *Server) Ready() (bool, string) {
	for _, g := range s.parts.Groups() {
		if !g.IsLeader() {
			return false, fmt.Sprintf("partition %d has no serving leader yet", g.ID())
		}
	}
	return true, ""
}

// Status reports this node and every partition.
func (s *Server) Status() wire.ClusterStatus {
	self := wire.NodeStatus{
		ID:       s.NodeID(),
		HTTPAddr: s.httpAddr,
		RaftAddr: s.raftAddr,
		State:    "alive",
	}
	st := wire.ClusterStatus{Type: wire.Got, ServedFrom: self.ID, Node: self, Nodes: []wire.NodeStatus{self}}
	for _, g := range s.parts.Groups() {
		ps := g.Status()
		st.Partitions = append(st.Partitions, wire.PartitionStatus{
			ID:           ps.ID,
			Leader:       ps.LeaderID,
			State:        strings.ToLower(ps.State),
			Term:         ps.Term,
			CommitIndex:  ps.CommitIndex,
			AppliedIndex: ps.AppliedIndex,
			Voters:       ps.Voters,
			Locks:        ps.Locks,
		})
	}
	return st
}

// Close shuts the node down: waiting requests are cancelled, HTTP drains,
// the partitions stop, and the data directory is unlocked.
func (s *Server) Close() error {
	var errs []error
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		if s.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			done := make(chan error, 1)
			go func() { done <- s.http.Shutdown(ctx) }()
			// Repeat: a connection accepted just before the listener
			// closed may only now show up.
			tick := time.NewTicker(50 * time.Millisecond)
			for waiting := true; waiting; {
				s.fresh.closeAll()
				select {
				case err := <-done:
					if err != nil {
						errs = append(errs, fmt.Errorf("http shutdown: %w", err))
						s.http.Close()
					}
					waiting = false
				case <-tick.C:
				}
			}
			tick.Stop()
			cancel()
		}
		if s.debug != nil {
			s.debug.Close()
		}
		for _, ln := range []net.Listener{s.httpLn, s.raftLn} {
			if ln != nil {
				ln.Close()
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
