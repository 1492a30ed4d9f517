package nemesis

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// exitedCluster is a cluster of three whose node 1 has exited by itself:
// killing it reports ErrExited. It records restarts.
type exitedCluster struct {
	killed, restarted []int
}

func (c *exitedCluster) Size() int       { return 3 }
func (c *exitedCluster) Partitions() int { return 1 }
func (c *exitedCluster) Kill(i int) error {
	if i == 1 {
		return fmt.Errorf("n2: %w: panic: boom", ErrExited)
	}
	c.killed = append(c.killed, i)
	return nil
}
func (c *exitedCluster) Restart(i int) error               { c.restarted = append(c.restarted, i); return nil }
func (c *exitedCluster) Pause(int) error                   { return nil }
func (c *exitedCluster) Resume(int) error                  { return nil }
func (c *exitedCluster) Cut(func(a, b int) bool) error     { return nil }
func (c *exitedCluster) Leader(int) int                    { return 0 }
func (c *exitedCluster) TransferLeadership(int) error      { return nil }
func (c *exitedCluster) SlowDisk(int, time.Duration) error { return nil }

// TestKillFindsANodeExited: a kill that finds a node already gone reports
// ErrExited (the suite counts it as an anomaly), still kills the others,
// and its heal restarts every node of the fault, the exited one too.
func TestKillFindsANodeExited(t *testing.T) {
	c := &exitedCluster{}
	in := NewInjector(c, rand.New(rand.NewSource(1)), nil)
	detail, heal, err := in.Inject(KillAll)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("kill-all over an exited node: %v, want ErrExited", err)
	}
	if heal == nil {
		t.Fatal("no heal: the nodes killed would stay down")
	}
	if fmt.Sprint(c.killed) != "[0 2]" || detail != "n1 n2 n3" {
		t.Fatalf("killed %v (%q), want the two live nodes killed and all three named", c.killed, detail)
	}
	if err := heal(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.restarted) != "[0 1 2]" {
		t.Fatalf("restarted %v, want every node of the fault", c.restarted)
	}
	if len(in.free()) != 3 {
		t.Fatalf("%d nodes free after the heal, want 3", len(in.free()))
	}
}
