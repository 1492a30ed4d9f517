package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
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
	la := register(t, a, Header{KindRaft, 7})
	lb7 := register(t, b, Header{KindRaft, 7})
	lb8 := register(t, b, Header{KindRaft, 8})
	fwd := register(t, b, Header{KindForward, 7})

	for _, tc := range []struct {
		from *Layer
		to   *Layer
		h    Header
	}{
		{la, lb7, Header{KindRaft, 7}},
		{nil, lb8, Header{KindRaft, 8}},
		{nil, fwd, Header{KindForward, 7}},
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
	l := register(t, m, Header{KindRaft, 1})
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
	l := register(t, m, Header{KindRaft, 3})
	if _, err := m.Register(Header{KindRaft, 3}); !errors.Is(err, ErrRegistered) {
		t.Fatalf("second register: %v", err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	// The header is free again once the layer is closed.
	register(t, m, Header{KindRaft, 3})
}

func TestReadHeader(t *testing.T) {
	h := Header{KindForward, 513}
	enc := h.Encode()
	got, err := ReadHeader(bytes.NewReader(enc[:]))
	if err != nil || got != h {
		t.Fatalf("got %+v %v", got, err)
	}
	for _, bad := range [][]byte{{}, {headerMagic}, {0, 1, 0, 0}, {headerMagic, 0, 0, 0}, {headerMagic, 3, 0, 0}} {
		if _, err := ReadHeader(bytes.NewReader(bad)); !errors.Is(err, ErrBadHeader) {
			t.Fatalf("%v: %v", bad, err)
		}
	}
}

func FuzzReadHeader(f *testing.F) {
	for _, seed := range [][]byte{{headerMagic, 1, 0, 0}, {headerMagic, 2, 1, 0}, {0}, {}} {
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
		if enc := h.Encode(); !bytes.Equal(enc[:], data[:HeaderSize]) {
			t.Fatalf("re-encoding %+v gives %v, read from %v", h, enc, data[:HeaderSize])
		}
	})
}

func TestIsolation(t *testing.T) {
	a, b := newMux(t), newMux(t)
	la := register(t, a, Header{KindRaft, 1})
	lb := register(t, b, Header{KindRaft, 1})
	ctx := context.Background()

	// A connection from b to a, and one from a to b, both established.
	in, err := b.Dial(ctx, a.Addr().String(), Header{KindRaft, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	accepted, err := la.Accept()
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Dial(ctx, b.Addr().String(), Header{KindRaft, 1})
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
	if _, err := a.Dial(ctx, b.Addr().String(), Header{KindRaft, 1}); !errors.Is(err, ErrIsolated) {
		t.Fatalf("dial while isolated: %v", err)
	}
	c, err := DialService(ctx, a.Addr().String(), Header{KindRaft, 1})
	if err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(t, c) {
		t.Fatal("an isolated node accepted a connection")
	}
	c.Close()

	a.SetIsolated(false)
	c, err = a.Dial(ctx, b.Addr().String(), Header{KindRaft, 1})
	if err != nil {
		t.Fatalf("dial after healing: %v", err)
	}
	c.Close()
}

// TestBlockedPeers partitions a from b while both still reach c.
func TestBlockedPeers(t *testing.T) {
	a, b, c := newMux(t), newMux(t), newMux(t)
	h := Header{KindRaft, 1}
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
