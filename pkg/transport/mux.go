// Package transport multiplexes every internal stream of a node (one Raft
// transport per partition, and node-to-node request forwarding) over a single
// TCP port. Each inbound connection starts with a header naming the service
// it is for and, for Raft, the node it is meant for; the mux reads it and
// hands the connection over, or refuses a connection meant for another node.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Kind is the service a connection is for.
type Kind byte

const (
	// KindRaft carries one partition's Raft RPCs.
	KindRaft Kind = 1
	// KindForward carries requests forwarded to a partition leader.
	KindForward Kind = 2
)

// A magic byte opens every header so that a stray client (an HTTP probe, a
// port scanner) is recognised and dropped at once. It also tells the two
// header forms apart:
//
//	headerMagic:          magic, kind, partition (big-endian uint16)
//	headerMagicRecipient: the same, then the recipient's node ID (a length
//	                      byte and the ID)
const (
	headerMagic          = 0x4B // 'K'
	headerMagicRecipient = 0x4E // 'N'
)

// headerFixed is the length of the part every header has.
const headerFixed = 4

// MaxNodeIDLen is the longest node ID a header can name.
const MaxNodeIDLen = 255

// Errors.
var (
	ErrBadHeader  = errors.New("transport: bad connection header")
	ErrClosed     = errors.New("transport: closed")
	ErrRegistered = errors.New("transport: service already registered")
)

// Header identifies a service on the mux and, optionally, the node a
// connection is meant for.
type Header struct {
	Kind      Kind
	Partition uint16
	// To is the node ID the dialer means to reach; empty: whichever node
	// listens at the address. A node refuses a connection meant for
	// another ID.
	To string
}

// service is h without its recipient: what a layer registers for.
func (h Header) service() Header { return Header{Kind: h.Kind, Partition: h.Partition} }

// Encode returns the wire form of h.
func (h Header) Encode() ([]byte, error) {
	if len(h.To) > MaxNodeIDLen {
		return nil, fmt.Errorf("%w: node ID of %d bytes, at most %d", ErrBadHeader, len(h.To), MaxNodeIDLen)
	}
	if h.To == "" {
		return []byte{headerMagic, byte(h.Kind), byte(h.Partition >> 8), byte(h.Partition)}, nil
	}
	b := []byte{headerMagicRecipient, byte(h.Kind), byte(h.Partition >> 8), byte(h.Partition), byte(len(h.To))}
	return append(b, h.To...), nil
}

// ReadHeader reads and validates a connection header.
func ReadHeader(r io.Reader) (Header, error) {
	var b [headerFixed]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if b[0] != headerMagic && b[0] != headerMagicRecipient {
		return Header{}, fmt.Errorf("%w: magic %#x", ErrBadHeader, b[0])
	}
	h := Header{Kind: Kind(b[1]), Partition: uint16(b[2])<<8 | uint16(b[3])}
	if h.Kind != KindRaft && h.Kind != KindForward {
		return Header{}, fmt.Errorf("%w: kind %d", ErrBadHeader, b[1])
	}
	if b[0] == headerMagicRecipient {
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return Header{}, fmt.Errorf("%w: recipient length: %w", ErrBadHeader, err)
		}
		if n[0] == 0 {
			return Header{}, fmt.Errorf("%w: empty recipient", ErrBadHeader)
		}
		to := make([]byte, n[0])
		if _, err := io.ReadFull(r, to); err != nil {
			return Header{}, fmt.Errorf("%w: recipient: %w", ErrBadHeader, err)
		}
		h.To = string(to)
	}
	return h, nil
}

// Mux accepts connections on one listener and routes them by header.
type Mux struct {
	ln            net.Listener
	advertise     net.Addr
	log           *slog.Logger
	headerTimeout time.Duration
	// serverTLS and clientTLS, when set, wrap every inbound and outbound
	// connection in (mutual) TLS before the header.
	serverTLS, clientTLS *tls.Config
	// self is this node's ID: connections meant for another are refused.
	self string

	mu       sync.Mutex
	services map[Header]*Layer
	closed   bool
	wg       sync.WaitGroup
	// conns are the live connections routed or dialed through the mux;
	// isolated cuts them all (a fault hook for tests and drills).
	conns    map[*trackedConn]struct{}
	isolated bool
	blocked  map[string]bool
	// misdirected is when each wrong recipient ID was last logged, so that
	// a peer retrying for ever logs once a minute, not per attempt.
	misdirected map[string]time.Time
}

