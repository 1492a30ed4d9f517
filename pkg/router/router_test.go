package router

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/transport"
)

// openUnformed opens one node's partitions without bootstrapping them, so
// they have no leader until the test says so.
func openUnformed(t *testing.T) (*partition.Set, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := transport.NewMux(ln, nil, logging.Discard())
	go mux.Serve()
	set, err := partition.Open(partition.Config{
		NodeID: "n1", Dir: t.TempDir(), Count: 2, Mux: mux,
		Logger: logging.Discard(), Raft: partition.FastRaftTimings(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close(); mux.Close() })
	form := func() {
		if err := set.Bootstrap([]raft.Server{{ID: "n1", Address: raft.ServerAddress(ln.Addr().String())}}); err != nil {
			t.Error(err)
		}
	}
	return set, form
}

func TestNoLeaderAnswersAfterTheWait(t *testing.T) {
	set, _ := openUnformed(t)
	r := New(Config{NodeID: "n1", Parts: set, LeaderWait: 300 * time.Millisecond})
	start := time.Now()
	_, err := r.Execute(context.Background(), Request{Op: TryLock, Resource: "x", Owner: "o", TTL: time.Second, Durability: partition.Persistent})
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("err = %v, want ErrNoLeader", err)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 2*time.Second {
		t.Fatalf("answered after %v, want after the 300ms wait", el)
	}
	if _, _, err := r.List(context.Background(), partition.Persistent, "", "", 10); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("list: %v", err)
	}
}

func TestRequestWaitsForALeader(t *testing.T) {
	set, form := openUnformed(t)
	r := New(Config{NodeID: "n1", Parts: set, LeaderWait: 10 * time.Second})
	time.AfterFunc(200*time.Millisecond, form)
	resp, err := r.Execute(context.Background(), Request{Op: TryLock, Resource: "x", Owner: "o", TTL: time.Minute, Durability: partition.Persistent})
	if err != nil || resp.Result.Outcome != fsm.Locked || resp.ServedFrom != "n1" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	got, err := r.Execute(context.Background(), Request{Op: GetInfo, Resource: "x", Durability: partition.Persistent})
	if err != nil || got.Result.Owner != "o" || got.Result.Token != resp.Result.Token {
		t.Fatalf("get-info %+v %v", got, err)
	}
}

func TestCallerCancellationStopsTheWait(t *testing.T) {
	set, _ := openUnformed(t)
	r := New(Config{NodeID: "n1", Parts: set, LeaderWait: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := r.Execute(ctx, Request{Op: GetInfo, Resource: "x"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}
