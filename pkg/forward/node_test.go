package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/kahuna-go/kahuna/pkg/cluster"
	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/transport"
)

// fakeNode answers probes and removals from a script.
type fakeNode struct {
	probes  []int
	removed []string
	err     error
}

func (f *fakeNode) Probe(p int) Probe {
	f.probes = append(f.probes, p)
	return Probe{Ready: p != 2, Reason: fmt.Sprintf("asked about %d", p), Applied: uint64(1000 + p)}
}

func (f *fakeNode) RemoveNode(ctx context.Context, id string) error {
	f.removed = append(f.removed, id)
	return f.err
}

// MemberOf says n3 is in partition 4 and n5 in the last one.
func (f *fakeNode) MemberOf(id string) int {
	switch id {
	case "n3":
		return 4
	case "n5":
		return partition.MaxPartitions - 1
	}
	return -1
}

func serveNode(t *testing.T, node Node) (*Client, string) {
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
	srv := NewServer("n2", layer, &fakeExec{}, logging.Discard())
	if node != nil {
		srv.SetNode(node)
	}
	go srv.Serve()
	cl := NewClient(func(ctx context.Context, addr string, h transport.Header) (net.Conn, error) {
		return transport.DialService(ctx, addr, h)
	})
	t.Cleanup(func() { cl.Close(); srv.Close(); mux.Close() })
	return cl, ln.Addr().String()
}

// TestProbeAndRemove asks a node about itself and for a removal over the
// internal port: the answers (with the ID of the node that gave them) and
// the membership refusals survive the hop.
func TestProbeAndRemove(t *testing.T) {
	node := &fakeNode{}
	cl, addr := serveNode(t, node)
	ctx := context.Background()
	for _, p := range []int{-1, 0, 2, partition.MaxPartitions - 1} {
		got, err := cl.Probe(ctx, addr, p)
		if err != nil {
			t.Fatal(err)
		}
		want := Probe{Node: "n2", Ready: p != 2, Reason: fmt.Sprintf("asked about %d", p), Applied: uint64(1000 + p)}
		if got != want {
			t.Errorf("Probe(%d) = %+v, want %+v", p, got, want)
		}
	}

	if err := cl.RemoveNode(ctx, addr, "n3", 0); err != nil {
		t.Fatal(err)
	}
	for _, refusal := range []error{cluster.ErrUnknownNode, cluster.ErrWouldLoseQuorum} {
		node.err = fmt.Errorf("%w: partition 0 says so", refusal)
		err := cl.RemoveNode(ctx, addr, "n1", 0)
		var refused *RefusedError
		if !errors.Is(err, refusal) || !errors.As(err, &refused) || refused.Reason != node.err.Error()+" (as n2 sees it)" {
			t.Errorf("a remote refusal came back as %v, want %v with the node's reason", err, refusal)
		}
	}
	if fmt.Sprint(node.removed) != "[n3 n1 n1]" {
		t.Errorf("the node was asked to remove %v", node.removed)
	}
}

// TestMemberOf asks whether node IDs are members, over the internal port.
func TestMemberOf(t *testing.T) {
	cl, addr := serveNode(t, &fakeNode{})
	for id, want := range map[string]int{"n3": 4, "n5": partition.MaxPartitions - 1, "n9": -1, "": -1} {
		got, err := cl.MemberOf(context.Background(), addr, id)
		if err != nil || got != want {
			t.Errorf("MemberOf(%q) = %d, %v; want %d", id, got, err, want)
		}
	}
}

// TestProbeWithoutNode: a server that answers only lock requests refuses
// probes with an error instead of an empty answer.
func TestProbeWithoutNode(t *testing.T) {
	cl, addr := serveNode(t, nil)
	if _, err := cl.Probe(context.Background(), addr, 0); !errors.Is(err, partition.ErrClosed) {
		t.Fatalf("a probe of a server without a node: %v, want ErrClosed", err)
	}
}
