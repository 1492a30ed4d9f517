// Package forward carries requests from the node that received them to the
// partition's leader, over the internal port (transport.KindForward). The
// leader runs a forwarded request locally and never forwards it again, so a
// request takes at most one hop.
package forward

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
)

// Executor runs requests on this node only; it answers
// partition.ErrNotLeader for a partition this node does not lead.
type Executor interface {
	ExecuteHere(ctx context.Context, req router.Request) (fsm.Result, error)
	ListHere(ctx context.Context, partition int, d partition.Durability, prefix, after string, limit int) ([]fsm.Info, error)
}

// Node answers what other nodes ask of this node itself rather than of a
// partition: whether it is ready and how far it applied a partition, and
// the removal of a node that cannot carry out its own.
type Node interface {
	Probe(partition int) Probe
	RemoveNode(ctx context.Context, id string) error
	// MemberOf is the first partition whose configuration lists node
	// id, or -1.
	MemberOf(id string) int
}

// Server answers forwarded requests.
type Server struct {
	nodeID string
	ln     net.Listener
	exec   Executor
	node   Node
	log    *slog.Logger

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server for connections accepted from ln.
func NewServer(nodeID string, ln net.Listener, exec Executor, log *slog.Logger) *Server {
	return &Server{nodeID: nodeID, ln: ln, exec: exec, log: log, conns: make(map[net.Conn]struct{})}
}

// SetNode sets what answers probes and removals; call it before Serve.
func (s *Server) SetNode(n Node) { s.node = n }

// Serve accepts connections until Close.
func (s *Server) Serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes every connection and waits for handlers.
// Requests in progress see their context cancelled.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

// serveConn reads requests from one client connection and runs each in its
// own goroutine, so that a slow request (a waiting try-lock) holds up no
// other. Replies go back in the order requests finish.
func (s *Server) serveConn(conn net.Conn) {
	// A client that hangs up wants none of its answers: every request
	// still running, a waiting try-lock in particular, is cancelled.
	ctx, hangUp := context.WithCancel(context.Background())
	var handlers sync.WaitGroup
	defer func() {
		hangUp()
		conn.Close()
		handlers.Wait()
	}()
	w := &frameWriter{w: conn}
	var mu sync.Mutex
	waiting := map[uint64]context.CancelFunc{}

	br := bufio.NewReaderSize(conn, 32<<10)
	var in []byte
	for {
		var err error
		in, err = readFrame(br, in)
		if err != nil {
			return
		}
		req, err := decodeRequest(in)
		if err != nil {
			s.log.Warn("dropping forwarding connection", "remote", conn.RemoteAddr(), "err", err)
			return
		}
		if req.kind == kindCancel {
			mu.Lock()
			if cancel := waiting[req.id]; cancel != nil {
				cancel()
			}
			mu.Unlock()
			continue
		}
		rctx := ctx
		// Only a waiting try-lock can take long, so only it can be
		// cancelled on its own.
		var cancel context.CancelFunc
		if req.kind == kindLock && req.lock.Wait > 0 {
			rctx, cancel = context.WithCancel(ctx)
			mu.Lock()
			waiting[req.id] = cancel
			mu.Unlock()
		}
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			resp := s.handle(rctx, &req)
			if cancel != nil {
				mu.Lock()
				delete(waiting, req.id)
				mu.Unlock()
				cancel()
			}
			err := w.send(func(b []byte) []byte {
				return appendFrame(b, func(b []byte) []byte { return appendResponse(b, req.kind, &resp) })
			})
			if err != nil {
				conn.Close() // ends the read loop
			}
		}()
	}
}

func (s *Server) handle(ctx context.Context, req *request) response {
	resp := response{id: req.id, servedFrom: s.nodeID}
	var err error
	switch req.kind {
	case kindLock:
		resp.result, err = s.exec.ExecuteHere(ctx, req.lock)
	case kindList:
		resp.infos, err = s.exec.ListHere(ctx, req.partition, req.list.durability, req.list.prefix, req.list.after, req.list.limit)
	case kindProbe, kindRemove, kindMember:
		switch {
		case s.node == nil:
			err = fmt.Errorf("%w: this node answers no probes", partition.ErrClosed)
		case req.kind == kindProbe:
			resp.probe = s.node.Probe(req.partition)
		case req.kind == kindMember:
			resp.partition = s.node.MemberOf(req.node)
		default:
			err = s.node.RemoveNode(ctx, req.node)
		}
	}
	if err != nil {
		resp.code, resp.message = errorCode(err), err.Error()
	}
	return resp
}
