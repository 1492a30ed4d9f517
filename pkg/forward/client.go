package forward

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
	"github.com/kahuna-go/kahuna/pkg/transport"
)

// Client forwards requests to other nodes. It keeps idle connections per
// node, one request at a time on each. It implements router.Forwarder.
type Client struct {
	dial        DialFunc
	dialTimeout time.Duration
	// slack is how long beyond a request's own wait the reply may take
	// before the leader counts as gone.
	slack   time.Duration
	maxIdle int

	mu     sync.Mutex
	idle   map[string][]*clientConn
	closed bool
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
		maxIdle: 64,
		idle:    make(map[string][]*clientConn),
	}
}

type clientConn struct {
	net.Conn
	br  *bufio.Reader
	buf []byte
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

// roundTrip sends one request and reads its reply. A connection that fails
// before anything was sent, or a pooled one the peer had already closed, is
// retried once on a fresh connection; a failure after the request may have
// been read has an unknown outcome.
func (c *Client) roundTrip(ctx context.Context, addr string, req *request, wait time.Duration) (response, error) {
	for attempt := 0; ; attempt++ {
		cn, reused, err := c.get(ctx, addr)
		if err != nil {
			// Nothing was sent: the caller may look for the leader again.
			return response{}, fmt.Errorf("%w: %w", partition.ErrNotLeader, err)
		}
		resp, stale, err := cn.do(ctx, req, wait+c.slack)
		if err == nil {
			c.put(addr, cn)
			return resp, nil
		}
		cn.Close()
		if ctx.Err() != nil {
			return response{}, ctx.Err()
		}
		if stale && reused && attempt == 0 {
			continue
		}
		return response{}, fmt.Errorf("%w: forwarding to %s: %w", partition.ErrUnknownOutcome, addr, err)
	}
}

// do runs one exchange. stale reports a failure that shows the peer never
// read the request: the write failed, or the connection was closed before
// any reply byte.
func (cn *clientConn) do(ctx context.Context, req *request, limit time.Duration) (resp response, stale bool, err error) {
	cn.buf = endFrame(appendRequest(startFrame(cn.buf), req))
	if err := cn.SetDeadline(time.Now().Add(limit)); err != nil {
		return response{}, true, err
	}
	// A cancelled caller interrupts the blocked read; the server sees the
	// connection close and, for a waiting try-lock, gives up the wait.
	stop := context.AfterFunc(ctx, func() { cn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := cn.Write(cn.buf); err != nil {
		return response{}, true, err
	}
	cn.buf, err = readFrame(cn.br, cn.buf)
	if err != nil {
		return response{}, errors.Is(err, io.EOF), err
	}
	resp, err = decodeResponse(req.kind, cn.buf)
	return resp, false, err
}

func (c *Client) get(ctx context.Context, addr string) (*clientConn, bool, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, errors.New("forward: client closed")
	}
	if pool := c.idle[addr]; len(pool) > 0 {
		cn := pool[len(pool)-1]
		c.idle[addr] = pool[:len(pool)-1]
		c.mu.Unlock()
		return cn, true, nil
	}
	c.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	conn, err := c.dial(dctx, addr, transport.Header{Kind: transport.KindForward})
	if err != nil {
		return nil, false, err
	}
	return &clientConn{Conn: conn, br: bufio.NewReaderSize(conn, 4096)}, false, nil
}

func (c *Client) put(addr string, cn *clientConn) {
	cn.SetDeadline(time.Time{})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle[addr]) >= c.maxIdle {
		cn.Close()
		return
	}
	c.idle[addr] = append(c.idle[addr], cn)
}

// Close drops every idle connection.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, pool := range c.idle {
		for _, cn := range pool {
			cn.Close()
		}
	}
	c.idle = nil
}
