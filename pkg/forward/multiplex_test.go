package forward

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
	"github.com/kahuna-go/kahuna/pkg/transport"
)

// TestConcurrentRequestsShareOneConnection runs many requests at once, each
// answered after a different delay, and checks that every caller gets its
// own answer over a single connection.
func TestConcurrentRequestsShareOneConnection(t *testing.T) {
	exec := &fakeExec{run: func(ctx context.Context, req router.Request) (fsm.Result, error) {
		var n int
		fmt.Sscanf(req.Resource, "r%d", &n)
		time.Sleep(time.Duration(n%7) * time.Millisecond) // finish out of order
		if n%5 == 0 {
			return fsm.Result{}, fmt.Errorf("%w: %s", partition.ErrTryAgain, req.Resource)
		}
		return fsm.Result{Outcome: fsm.Locked, Owner: req.Resource, Token: uint64(n)}, nil
	}}
	cl, addr, _, dials := serveCounting(t, exec)
	// One request first, so that the rest find the connection open.
	if _, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.TryLock, Resource: "r1"}); err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := fmt.Sprintf("r%d", i)
			resp, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.TryLock, Resource: res, Owner: "o", TTL: time.Second})
			switch {
			case i%5 == 0:
				if !errors.Is(err, partition.ErrTryAgain) || !strings.Contains(err.Error(), res) {
					errs <- fmt.Errorf("%s: got %v, want its own try-again", res, err)
				}
			case err != nil:
				errs <- fmt.Errorf("%s: %w", res, err)
			case resp.Result.Owner != res || resp.Result.Token != uint64(i):
				errs <- fmt.Errorf("%s: got the answer of %s (token %d)", res, resp.Result.Owner, resp.Result.Token)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("%d connections dialed, want 1", d)
	}
}

// TestCancelStopsOnlyItsRequest cancels one waiting try-lock while another
// request on the same connection is running: the leader stops the first and
// still answers the second.
func TestCancelStopsOnlyItsRequest(t *testing.T) {
	stopped := make(chan string, 2)
	release := make(chan struct{})
	exec := &fakeExec{run: func(ctx context.Context, req router.Request) (fsm.Result, error) {
		if req.Wait == 0 {
			return fsm.Result{Outcome: fsm.Got, Owner: req.Resource}, nil
		}
		select {
		case <-ctx.Done():
			stopped <- req.Resource
			return fsm.Result{}, ctx.Err()
		case <-release:
			return fsm.Result{Outcome: fsm.Locked, Owner: req.Resource}, nil
		}
	}}
	cl, addr, _, dials := serveCounting(t, exec)

	waitReq := func(res string) router.Request {
		return router.Request{Op: router.TryLock, Resource: res, Owner: "o", TTL: time.Second, Wait: time.Minute}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() {
		_, err := cl.Forward(ctx, "leader-1", addr, waitReq("a"))
		cancelled <- err
	}()
	kept := make(chan router.Response, 1)
	go func() {
		resp, err := cl.Forward(context.Background(), "leader-1", addr, waitReq("b"))
		if err != nil {
			t.Error(err)
		}
		kept <- resp
	}()
	waitFor(t, func() bool { return len(exec.requests()) == 2 })

	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v", err)
	}
	select {
	case res := <-stopped:
		if res != "a" {
			t.Fatalf("the leader stopped %q, want a", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the leader kept waiting after the caller gave up")
	}
	// The connection and the other waiting request are unharmed.
	resp, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.GetInfo, Resource: "c"})
	if err != nil || resp.Result.Owner != "c" {
		t.Fatalf("request after the cancel: %+v %v", resp, err)
	}
	close(release)
	if resp := <-kept; resp.Result.Outcome != fsm.Locked || resp.Result.Owner != "b" {
		t.Fatalf("the other waiter got %+v", resp)
	}
	select {
	case res := <-stopped:
		t.Fatalf("%q was stopped too", res)
	default:
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("%d connections dialed, want 1", d)
	}
}

