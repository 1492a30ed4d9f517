package suite

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos/check"
	"github.com/kahuna-go/kahuna/internal/chaos/nemesis"
	"github.com/kahuna-go/kahuna/internal/chaos/workload"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

// amnesiac is a cluster whose disks forget everything when a node
// restarts: the failure the durability and fencing checks exist for.
type amnesiac struct{ *inProcess }

func (a amnesiac) Restart(i int) error {
	dir := a.c.Nodes[i].Dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return a.inProcess.Restart(i)
}

// TestSuiteCatchesLostWrites runs the whole suite against a cluster that
// loses its data on restart and expects it to say so, with artifacts: a
// suite that cannot fail proves nothing.
func TestSuiteCatchesLostWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster twice")
	}
	c := startInProcess(t, 3, partition.DefaultLogStore, 0)
	dir := t.TempDir()
	res, err := Run(Config{
		Workload:     workload.Config{Clients: 4},
		Nemeses:      []nemesis.Kind{}, // no faults: only the final kill of every node
		Duration:     2 * time.Second,
		Quiet:        500 * time.Millisecond,
		Seed:         3,
		ArtifactsDir: dir,
	}, amnesiac{c})
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed() {
		t.Fatalf("a cluster that forgot everything passed:\n%s", res)
	}
	found := map[string]bool{}
	for _, a := range res.Anomalies {
		if !a.Unknown {
			found[a.Checker] = true
		}
	}
	// The reads after the restart contradict the acknowledged grants both
	// as a history (linearizability) and as a durability promise.
	if !found[check.NameDurability] || !found[check.NameLinearizability] {
		t.Fatalf("want durability and linearizability anomalies, got %v:\n%s", found, res)
	}
	for _, f := range []string{"history.jsonl", "anomalies.txt", "summary.txt", "faults.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("artifact %s: %v", f, err)
		}
	}
}
