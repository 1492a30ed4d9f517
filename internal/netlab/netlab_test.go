package netlab

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// The test binary doubles as the program run inside the namespaces:
// NETLAB_LISTEN=addr serves TCP connections (echoing), NETLAB_DIAL=addr
// exits 0 if it can connect within a second.
func TestMain(m *testing.M) {
	if addr := os.Getenv("NETLAB_LISTEN"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(2)
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}
	if addr := os.Getenv("NETLAB_DIAL"); addr != "" {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			os.Exit(1)
		}
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCutsAndHeals(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err) // needs root and iproute2; CI runs as root
	}
	lab, err := New(3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	}()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return lab.Hosts()[i].IP + ":7000" }
	for i := range lab.Hosts() {
		args := append(lab.Command(i)[1:], self)
		cmd := exec.Command(lab.Command(i)[0], args...)
		cmd.Env = append(os.Environ(), "NETLAB_LISTEN="+addr(i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	// from -1 is the test's own namespace.
	reach := func(from, to int) bool {
		if from < 0 {
			for range 50 { // the listener may still be starting
				if c, err := net.DialTimeout("tcp", addr(to), time.Second); err == nil {
					c.Close()
					return true
				}
				time.Sleep(20 * time.Millisecond)
			}
			return false
		}
		args := append(lab.Command(from)[1:], self)
		cmd := exec.Command(lab.Command(from)[0], args...)
		cmd.Env = append(os.Environ(), "NETLAB_DIAL="+addr(to))
		return cmd.Run() == nil
	}
	check := func(when string, want map[[2]int]bool) {
		t.Helper()
		for pair, ok := range want {
			if got := reach(pair[0], pair[1]); got != ok {
				t.Errorf("%s: %d → %d reachable %v, want %v", when, pair[0], pair[1], got, ok)
			}
		}
	}
	// Every listener must be up before one namespace dials another: those
	// dials try once, and a listener still starting refuses them.
	for i := range lab.Hosts() {
		if !reach(-1, i) {
			t.Fatalf("at start: listener %d never answered", i)
		}
	}
	check("at start", map[[2]int]bool{{0, 1}: true, {2, 0}: true})
	if err := lab.Cut(func(a, b int) bool { return a == 0 && b == 1 }); err != nil {
		t.Fatal(err)
	}
	check("0 and 1 cut", map[[2]int]bool{{0, 1}: false, {1, 0}: false, {0, 2}: true, {2, 1}: true, {-1, 0}: true, {-1, 1}: true})
	if err := lab.Cut(nil); err != nil {
		t.Fatal(err)
	}
	check("healed", map[[2]int]bool{{0, 1}: true, {1, 0}: true})
}