// TestBrokenConnectionFailsEveryRequestInFlight cuts the connection while
// requests wait on the leader: each gets an unknown outcome (it may have
// run), and the next request dials a new connection.
func TestBrokenConnectionFailsEveryRequestInFlight(t *testing.T) {
	hold := make(chan struct{})
	exec := &fakeExec{run: func(ctx context.Context, req router.Request) (fsm.Result, error) {
		if req.Resource == "held" {
			<-hold
		}
		return fsm.Result{Outcome: fsm.Got}, nil
	}}
	defer close(hold)
	cl, addr, mux, dials := serveCounting(t, exec)
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.GetInfo, Resource: "held"})
			errs <- err
		}()
	}
	waitFor(t, func() bool { return len(exec.requests()) == n })
	mux.SetIsolated(true) // closes the server end
	mux.SetIsolated(false)
	for range n {
		select {
		case err := <-errs:
			if !errors.Is(err, partition.ErrUnknownOutcome) {
				t.Fatalf("in-flight request got %v, want an unknown outcome", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("an in-flight request was not failed with its connection")
		}
	}
	resp, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.GetInfo, Resource: "r"})
	if err != nil || resp.Result.Outcome != fsm.Got {
		t.Fatalf("after the connection broke: %+v %v", resp, err)
	}
	if d := dials.Load(); d != 2 {
		t.Fatalf("%d connections dialed, want 2", d)
	}
}

// TestSilentLeaderIsGivenUp dials a peer that reads requests and never
// answers, as a frozen or cut-off node would: the request fails with an
// unknown outcome once its deadline passes, and the connection is dropped.
func TestSilentLeaderIsGivenUp(t *testing.T) {
	var mu sync.Mutex
	var peers []net.Conn
	dials := 0
	cl := NewClient(func(ctx context.Context, addr string, h transport.Header) (net.Conn, error) {
		ours, theirs := net.Pipe()
		go io.Copy(io.Discard, theirs)
		mu.Lock()
		defer mu.Unlock()
		dials++
		peers = append(peers, theirs)
		return ours, nil
	})
	cl.slack = 200 * time.Millisecond
	defer func() {
		cl.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range peers {
			p.Close()
		}
	}()
	for i := range 2 {
		start := time.Now()
		_, err := cl.Forward(context.Background(), "silent", "silent:1", router.Request{Op: router.GetInfo, Resource: "r"})
		if !errors.Is(err, partition.ErrUnknownOutcome) {
			t.Fatalf("request %d: %v, want an unknown outcome", i, err)
		}
		if took := time.Since(start); took < cl.slack || took > 10*cl.slack {
			t.Fatalf("request %d gave up after %v with a slack of %v", i, took, cl.slack)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if dials != 2 {
		t.Fatalf("%d dials, want a fresh connection after the silent one was dropped", dials)
	}
}

// TestServerDropsAnOldOrBrokenClient sends frames the server cannot read:
// it closes the connection instead of guessing.
func TestServerDropsAnOldOrBrokenClient(t *testing.T) {
	exec := &fakeExec{res: fsm.Result{Outcome: fsm.Got}}
	_, addr, _ := serve(t, exec)
	for name, payload := range map[string][]byte{
		"version 1":    {1, kindLock, byte(router.GetInfo), 0, 0, 0, 1, 'r', 0},
		"unknown kind": {version, 9, 1},
		"truncated":    appendRequest(nil, &request{kind: kindLock, id: 1, lock: router.Request{Resource: "r"}})[:6],
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := transport.DialService(context.Background(), addr, transport.Header{Kind: transport.KindForward})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			frame := appendFrame(nil, func(b []byte) []byte { return append(b, payload...) })
			if _, err := conn.Write(frame); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Read(make([]byte, 64))
			if !errors.Is(err, io.EOF) {
				t.Fatalf("server answered %d bytes (%v), want the connection closed", n, err)
			}
		})
	}
	if got := exec.requests(); len(got) != 0 {
		t.Fatalf("the leader ran %+v", got)
	}
}

