package main

// A rolling restart of a cluster of real processes under load (CONTRACT
// §7): a client that retries 101 and connection errors within its deadline
// sees no failure while every node restarts in turn.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/loadgen"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// rollRetry is the deadline of each operation of the load: a client's
// usual request deadline, far above an election or a hand-over.
const rollRetry = 10 * time.Second

// rollLoad is the load during the test: persistent try-lock/unlock pairs
// through every node, retried like a client does.
func rollLoad(c *procCluster, warmup, duration time.Duration) loadgen.Config {
	cfg := loadgen.DefaultConfig()
	cfg.Endpoints = nil
	for _, n := range c.nodes {
		cfg.Endpoints = append(cfg.Endpoints, "http://"+n.HTTPAddr)
	}
	// Few workers: the nodes, built with the race detector when the test
	// is, share two cores with the load and with other tests.
	cfg.Workers = 12
	cfg.Keys = 1000
	cfg.KeyPrefix = "roll-"
	cfg.Durability = wire.Persistent
	cfg.Warmup = warmup
	cfg.Duration = duration
	cfg.Retry = rollRetry
	return cfg
}

// roll restarts every node in turn while the load runs, each one ready
// before the next is stopped, and returns the load's result over the roll.
// kill picks how a node goes down: SIGTERM (a clean shutdown) or kill -9.
func (c *procCluster) roll(t *testing.T, how string, kill func(i int)) *loadgen.Result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		res *loadgen.Result
		err error
	}
	done := make(chan outcome, 1)
	// The load runs until cancelled; it measures from its first request.
	cfg := rollLoad(c, 0, time.Hour)
	cfg.Seed = uint64(len(how)) + 2 // other keys' order than the steady run
	go func() {
		res, err := loadgen.Run(ctx, cfg, slog.New(slog.DiscardHandler))
		done <- outcome{res, err}
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	var steps []string
	for i := range c.nodes {
		t0 := time.Now()
		kill(i)
		down := time.Since(t0)
		c.procs[i] = c.nodes[i].Start(t)
		if err := c.procs[i].WaitReady(30 * time.Second); err != nil {
			cancel()
			<-done
			t.Fatalf("%s: %s did not come back: %v", how, c.ids[i], err)
		}
		steps = append(steps, fmt.Sprintf("%s down in %v, ready %v later", c.ids[i],
			down.Round(time.Millisecond), (time.Since(t0)-down).Round(time.Millisecond)))
	}
	took := time.Since(start)
	// Operations that met the last restart get their answers.
	time.Sleep(time.Second)
	cancel()
	o := <-done
	if o.err != nil {
		t.Fatalf("%s: load: %v", how, o.err)
	}
	t.Logf("%s roll took %v: %s", how, took.Round(time.Millisecond), strings.Join(steps, "; "))
	return o.res
}

// checkLoad fails the test if any operation of res failed or the server
// broke the token contract.
func checkLoad(t *testing.T, what string, res *loadgen.Result) {
	t.Helper()
	if res.Requests == 0 || res.FailedOps != 0 || res.BadReplies != 0 || res.Failed() {
		t.Errorf("%s: %d operations answered, %d failed within %v (first error %q), %d replies without a type, %d bad tokens, %d token regressions; outcomes %v",
			what, res.Requests, res.FailedOps, rollRetry, res.FirstError, res.BadReplies, res.BadTokens, res.TokenRegressions, res.Outcomes)
	}
}

func loadLine(what string, res *loadgen.Result) string {
	l := res.LatencyUs
	ms := func(us int64) string { return fmt.Sprintf("%.1f ms", float64(us)/1000) }
	return fmt.Sprintf("%-16s %6d ops in %5.1fs (%4.0f/s)  p50 %8s  p99 %8s  max %8s  retried %d, transport errors %d, failed %d, unfinished %d",
		what, res.Requests, res.Duration.Seconds(), res.RequestsPerSec, ms(l.P50), ms(l.P99), ms(l.Max),
		res.Retries, res.Errors, res.FailedOps, res.UnfinishedOps)
}

// TestRollingRestart drives three real processes with retried persistent
// lock operations through every node, measures a steady window, then
// restarts the nodes one at a time — first each with SIGTERM (a clean
// shutdown that hands its leaderships over), then each with kill -9 (its
// partitions wait for an election) — waiting for /readyz 200 before the
// next. No operation may fail, and fencing tokens never go back; the log
// has the latency of each window.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes restarted twice each under load")
	}
	t.Parallel()
	c := startProcCluster(t, 3)

	// The warm-up covers the leaders' first spread over the nodes.
	steady, err := loadgen.Run(context.Background(), rollLoad(c, 2*time.Second, 4*time.Second), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	checkLoad(t, "steady", steady)

	term := c.roll(t, "SIGTERM", func(i int) { c.procs[i].Stop() })
	checkLoad(t, "SIGTERM roll", term)
	kill9 := c.roll(t, "kill -9", func(i int) { c.procs[i].Kill() })
	checkLoad(t, "kill -9 roll", kill9)

	t.Logf("%d workers, persistent, retry within %v:\n%s\n%s\n%s", steady.Workers, rollRetry,
		loadLine("steady", steady), loadLine("SIGTERM roll", term), loadLine("kill -9 roll", kill9))
	for _, p := range c.procs {
		p.Stop()
	}
}