// NewMux wraps ln. advertise is the address other nodes dial (nil: the
// listener's own address). Call Serve to start accepting.
func NewMux(ln net.Listener, advertise net.Addr, log *slog.Logger) *Mux {
	if advertise == nil {
		advertise = ln.Addr()
	}
	return &Mux{
		ln:            ln,
		advertise:     advertise,
		log:           log,
		headerTimeout: 5 * time.Second,
		services:      make(map[Header]*Layer),
		conns:         make(map[*trackedConn]struct{}),
		misdirected:   make(map[string]time.Time),
	}
}

// SetNodeID names this node: a connection whose header names another node
// is refused. Raft dials by address alone, so without this check a node that
// took over a dead member's address would answer that member's appends and
// votes with a log it never had. Call it before Serve.
func (m *Mux) SetNodeID(id string) { m.self = id }

// SetTLS makes every connection TLS: inbound ones are handshaken with
// server before their header is read, outbound ones with client before
// theirs is written. With mutual TLS configs a peer without a certificate
// the configs accept never reaches a service. Call it before Serve.
func (m *Mux) SetTLS(server, client *tls.Config) { m.serverTLS, m.clientTLS = server, client }

// Addr is the advertised address of the mux.
func (m *Mux) Addr() net.Addr { return m.advertise }

// Serve accepts connections until Close. It returns nil after Close.
func (m *Mux) Serve() error {
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			m.mu.Lock()
			closed := m.closed
			m.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("transport: accept: %w", err)
		}
		// Add under the lock that Close takes to set closed, so that Add
		// never races with Close's Wait.
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			conn.Close()
			return nil
		}
		m.wg.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			m.route(conn)
		}()
	}
}

// route reads the header off a fresh connection and hands it over, so a
// slow or silent peer only holds up its own goroutine, never Accept.
func (m *Mux) route(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(m.headerTimeout))
	if m.serverTLS != nil {
		tc := tls.Server(conn, m.serverTLS)
		if err := tc.Handshake(); err != nil {
			m.log.Warn("refused a connection on the internal port: TLS handshake failed", "remote", conn.RemoteAddr(), "err", err)
			conn.Close()
			return
		}
		conn = tc
	}
	h, err := ReadHeader(conn)
	if err != nil {
		m.log.Debug("dropping connection", "remote", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	if h.To != "" && m.self != "" && h.To != m.self {
		m.refuseMisdirected(conn, h)
		return
	}
	m.mu.Lock()
	l := m.services[h.service()]
	isolated := m.isolated
	m.mu.Unlock()
	if isolated {
		conn.Close()
		return
	}
	if l == nil {
		m.log.Debug("dropping connection for unknown service", "remote", conn.RemoteAddr(), "kind", h.Kind, "partition", h.Partition)
		conn.Close()
		return
	}
	tc, err := m.track(conn, "")
	if err != nil {
		conn.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.done:
		tc.Close()
	}
}

// refuseMisdirected closes a connection meant for another node: a peer
// still lists that node at this node's address (this node replaced it
// there, or the peer's configuration is stale).
func (m *Mux) refuseMisdirected(conn net.Conn, h Header) {
	conn.Close()
	now := time.Now()
	m.mu.Lock()
	last, seen := m.misdirected[h.To]
	quiet := seen && now.Sub(last) < time.Minute
	if !quiet {
		m.misdirected[h.To] = now
	}
	m.mu.Unlock()
	if !quiet {
		m.log.Warn("refused connections meant for another node: a peer lists that node at this node's address (it is this node's predecessor there, or the peer's view is stale)",
			"remote", conn.RemoteAddr(), "meant_for", h.To, "kind", h.Kind, "partition", h.Partition)
	}
}

// ErrIsolated is what dialing returns while the node is isolated or the
// peer is blocked.
var ErrIsolated = errors.New("transport: node is isolated")

// trackedConn removes itself from the mux's set when closed.
type trackedConn struct {
	net.Conn
	m *Mux
	// target is the address dialed, empty for inbound connections.
	target string
	once   sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.conns, c)
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}

func (m *Mux) track(conn net.Conn, target string) (*trackedConn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isolated || m.blocked[target] {
		return nil, ErrIsolated
	}
	tc := &trackedConn{Conn: conn, m: m, target: target}
	m.conns[tc] = struct{}{}
	return tc, nil
}

