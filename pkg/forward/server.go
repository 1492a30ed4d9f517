// Package forward carries requests from the node that received them to the
// partition's leader, over the internal port (transport.KindForward). The
// leader runs a forwarded request locally and never forwards it again, so a
// request takes at most one hop.
package forward

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

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

// Server answers forwarded requests.
type Server struct {
	nodeID string
	ln     net.Listener
	exec   Executor
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

func (s *Server) serveConn(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	var in, out []byte
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
		ctx, cancel := context.WithCancel(context.Background())
		// Only a waiting try-lock can take long; for it, watch the
		// connection so that a client hanging up ends the wait.
		var w *closeWatcher
		if req.kind == kindLock && req.lock.Wait > 0 {
			w = watchClose(conn, br, cancel)
		}
		resp := s.handle(ctx, &req)
		usable := w == nil || w.stop()
		cancel()
		if !usable {
			return
		}
		out = endFrame(appendResponse(startFrame(out), req.kind, &resp))
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

func (s *Server) handle(ctx context.Context, req *request) response {
	resp := response{servedFrom: s.nodeID}
	var err error
	switch req.kind {
	case kindLock:
		resp.result, err = s.exec.ExecuteHere(ctx, req.lock)
	case kindList:
		resp.infos, err = s.exec.ListHere(ctx, req.partition, req.list.durability, req.list.prefix, req.list.after, req.list.limit)
	}
	if err != nil {
		resp.code, resp.message = errorCode(err), err.Error()
	}
	return resp
}

// closeWatcher reads from an idle connection while a request runs, the way
// net/http notices a client that hung up.
type closeWatcher struct {
	conn net.Conn
	done chan struct{}
	// gone is set when the read ended for any reason but stop's deadline.
	gone bool
}

func watchClose(conn net.Conn, br *bufio.Reader, cancel context.CancelFunc) *closeWatcher {
	w := &closeWatcher{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		_, err := br.Peek(1)
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() {
			return
		}
		// EOF or reset: the client is gone. Data: the client broke the
		// one-request-at-a-time protocol. Either way, end the request.
		w.gone = true
		cancel()
	}()
	return w
}

// stop ends the watch and reports whether the connection is still usable.
func (w *closeWatcher) stop() bool {
	w.conn.SetReadDeadline(time.Now())
	<-w.done
	w.conn.SetReadDeadline(time.Time{})
	return !w.gone
}
