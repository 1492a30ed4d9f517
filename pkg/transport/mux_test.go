package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/logging"
)

func newMux(t *testing.T) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln, nil, logging.Discard())
	m.headerTimeout = 200 * time.Millisecond
	go m.Serve()
	t.Cleanup(func() { m.Close() })
	return m
}

func register(t *testing.T, m *Mux, h Header) *Layer {
	t.Helper()
	l, err := m.Register(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestRoutesByHeader(t *testing.T) {
	a, b := newMux(t), newMux(t)
	var _ raft.StreamLayer = (*Layer)(nil)
	la := register(t, a, Header{Kind: KindRaft, Partition: 7})
	lb7 := register(t, b, Header{Kind: KindRaft, Partition: 7})
	lb8 := register(t, b, Header{Kind: KindRaft, Partition: 8})
	fwd := register(t, b, Header{Kind: KindForward, Partition: 7})

	for _, tc := range []struct {
		from *Layer
		to   *Layer
		h    Header
	}{
		{la, lb7, Header{Kind: KindRaft, Partition: 7}},
		{nil, lb8, Header{Kind: KindRaft, Partition: 8}},
		{nil, fwd, Header{Kind: KindForward, Partition: 7}},
	} {
		var c net.Conn
		var err error
		if tc.from != nil {
			c, err = tc.from.Dial(raft.ServerAddress(b.Addr().String()), time.Second)
		} else {
			c, err = DialService(context.Background(), b.Addr().String(), tc.h)
		}
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("hello " + string(rune('a'+tc.h.Partition)))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		in, err := tc.to.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(in, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("service %+v got %q err %v", tc.h, got, err)
		}
		// And back.
		in.Write([]byte("ok"))
		reply := make([]byte, 2)
		if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "ok" {
			t.Fatalf("reply %q %v", reply, err)
		}
		c.Close()
		in.Close()
	}
}

// closedByPeer reports whether the server closed c without sending anything.
func closedByPeer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func TestDropsBadConnections(t *testing.T) {
	m := newMux(t)
	l := register(t, m, Header{Kind: KindRaft, Partition: 1})
	addr := m.Addr().String()
	cases := map[string][]byte{
		"http probe":      []byte("GET / HTTP/1.1\r\n\r\n"),
		"unknown kind":    {headerMagic, 9, 0, 1},
		"unknown service": {headerMagic, byte(KindRaft), 0, 2},
		"short header":    {headerMagic, byte(KindRaft)},
		"silent":          nil,
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if payload != nil {
				c.Write(payload)
			}
			if !closedByPeer(t, c) {
				t.Fatal("connection left open")
			}
		})
	}
	// The registered service never saw any of them.
	select {
	case c := <-l.conns:
		t.Fatalf("bad connection reached the service: %v", c.RemoteAddr())
	default:
	}
}

func TestRegisterTwiceAndClose(t *testing.T) {
	m := newMux(t)
	l := register(t, m, Header{Kind: KindRaft, Partition: 3})
	if _, err := m.Register(Header{Kind: KindRaft, Partition: 3}); !errors.Is(err, ErrRegistered) {
		t.Fatalf("second register: %v", err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	// The header is free again once the layer is closed.
	register(t, m, Header{Kind: KindRaft, Partition: 3})
}

func TestReadHeader(t *testing.T) {
	for _, h := range []Header{
		{Kind: KindForward, Partition: 513},
		{Kind: KindRaft, Partition: 7, To: "n2"},
		{Kind: KindRaft, Partition: 0, To: strings.Repeat("x", MaxNodeIDLen)},
	} {
		enc, err := h.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadHeader(bytes.NewReader(enc))
		if err != nil || got != h {
			t.Fatalf("%+v read back as %+v %v", h, got, err)
		}
	}
	if _, err := (Header{Kind: KindRaft, To: strings.Repeat("x", MaxNodeIDLen+1)}).Encode(); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("a node ID too long for the header: %v", err)
	}
	for _, bad := range [][]byte{
		{}, {headerMagic}, {0, 1, 0, 0}, {headerMagic, 0, 0, 0}, {headerMagic, 3, 0, 0},
		{headerMagicRecipient, 1, 0, 0},         // no length
		{headerMagicRecipient, 1, 0, 0, 0},      // empty recipient
		{headerMagicRecipient, 1, 0, 0, 3, 'n'}, // short recipient
		{headerMagicRecipient, 9, 0, 0, 1, 'n'}, // unknown kind
	} {
		if _, err := ReadHeader(bytes.NewReader(bad)); !errors.Is(err, ErrBadHeader) {
			t.Fatalf("%v: %v", bad, err)
		}
	}
}

func FuzzReadHeader(f *testing.F) {
	for _, seed := range [][]byte{{headerMagic, 1, 0, 0}, {headerMagic, 2, 1, 0}, {headerMagicRecipient, 1, 0, 3, 2, 'n', '1'}, {0}, {}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHeader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("unexpected error type %v", err)
			}
			return
		}
		enc, err := h.Encode()
		if err != nil || !bytes.Equal(enc, data[:len(enc)]) {
			t.Fatalf("re-encoding %+v gives %v %v, read from %v", h, enc, err, data)
		}
	})
}