// SetBlocked cuts this node's connections to the given peers (their
// internal addresses) and refuses new ones; nil unblocks everyone. Only the
// connections this node dialed are affected: a partition between two nodes
// is made by blocking each from the other, which cuts the connections of
// both directions, and leaves every other pair alone (so majority/minority
// splits and bridges can be built). A fault hook for tests.
func (m *Mux) SetBlocked(peers []string) {
	m.mu.Lock()
	m.blocked = make(map[string]bool, len(peers))
	for _, p := range peers {
		m.blocked[p] = true
	}
	var cut []*trackedConn
	for c := range m.conns {
		if c.target != "" && m.blocked[c.target] {
			cut = append(cut, c)
		}
	}
	m.mu.Unlock()
	for _, c := range cut {
		c.Close()
	}
}

// SetIsolated cuts the node off from every other node, or reconnects it:
// while isolated, every connection the mux routed or dialed is closed,
// inbound connections are dropped and dials fail. It is a fault hook for
// tests and failure drills; gossip is not affected.
func (m *Mux) SetIsolated(on bool) {
	m.mu.Lock()
	m.isolated = on
	var cut []*trackedConn
	if on {
		for c := range m.conns {
			cut = append(cut, c)
		}
	}
	m.mu.Unlock()
	for _, c := range cut {
		c.Close()
	}
}

// Dial connects to service h on the node at addr, through this mux so that
// isolation applies to it.
func (m *Mux) Dial(ctx context.Context, addr string, h Header) (net.Conn, error) {
	m.mu.Lock()
	refused := m.isolated || m.blocked[addr]
	m.mu.Unlock()
	if refused {
		return nil, fmt.Errorf("%w: dial %s", ErrIsolated, addr)
	}
	conn, err := DialServiceTLS(ctx, addr, h, m.clientTLS)
	if err != nil {
		return nil, err
	}
	tc, err := m.track(conn, addr)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// Register creates the listener for a service.
func (m *Mux) Register(h Header) (*Layer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	h = h.service()
	if _, ok := m.services[h]; ok {
		return nil, fmt.Errorf("%w: kind %d partition %d", ErrRegistered, h.Kind, h.Partition)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Layer{
		mux:    m,
		header: h,
		conns:  make(chan net.Conn, 16),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
	m.services[h] = l
	return l, nil
}

func (m *Mux) unregister(l *Layer) {
	m.mu.Lock()
	if m.services[l.header] == l {
		delete(m.services, l.header)
	}
	m.mu.Unlock()
}

// Close stops accepting and closes the listener. Registered layers stay open
// until closed themselves; connections already handed over are theirs.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	err := m.ln.Close()
	m.wg.Wait()
	return err
}

// Layer is one service's view of the mux: a net.Listener for inbound
// connections and a dialer that writes the service header on outbound ones.
// It implements raft.StreamLayer.
type Layer struct {
	mux    *Mux
	header Header
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	// ctx ends with Close, cancelling dials in progress: a peer that
	// vanished can make a dial hang until its timeout, and shutdown would
	// wait for it.
	ctx    context.Context
	cancel context.CancelFunc
}

// Accept waits for the next inbound connection for this service.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

// Close stops the layer; Accept returns ErrClosed afterwards.
func (l *Layer) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.cancel()
		l.mux.unregister(l)
		// Connections routed but never accepted would leak.
		for {
			select {
			case c := <-l.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// Addr is the mux's advertised address.
func (l *Layer) Addr() net.Addr { return l.mux.advertise }

// Dial connects to the same service on another node. An address made by
// recipientAddress also names the node meant.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(l.ctx, timeout)
	defer cancel()
	h := l.header
	to, addr := splitRecipient(address)
	h.To = to
	return l.mux.Dial(ctx, addr, h)
}

// DialService connects to addr and announces service h; ctx bounds both.
func DialService(ctx context.Context, addr string, h Header) (net.Conn, error) {
	return DialServiceTLS(ctx, addr, h, nil)
}

// DialServiceTLS is DialService over TLS with cfg (plain TCP when nil).
func DialServiceTLS(ctx context.Context, addr string, h Header, cfg *tls.Config) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	if cfg != nil {
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("transport: TLS handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	hdr, err := h.Encode()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(deadline)
	}
	if _, err := conn.Write(hdr); err != nil {
		conn.Close()
		return nil, fmt.Errorf("transport: write header to %s: %w", addr, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}
