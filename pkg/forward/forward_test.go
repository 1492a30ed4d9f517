package forward

import (
	"context"
	"errors"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
	"github.com/kahuna-go/kahuna/pkg/transport"
)

// fakeExec answers forwarded requests from a script.
type fakeExec struct {
	mu       sync.Mutex
	got      []router.Request
	res      fsm.Result
	err      error
	infos    []fsm.Info
	block    bool // block until ctx is done
	canceled chan struct{}
	// run, when set, answers instead of the fields above.
	run func(ctx context.Context, req router.Request) (fsm.Result, error)
}

func (f *fakeExec) ExecuteHere(ctx context.Context, req router.Request) (fsm.Result, error) {
	f.mu.Lock()
	f.got = append(f.got, req)
	block := f.block
	f.mu.Unlock()
	if f.run != nil {
		return f.run(ctx, req)
	}
	if block {
		<-ctx.Done()
		close(f.canceled)
		return fsm.Result{}, ctx.Err()
	}
	return f.res, f.err
}

func (f *fakeExec) ListHere(ctx context.Context, p int, d partition.Durability, prefix, after string, limit int) ([]fsm.Info, error) {
	return f.infos, f.err
}

// serve runs a forwarding server on a mux and returns a client dialing it.
func serve(t *testing.T, exec Executor) (*Client, string, *transport.Mux) {
	cl, addr, mux, _ := serveCounting(t, exec)
	return cl, addr, mux
}

// serveCounting is serve that also counts the client's dials.
func serveCounting(t *testing.T, exec Executor) (*Client, string, *transport.Mux, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := transport.NewMux(ln, nil, logging.Discard())
	go mux.Serve()
	layer, err := mux.Register(transport.Header{Kind: transport.KindForward})
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer("leader-1", layer, exec, logging.Discard())
	go srv.Serve()
	dials := new(atomic.Int32)
	cl := NewClient(func(ctx context.Context, addr string, h transport.Header) (net.Conn, error) {
		dials.Add(1)
		return transport.DialService(ctx, addr, h)
	})
	t.Cleanup(func() { cl.Close(); srv.Close(); mux.Close() })
	return cl, ln.Addr().String(), mux, dials
}

func TestForwardRoundTrip(t *testing.T) {
	exec := &fakeExec{res: fsm.Result{Outcome: fsm.Locked, Token: 42, Owner: "ü", AcquiredAt: -1, ExpiresAt: 1 << 50, ExpiresIn: 9, Fresh: true}}
	cl, addr, _, dials := serveCounting(t, exec)
	req := router.Request{Op: router.TryLock, Resource: "res/ü", Owner: "o", TTL: 1500 * time.Millisecond, Durability: partition.Ephemeral, Wait: 0}
	for range 3 { // the second and third reuse the connection
		resp, err := cl.Forward(context.Background(), "leader-1", addr, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ServedFrom != "leader-1" || resp.Result != exec.res {
			t.Fatalf("resp %+v", resp)
		}
	}
	if got := exec.got[0]; !reflect.DeepEqual(got, req) {
		t.Fatalf("leader got %+v, want %+v", got, req)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d connections dialed, want one reused", n)
	}

	exec.infos = []fsm.Info{{Resource: "a", Owner: "x", Token: 1, AcquiredAt: 5, ExpiresAt: 6, ExpiresIn: 7}, {Resource: "b"}}
	infos, err := cl.List(context.Background(), "leader-1", addr, 3, partition.Persistent, "p", "a", 10)
	if err != nil || !reflect.DeepEqual(infos, exec.infos) {
		t.Fatalf("list %+v %v", infos, err)
	}
}

// TestRemoteErrorsKeepTheirKind checks that a leader's error arrives as the
// same sentinel, so the router treats it the same as a local one.
func TestRemoteErrorsKeepTheirKind(t *testing.T) {
	exec := &fakeExec{}
	cl, addr, _ := serve(t, exec)
	for _, want := range []error{partition.ErrNotLeader, partition.ErrUnknownOutcome, partition.ErrTryAgain, partition.ErrInvalid, partition.ErrClosed, router.ErrNoLeader} {
		exec.err = want
		resp, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.GetInfo, Resource: "r"})
		if !errors.Is(err, want) || resp.ServedFrom != "leader-1" {
			t.Fatalf("sent %v, got %v from %q", want, err, resp.ServedFrom)
		}
	}
	exec.err = errors.New("disk on fire")
	if _, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.GetInfo, Resource: "r"}); err == nil || errors.Is(err, partition.ErrNotLeader) {
		t.Fatalf("plain error: %v", err)
	}
}