// TestRefusesConnectionsForAnotherNode: a connection whose header names
// another node is closed before any service sees it; one naming this node,
// or no one, is routed.
func TestRefusesConnectionsForAnotherNode(t *testing.T) {
	a, b := newMux(t), newMux(t)
	b.SetNodeID("n2")
	h := Header{Kind: KindRaft, Partition: 1}
	la := register(t, a, h)
	lb := register(t, b, h)
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := lb.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for _, tc := range []struct {
		to     raft.ServerID
		routed bool
	}{
		{"n3", false},
		{"n2", true},
		{"", true},
	} {
		c, err := la.Dial(recipientAddress(tc.to, raft.ServerAddress(b.Addr().String())), time.Second)
		if err != nil {
			t.Fatalf("dial meant for %q: %v", tc.to, err)
		}
		if tc.routed {
			select {
			case in := <-accepted:
				in.Close()
			case <-time.After(2 * time.Second):
				t.Fatalf("a connection meant for %q was not routed to n2's service", tc.to)
			}
		} else {
			if !closedByPeer(t, c) {
				t.Fatalf("a connection meant for %q was kept open by n2", tc.to)
			}
			select {
			case <-accepted:
				t.Fatalf("a connection meant for %q reached n2's service", tc.to)
			default:
			}
		}
		c.Close()
	}
}

func TestRecipientAddress(t *testing.T) {
	for _, tc := range []struct {
		id       raft.ServerID
		addr     raft.ServerAddress
		wantID   string
		wantAddr string
	}{
		{"n1", "10.0.0.1:7946", "n1", "10.0.0.1:7946"},
		{"", "10.0.0.1:7946", "", "10.0.0.1:7946"},
		{"a@b", "[::1]:7946", "a@b", "[::1]:7946"},
	} {
		id, addr := splitRecipient(recipientAddress(tc.id, tc.addr))
		if id != tc.wantID || addr != tc.wantAddr {
			t.Fatalf("%q at %q came back as %q at %q", tc.id, tc.addr, id, addr)
		}
	}
}

func TestIsolation(t *testing.T) {
	a, b := newMux(t), newMux(t)
	la := register(t, a, Header{Kind: KindRaft, Partition: 1})
	lb := register(t, b, Header{Kind: KindRaft, Partition: 1})
	ctx := context.Background()

	// A connection from b to a, and one from a to b, both established.
	in, err := b.Dial(ctx, a.Addr().String(), Header{Kind: KindRaft, Partition: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	accepted, err := la.Accept()
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Dial(ctx, b.Addr().String(), Header{Kind: KindRaft, Partition: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Accept(); err != nil {
		t.Fatal(err)
	}

	a.SetIsolated(true)
	if _, err := out.Write([]byte("x")); err == nil {
		t.Fatal("a's outbound connection survived isolation")
	}
	if _, err := accepted.Read(make([]byte, 1)); err == nil {
		t.Fatal("a's inbound connection survived isolation")
	}
	if _, err := a.Dial(ctx, b.Addr().String(), Header{Kind: KindRaft, Partition: 1}); !errors.Is(err, ErrIsolated) {
		t.Fatalf("dial while isolated: %v", err)
	}
	c, err := DialService(ctx, a.Addr().String(), Header{Kind: KindRaft, Partition: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(t, c) {
		t.Fatal("an isolated node accepted a connection")
	}
	c.Close()

	a.SetIsolated(false)
	c, err = a.Dial(ctx, b.Addr().String(), Header{Kind: KindRaft, Partition: 1})
	if err != nil {
		t.Fatalf("dial after healing: %v", err)
	}
	c.Close()
}

// TestBlockedPeers partitions a from b while both still reach c.
func TestBlockedPeers(t *testing.T) {
	a, b, c := newMux(t), newMux(t), newMux(t)
	h := Header{Kind: KindRaft, Partition: 1}
	la, lb, lc := register(t, a, h), register(t, b, h), register(t, c, h)
	ctx := context.Background()
	ab, err := a.Dial(ctx, b.Addr().String(), h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Accept(); err != nil {
		t.Fatal(err)
	}
	ba, err := b.Dial(ctx, a.Addr().String(), h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := la.Accept(); err != nil {
		t.Fatal(err)
	}
	a.SetBlocked([]string{b.Addr().String()})
	b.SetBlocked([]string{a.Addr().String()})
	for name, conn := range map[string]net.Conn{"a→b": ab, "b→a": ba} {
		if _, err := conn.Write([]byte("x")); err == nil {
			t.Fatalf("%s survived the partition", name)
		}
	}
	if _, err := a.Dial(ctx, b.Addr().String(), h); !errors.Is(err, ErrIsolated) {
		t.Fatalf("a dials b across the partition: %v", err)
	}
	// Both still reach c.
	for _, m := range []*Mux{a, b} {
		conn, err := m.Dial(ctx, c.Addr().String(), h)
		if err != nil {
			t.Fatalf("dial c: %v", err)
		}
		if _, err := lc.Accept(); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	a.SetBlocked(nil)
	b.SetBlocked(nil)
	conn, err := a.Dial(ctx, b.Addr().String(), h)
	if err != nil {
		t.Fatalf("after healing: %v", err)
	}
	conn.Close()
}
