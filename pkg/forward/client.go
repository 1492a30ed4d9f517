package forward

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
	"github.com/kahuna-go/kahuna/pkg/transport"
)

// Client forwards requests to other nodes. It keeps one connection per node
// and runs every request to that node over it at the same time; see
// frameWriter for why. It implements router.Forwarder.
type Client struct {
	dial        DialFunc
	dialTimeout time.Duration
	// slack is how long beyond a request's own wait the reply may take
	// before the leader counts as gone.
	slack time.Duration
	now   func() time.Time

	mu      sync.Mutex
	conns   map[string]*clientConn
	dialing map[string]*dialing
	closed  bool
	wg      sync.WaitGroup // the connections' readers and watchdogs
}

var _ router.Forwarder = (*Client)(nil)

// DialFunc opens a connection to service h at addr; (*transport.Mux).Dial
// is the production one.
type DialFunc func(ctx context.Context, addr string, h transport.Header) (net.Conn, error)

// NewClient returns a client that opens connections with dial.
func NewClient(dial DialFunc) *Client {
	return &Client{
		dial:        dial,
		dialTimeout: 2 * time.Second,
		// A leader answers in milliseconds, or in well under a second
		// with an error once it loses its lease; a peer that vanished
		// without closing the connection is given up on after this.
		slack:   5 * time.Second,
		now:     time.Now,
		conns:   make(map[string]*clientConn),
		dialing: make(map[string]*dialing),
	}
}

// Forward runs req on the node at leaderAddr (its internal address).
func (c *Client) Forward(ctx context.Context, leaderID, leaderAddr string, req router.Request) (router.Response, error) {
	resp, err := c.roundTrip(ctx, leaderAddr, &request{kind: kindLock, lock: req}, req.Wait)
	if err != nil {
		return router.Response{}, err
	}
	if err := resp.remoteError(); err != nil {
		return router.Response{ServedFrom: resp.servedFrom}, err
	}
	return router.Response{Result: resp.result, ServedFrom: resp.servedFrom}, nil
}

// List reads one partition's locks on its leader.
func (c *Client) List(ctx context.Context, leaderID, leaderAddr string, part int, d partition.Durability, prefix, after string, limit int) ([]fsm.Info, error) {
	req := &request{kind: kindList, partition: part, list: listArgs{durability: d, prefix: prefix, after: after, limit: limit}}
	resp, err := c.roundTrip(ctx, leaderAddr, req, 0)
	if err != nil {
		return nil, err
	}
	if err := resp.remoteError(); err != nil {
		return nil, err
	}
	return resp.infos, nil
}

// Probe asks the node at addr (its internal address) whether it is ready
// and how far it applied partition part (-1: none).
func (c *Client) Probe(ctx context.Context, addr string, part int) (Probe, error) {
	resp, err := c.roundTrip(ctx, addr, &request{kind: kindProbe, partition: part}, 0)
	if err != nil {
		return Probe{}, err
	}
	if err := resp.remoteError(); err != nil {
		return Probe{}, err
	}
	p := resp.probe
	p.Node = resp.servedFrom
	return p, nil
}

// MemberOf asks the node at addr for the first partition whose
// configuration lists node id; -1 if none does.
func (c *Client) MemberOf(ctx context.Context, addr, id string) (int, error) {
	resp, err := c.roundTrip(ctx, addr, &request{kind: kindMember, node: id}, 0)
	if err != nil {
		return -1, err
	}
	if err := resp.remoteError(); err != nil {
		return -1, err
	}
	return resp.partition, nil
}

// RemoveNode asks the node at addr to remove node id from the cluster.
func (c *Client) RemoveNode(ctx context.Context, addr, id string, wait time.Duration) error {
	resp, err := c.roundTrip(ctx, addr, &request{kind: kindRemove, node: id}, wait)
	if err != nil {
		return err
	}
	return resp.remoteError()
}

// roundTrip sends one request and waits for its reply. A request refused
// by a connection that had already failed was never sent, so it is tried
// once more on a fresh connection; a failure after it may have been sent has
// an unknown outcome.
func (c *Client) roundTrip(ctx context.Context, addr string, req *request, wait time.Duration) (response, error) {
	for attempt := 0; ; attempt++ {
		cn, err := c.conn(ctx, addr)
		if err != nil {
			// Nothing was sent: the caller may look for the leader again.
			return response{}, fmt.Errorf("%w: %w", partition.ErrNotLeader, err)
		}
		resp, err := cn.do(ctx, req, c.now().Add(wait+c.slack))
		switch {
		case err == nil:
			return resp, nil
		case ctx.Err() != nil:
			return response{}, ctx.Err()
		case errors.Is(err, errNotSent) && attempt == 0:
			continue
		case errors.Is(err, errNotSent):
			return response{}, fmt.Errorf("%w: %w", partition.ErrNotLeader, err)
		}
		return response{}, fmt.Errorf("%w: forwarding to %s: %w", partition.ErrUnknownOutcome, addr, err)
	}
}