// TestCallerHangUpReachesTheLeader cancels a forwarded waiting try-lock and
// checks the leader's handler sees its context cancelled.
func TestCallerHangUpReachesTheLeader(t *testing.T) {
	exec := &fakeExec{block: true, canceled: make(chan struct{})}
	cl, addr, _ := serve(t, exec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := cl.Forward(ctx, "leader-1", addr, router.Request{Op: router.TryLock, Resource: "r", Owner: "o", TTL: time.Second, Wait: time.Minute})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller got %v", err)
	}
	select {
	case <-exec.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the leader kept waiting after the caller hung up")
	}
}

// TestClosedConnectionIsReplaced closes the server side between two
// requests, as a restarting peer would: the connection's reader notices,
// and the next request goes out on a fresh connection instead of failing.
func TestClosedConnectionIsReplaced(t *testing.T) {
	exec := &fakeExec{res: fsm.Result{Outcome: fsm.Got}}
	cl, addr, mux := serve(t, exec)
	if _, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.GetInfo, Resource: "r"}); err != nil {
		t.Fatal(err)
	}
	mux.SetIsolated(true) // closes the server end of the connection
	mux.SetIsolated(false)
	time.Sleep(50 * time.Millisecond)
	resp, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.GetInfo, Resource: "r"})
	if err != nil || resp.Result.Outcome != fsm.Got {
		t.Fatalf("after the connection was closed: %+v %v", resp, err)
	}
}

func TestUnreachableLeaderIsNotLeader(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cl := NewClient(func(ctx context.Context, addr string, h transport.Header) (net.Conn, error) {
		return transport.DialService(ctx, addr, h)
	})
	defer cl.Close()
	// Nothing was sent, so the router may look for another leader.
	if _, err := cl.Forward(context.Background(), "gone", addr, router.Request{Op: router.GetInfo, Resource: "r"}); !errors.Is(err, partition.ErrNotLeader) {
		t.Fatalf("err %v", err)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	reqs := []request{
		{kind: kindLock, lock: router.Request{Op: router.Extend, Resource: "r", Owner: "o", TTL: time.Hour, Durability: partition.Persistent, Wait: time.Second}},
		{kind: kindList, partition: 7, list: listArgs{durability: partition.Ephemeral, prefix: "p/", after: "p/x", limit: 1001}},
	}
	for _, r := range reqs {
		enc := appendRequest(nil, &r)
		got, err := decodeRequest(enc)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("request %+v: got %+v %v", r, got, err)
		}
		for cut := range len(enc) {
			if _, err := decodeRequest(enc[:cut]); !errors.Is(err, ErrProtocol) {
				t.Fatalf("truncated request at %d: %v", cut, err)
			}
		}
	}
	resp := response{code: codeOK, servedFrom: "n", infos: []fsm.Info{{Resource: "a", Token: 3}}}
	got, err := decodeResponse(kindList, appendResponse(nil, kindList, &resp))
	if err != nil || !reflect.DeepEqual(got, resp) {
		t.Fatalf("response: %+v %v", got, err)
	}
	bad := response{code: codeTryAgain, message: "later", servedFrom: "n"}
	got, err = decodeResponse(kindLock, appendResponse(nil, kindLock, &bad))
	if err != nil || !errors.Is(got.remoteError(), partition.ErrTryAgain) {
		t.Fatalf("error response: %+v %v", got, err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(appendRequest(nil, &request{kind: kindLock, lock: router.Request{Op: router.TryLock, Resource: "r", Owner: "o", TTL: time.Second}}))
	f.Add(appendRequest(nil, &request{kind: kindList, partition: 1, list: listArgs{limit: 5}}))
	f.Add([]byte{version, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeRequest(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		again, err := decodeRequest(appendRequest(nil, &req))
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip of %x: %+v vs %+v (%v)", data, again, req, err)
		}
	})
}
