package membership

import (
	"fmt"
	"net"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// Gossip needs the UDP port as well.
		if pc, err := net.ListenPacket("udp", addr); err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no free TCP+UDP port")
	return ""
}

func start(t *testing.T, id, addr string, join ...string) *Membership {
	t.Helper()
	m, err := Start(Config{
		NodeID:     id,
		BindAddr:   addr,
		HTTPAddr:   "http-" + id,
		RaftAddr:   "raft-" + id,
		Partitions: 3,
		Join:       join,
		Timings:    FastTimings(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func states(m *Membership) string {
	s := ""
	for _, mem := range m.Members() {
		s += fmt.Sprintf("%s=%s ", mem.ID, mem.State)
	}
	return s
}

// TestFormsInAnyOrderAndTracksFailures starts nodes whose join targets are
// not up yet, and checks that they find each other, share their metadata,
// and see a crash as failed and a clean stop as left.
func TestFormsInAnyOrderAndTracksFailures(t *testing.T) {
	a1, a2, a3 := freeAddr(t), freeAddr(t), freeAddr(t)
	n1 := start(t, "n1", a1, a2, a3) // nobody is there yet
	defer n1.Close()
	time.Sleep(200 * time.Millisecond)
	n3 := start(t, "n3", a3, a2)
	n2 := start(t, "n2", a2, a1)
	defer n2.Close()
	for _, n := range []*Membership{n1, n2, n3} {
		waitFor(t, n.cfg.NodeID+" sees three alive nodes", func() bool {
			return states(n) == "n1=alive n2=alive n3=alive "
		})
	}
	got, ok := n2.Member("n3")
	if !ok || got.HTTPAddr != "http-n3" || got.RaftAddr != "raft-n3" || got.Partitions != 3 || got.Formed || got.GossipAddr != a3 {
		t.Fatalf("n3 as n2 sees it: %+v", got)
	}
	n1.SetFormed([]string{"n1", "n2", "n3"})
	waitFor(t, "n3 learns n1 is formed", func() bool {
		m, _ := n3.Member("n1")
		return m.Formed && fmt.Sprint(m.Voters) == "[n1 n2 n3]"
	})

	n3.Kill()
	waitFor(t, "n1 sees n3 failed", func() bool {
		m, _ := n1.Member("n3")
		return m.State == StateFailed && !m.Alive()
	})
	n2.Close()
	waitFor(t, "n1 sees n2 left", func() bool {
		m, _ := n1.Member("n2")
		return m.State == StateLeft
	})
	// A node that comes back is alive again.
	n3 = start(t, "n3", a3, a1)
	defer n3.Close()
	waitFor(t, "n1 sees n3 back", func() bool {
		m, _ := n1.Member("n3")
		return m.State == StateAlive
	})
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{NodeID: "x", BindAddr: "nope"},
		{NodeID: "x", BindAddr: "127.0.0.1:notaport"},
		{NodeID: "x", BindAddr: "127.0.0.1:0", AdvertiseAddr: "no-such-host.invalid:7946"},
	} {
		if m, err := Start(cfg); err == nil {
			m.Close()
			t.Fatalf("%+v accepted", cfg)
		}
	}
}