// conn returns the live connection to addr, dialing one if there is none.
// Callers that arrive while a dial is under way share its outcome.
func (c *Client) conn(ctx context.Context, addr string) (*clientConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClientClosed
	}
	if cn := c.conns[addr]; cn != nil && !cn.failed() {
		c.mu.Unlock()
		return cn, nil
	}
	if d := c.dialing[addr]; d != nil {
		c.mu.Unlock()
		select {
		case <-d.done:
			return d.cn, d.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d := &dialing{done: make(chan struct{})}
	c.dialing[addr] = d
	c.mu.Unlock()

	d.cn, d.err = c.open(ctx, addr)
	c.mu.Lock()
	delete(c.dialing, addr)
	if d.err == nil && c.closed {
		d.cn.fail(errClientClosed)
		d.cn, d.err = nil, errClientClosed
	}
	if d.err == nil {
		c.conns[addr] = d.cn
		c.start(addr, d.cn)
	}
	c.mu.Unlock()
	close(d.done)
	return d.cn, d.err
}

// dialing is a dial in progress, and then its outcome.
type dialing struct {
	done chan struct{}
	cn   *clientConn
	err  error
}

var errClientClosed = errors.New("forward: client closed")

func (c *Client) open(ctx context.Context, addr string) (*clientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	nc, err := c.dial(ctx, addr, transport.Header{Kind: transport.KindForward})
	if err != nil {
		return nil, err
	}
	return &clientConn{
		conn:  nc,
		w:     frameWriter{w: nc},
		calls: make(map[uint64]*call),
		done:  make(chan struct{}),
		now:   c.now,
	}, nil
}

// start runs cn's reader and watchdog; c.mu is held.
func (c *Client) start(addr string, cn *clientConn) {
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		cn.readReplies()
		c.forget(addr, cn)
	}()
	go func() {
		defer c.wg.Done()
		cn.watch(c.slack / 4)
	}()
}

// forget drops cn from the pool once it has failed.
func (c *Client) forget(addr string, cn *clientConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns[addr] == cn {
		delete(c.conns, addr)
	}
}

// Close fails every request in flight and closes every connection.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for _, cn := range conns {
		cn.fail(errClientClosed)
	}
	c.wg.Wait()
}

// clientConn is one connection to a leader, shared by all requests to it.
type clientConn struct {
	conn net.Conn
	w    frameWriter
	now  func() time.Time

	mu     sync.Mutex
	calls  map[uint64]*call
	nextID uint64
	err    error         // why the connection failed; set once
	done   chan struct{} // closed when err is set
}

// call is a request waiting for its reply.
type call struct {
	kind     byte
	deadline time.Time
	reply    chan reply // buffered: whoever answers never blocks
}

type reply struct {
	resp response
	err  error
}

// do sends req and waits for its reply, ctx, or the connection's failure.
func (cn *clientConn) do(ctx context.Context, req *request, deadline time.Time) (response, error) {
	cl := &call{kind: req.kind, deadline: deadline, reply: make(chan reply, 1)}
	cn.mu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.mu.Unlock()
		return response{}, fmt.Errorf("%w: %w", errNotSent, err)
	}
	cn.nextID++
	id := cn.nextID
	cn.calls[id] = cl
	cn.mu.Unlock()

	r := *req
	r.id = id
	if err := cn.send(&r); err != nil {
		if errors.Is(err, errNotSent) {
			cn.drop(id)
			return response{}, err
		}
		// The frame may be half written; nothing after it can be read.
		cn.fail(err)
	}
	select {
	case rep := <-cl.reply:
		return rep.resp, rep.err
	case <-ctx.Done():
		if cn.drop(id) && req.kind == kindLock && req.lock.Wait > 0 {
			// Only a waiting try-lock can hold the leader for long; tell it
			// to stop waiting. Other requests finish on their own and their
			// replies are dropped.
			cn.send(&request{kind: kindCancel, id: id})
		}
		return response{}, ctx.Err()
	}
}

// send writes one request frame (see frameWriter.send).
func (cn *clientConn) send(r *request) error {
	return cn.w.send(func(b []byte) []byte {
		return appendFrame(b, func(b []byte) []byte { return appendRequest(b, r) })
	})
}

func (cn *clientConn) failed() bool {
	select {
	case <-cn.done:
		return true
	default:
		return false
	}
}

// drop forgets call id and reports whether it was still waiting.
func (cn *clientConn) drop(id uint64) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	_, ok := cn.calls[id]
	delete(cn.calls, id)
	return ok
}

// readReplies hands each reply to its call until the connection fails.
func (cn *clientConn) readReplies() {
	br := bufio.NewReaderSize(cn.conn, 32<<10)
	var buf []byte
	for {
		var err error
		buf, err = readFrame(br, buf)
		if err != nil {
			cn.fail(err)
			return
		}
		id, err := responseID(buf)
		if err != nil {
			cn.fail(err)
			return
		}
		cn.mu.Lock()
		cl := cn.calls[id]
		delete(cn.calls, id)
		cn.mu.Unlock()
		if cl == nil {
			continue // its caller gave up
		}
		resp, err := decodeResponse(cl.kind, buf)
		if err != nil {
			cl.reply <- reply{err: err}
			cn.fail(err)
			return
		}
		cl.reply <- reply{resp: resp}
	}
}

// watch fails the connection when a request outlives its deadline: the peer
// is gone without closing the connection (a network partition, a frozen
// process), and every request on it would wait just as long.
func (cn *clientConn) watch(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
		}
		now := cn.now()
		cn.mu.Lock()
		late := false
		for _, cl := range cn.calls {
			if now.After(cl.deadline) {
				late = true
				break
			}
		}
		cn.mu.Unlock()
		if late {
			cn.fail(errors.New("forward: no reply before the deadline"))
		}
	}
}

// fail closes the connection and answers every waiting call with err; their
// requests may or may not have run.
func (cn *clientConn) fail(err error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err = err
	close(cn.done)
	calls := cn.calls
	cn.calls = nil
	cn.mu.Unlock()
	cn.conn.Close()
	for _, cl := range calls {
		cl.reply <- reply{err: err}
	}
}
