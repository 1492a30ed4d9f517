package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/placement"
)

// TestForceNewClusterAfterLosingAQuorum kill -9s every node of a
// three-process cluster and brings back only the first, with
// --force-new-cluster: it becomes a ready one-voter cluster with every lock
// and token, hands out larger tokens, and stays so after a restart without
// the flag.
func TestForceNewClusterAfterLosingAQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes")
	}
	t.Parallel()
	c := startProcCluster(t, 3)
	ctx := ctxT(t)
	const parts = 3 // --bootstrap-expect 3: one partition per voter

	// Two persistent locks per partition, taken through every node.
	tokens := map[string]int64{}
	maxToken := make([]int64, parts)
	for p := range parts {
		for i := range 2 {
			res := procResourceIn(fmt.Sprintf("fnc%d", i), p, parts)
			tok := lock(t, c.procs[(p+i)%3].Client(), res, "keeper")
			tokens[res] = tok
			maxToken[p] = max(maxToken[p], tok)
		}
	}
	// A quorum acknowledged the grants; wait until the survivor holds them
	// too (what only the lost nodes had is what recovery cannot return).
	commit := make([]uint64, parts)
	for i := range c.procs {
		st, err := c.procs[i].Client().Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ps := range st.Partitions {
			if ps.Leader == st.Node.ID {
				commit[ps.ID] = ps.CommitIndex
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := c.procs[0].Client().Status(ctx)
		caughtUp := err == nil
		for p := range parts {
			caughtUp = caughtUp && commit[p] > 0 && st.Partitions[p].AppliedIndex >= commit[p]
		}
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("p1 has not applied every grant (leaders' commit indexes %v): %+v %v", commit, st.Partitions, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var wg sync.WaitGroup
	for _, p := range c.procs {
		wg.Go(p.Kill)
	}
	wg.Wait()

	// check asserts that proc serves every partition alone with every
	// lock, and grants a new lock per partition above every earlier token.
	check := func(proc *testutil.Process, round string) {
		t.Helper()
		client := proc.Client()
		st, err := client.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ps := range st.Partitions {
			if fmt.Sprint(ps.Voters) != "[p1]" || ps.Leader != "p1" {
				t.Fatalf("%s: partition %d has voters %v and leader %q, want p1 alone", round, ps.ID, ps.Voters, ps.Leader)
			}
		}
		for res, tok := range tokens {
			expectHeld(t, client, res, "keeper", tok)
		}
		for p := range parts {
			res := procResourceIn(round, p, parts)
			tok := lock(t, client, res, "keeper")
			if tok <= maxToken[p] {
				t.Fatalf("%s: new grant of %s (partition %d) has token %d, not above %d", round, res, p, tok, maxToken[p])
			}
			tokens[res], maxToken[p] = tok, tok
		}
	}

	start := time.Now()
	forced := c.nodes[0].Start(t, "--force-new-cluster")
	if err := forced.WaitReady(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("ready %v after the forced start", time.Since(start).Round(time.Millisecond))
	if n := strings.Count(forced.Output(), "partition is now a single-voter group of this node"); n != parts {
		t.Fatalf("%d partitions logged their recovery, want %d:\n%s", n, parts, forced.Output())
	}
	check(forced, "forced")
	forced.Stop()

	plain := c.nodes[0].Start(t)
	if err := plain.WaitReady(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.Output(), "single-voter group") {
		t.Fatalf("a start without --force-new-cluster recovered again:\n%s", plain.Output())
	}
	check(plain, "plain")

	// The runbook's last step: two new nodes with empty data directories
	// join the survivor and become voters with every lock.
	for _, id := range []string{"p4", "p5"} {
		n := testutil.NewNode(t, kahunadBin)
		n.Args = []string{"--node-id", id, "--join", c.nodes[0].GossipAddr}
		joined := n.StartReady(t)
		for res, tok := range tokens {
			expectHeld(t, joined.Client(), res, "keeper", tok)
		}
	}
	waitVoters(t, c.nodes[0], 10*time.Second, "p1", "p4", "p5")
	plain.Stop()
}

// procResourceIn returns a resource name with prefix that partition p of
// parts owns.
func procResourceIn(prefix string, p, parts int) string {
	for i := 0; ; i++ {
		if res := fmt.Sprintf("%s-%d", prefix, i); placement.Partition(res, parts) == p {
			return res
		}
	}
}