func (f *fakeExec) requests() []router.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]router.Request(nil), f.got...)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLeaderDyingAfterTheRequestIsNotRetried has the leader run a request
// and lose its connection before answering, as a leader killed right after
// committing would. The request must come back with an unknown outcome and
// must not run a second time: a second unlock, say, would find the lock
// already taken by someone else and answer InvalidOwner for an unlock that
// did release it.
func TestLeaderDyingAfterTheRequestIsNotRetried(t *testing.T) {
	var runs atomic.Int32
	var mux *transport.Mux
	exec := &fakeExec{run: func(ctx context.Context, req router.Request) (fsm.Result, error) {
		if req.Resource == "dies" && runs.Add(1) == 1 {
			mux.SetIsolated(true) // every connection of the leader drops
			mux.SetIsolated(false)
		}
		return fsm.Result{Outcome: fsm.Unlocked}, nil
	}}
	cl, addr, m := serve(t, exec)
	mux = m
	// A first request leaves a connection to reuse.
	if _, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.Unlock, Resource: "warm-up", Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	_, err := cl.Forward(context.Background(), "leader-1", addr, router.Request{Op: router.Unlock, Resource: "dies", Owner: "o"})
	if !errors.Is(err, partition.ErrUnknownOutcome) {
		t.Fatalf("got %v, want an unknown outcome", err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the leader ran the request %d times", n)
	}
}

// failingWriter fails every write, as a reset connection does.
type failingWriter struct{ writes int }

func (w *failingWriter) Write(p []byte) (int, error) {
	w.writes++
	return 0, errors.New("connection reset")
}

// TestFrameWriterRefusesAfterAFailedWrite: a frame handed to a write that
// failed may have reached the peer (the caller must call its outcome
// unknown), but once a write has failed nothing more is written, and later
// frames are refused as never sent (safe to send elsewhere).
func TestFrameWriterRefusesAfterAFailedWrite(t *testing.T) {
	w := &failingWriter{}
	fw := frameWriter{w: w}
	frame := func(b []byte) []byte { return appendFrame(b, func(b []byte) []byte { return append(b, 1) }) }
	err := fw.send(frame)
	if err == nil || errors.Is(err, errNotSent) {
		t.Fatalf("first send: %v, want the write error", err)
	}
	err = fw.send(frame)
	if !errors.Is(err, errNotSent) {
		t.Fatalf("send after the failure: %v, want not sent", err)
	}
	if w.writes != 1 {
		t.Fatalf("%d writes, want 1", w.writes)
	}
}

// TestGarbledReplyFailsTheConnection: a peer that answers with a frame the
// client cannot read (another version, or corrupt) leaves every request
// on the connection with an unknown outcome, and the connection is
// replaced.
func TestGarbledReplyFailsTheConnection(t *testing.T) {
	var mu sync.Mutex
	dials := 0
	cl := NewClient(func(ctx context.Context, addr string, h transport.Header) (net.Conn, error) {
		ours, theirs := net.Pipe()
		go func() {
			defer theirs.Close()
			br := bufio.NewReader(theirs)
			if _, err := readFrame(br, nil); err != nil {
				return
			}
			// A version-1 reply: no ID.
			theirs.Write(appendFrame(nil, func(b []byte) []byte { return append(b, 1, codeOK, 0) }))
			io.Copy(io.Discard, theirs)
		}()
		mu.Lock()
		defer mu.Unlock()
		dials++
		return ours, nil
	})
	defer cl.Close()
	for i := range 2 {
		_, err := cl.Forward(context.Background(), "old", "old:1", router.Request{Op: router.GetInfo, Resource: "r"})
		if !errors.Is(err, partition.ErrUnknownOutcome) || !errors.Is(err, ErrProtocol) {
			t.Fatalf("request %d: %v, want an unknown outcome from a protocol error", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if dials != 2 {
		t.Fatalf("%d dials, want a fresh connection after the garbled one", dials)
	}
}
