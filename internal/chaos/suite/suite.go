// Package suite runs one fault-injection experiment end to end: a workload
// against a cluster while nemeses strike, then the faults stop and every
// resource must become lockable again within a bound, then every node is
// killed at once and restarted and every acknowledged persistent write must
// still be there; finally the checkers judge the whole history. A failed
// run leaves its history, anomalies and porcupine's visualisation in a
// folder.
package suite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
	"github.com/kahuna-go/kahuna/internal/chaos/check"
	"github.com/kahuna-go/kahuna/internal/chaos/nemesis"
	"github.com/kahuna-go/kahuna/internal/chaos/workload"
)

// Target is a cluster the suite can drive and break. One that implements
// nemesis.Dynamic can also take membership changes.
type Target interface {
	nemesis.Cluster
	// Endpoints are the nodes' HTTP base URLs, in node order: the
	// members' of now, for a nemesis.Dynamic target.
	Endpoints() []string
	// WaitReady waits until every node answers /readyz.
	WaitReady(timeout time.Duration) error
}

// Config is one run.
type Config struct {
	Workload workload.Config
	Nemeses  []nemesis.Kind
	// Duration is how long the workload runs with faults.
	Duration time.Duration
	// Quiet, MinHold and MaxHold pace the faults (nemesis.Schedule).
	Quiet, MinHold, MaxHold time.Duration
	// Membership bounds the membership nemeses (nemesis.Schedule).
	Membership nemesis.MembershipLimits
	Seed       int64
	// RecoveryBound is how soon after the last heal every resource must
	// be lockable again.
	RecoveryBound time.Duration
	// LeaseSlack and CheckTimeout tune the checkers (check.Options).
	LeaseSlack, CheckTimeout time.Duration
	// ArtifactsDir receives the history and reports of a failed run.
	ArtifactsDir string
	Log          *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Duration, 20*time.Second)
	def(&c.Quiet, time.Second)
	def(&c.MinHold, 500*time.Millisecond)
	def(&c.MaxHold, 2*time.Second)
	def(&c.RecoveryBound, 15*time.Second)
	def(&c.LeaseSlack, 10*time.Millisecond)
	// A long run has many more locks to search: a tenth of its length,
	// at least two minutes.
	def(&c.CheckTimeout, max(2*time.Minute, c.Duration/10))
	if c.Nemeses == nil {
		c.Nemeses = nemesis.All()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	c.Workload.Seed = c.Seed
	c.Workload = c.Workload.WithDefaults()
	return c
}

// Result is what a run found.
type Result struct {
	Config  Config
	History chaos.History
	Faults  []nemesis.Fault
	// Report holds the history checkers; Durability the full-restart
	// check; Recovery the post-fault probes.
	Report     check.Report
	Durability []check.Anomaly
	Recovery   Recovery
	Store      workload.StoreStats
	// Anomalies is everything found, by every check.
	Anomalies []check.Anomaly
	// Artifacts are the files written for a failed run.
	Artifacts []string
}

// Passed is true when no check found anything or left a question open.
func (r Result) Passed() bool { return len(r.Anomalies) == 0 }

// Run executes one experiment against t.
func Run(cfg Config, t Target) (Result, error) {
	cfg = cfg.withDefaults()
	cfg.Workload.Endpoints = t.Endpoints()
	if _, ok := t.(nemesis.Dynamic); ok && slices.ContainsFunc(cfg.Nemeses, nemesis.IsMembership) {
		// Nodes come and go: send to the members of the moment.
		cfg.Workload.Live = t.Endpoints
	}
	log := cfg.Log
	res := Result{Config: cfg}
	rec := chaos.NewRecorder()
	store := workload.NewFencedStore()

	// 1. Workload under faults.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		workload.Run(ctx, cfg.Workload, rec, store)
	}()
	sched := nemesis.Schedule{Kinds: cfg.Nemeses, Quiet: cfg.Quiet, MinHold: cfg.MinHold, MaxHold: cfg.MaxHold,
		Membership: cfg.Membership, Now: rec.Now, Log: log}
	res.Faults = sched.Run(ctx, t, rand.New(rand.NewSource(cfg.Seed)))
	wg.Wait()
	var changes []check.Anomaly
	for _, f := range res.Faults {
		if errors.Is(f.Err, nemesis.ErrExited) {
			res.Anomalies = append(res.Anomalies, check.Anomaly{Checker: NameRecovery,
				Message: fmt.Sprintf("%s at %v: %v", f.Kind, f.Start.Round(time.Millisecond), f.Err)})
			continue
		}
		if f.Err != nil {
			return res, fmt.Errorf("suite: %s (%s): %w", f.Kind, f.Detail, f.Err)
		}
		if f.Anomaly != "" {
			changes = append(changes, check.Anomaly{Checker: NameMembership, Message: fmt.Sprintf("%s at %v: %s", f.Kind, f.Start.Round(time.Millisecond), f.Anomaly)})
		}
	}
	// The workload sends to the members left from here on.
	cfg.Workload.Endpoints = t.Endpoints()

	// 2. Recovery: every resource lockable again, in both namespaces.
	log.Info("faults over; probing recovery")
	res.Recovery = probeRecovery(cfg, rec)
	for _, k := range res.Recovery.Failed {
		res.Anomalies = append(res.Anomalies, check.Anomaly{Checker: NameRecovery, Lock: k,
			Message: fmt.Sprintf("not lockable within %v after the faults stopped", cfg.RecoveryBound)})
	}

	// 3. Kill every node at once, restart, read everything back.
	log.Info("killing every node")
	before := rec.History()
	final := nemesis.Fault{Kind: nemesis.KillAll, Detail: "every node, at once (durability check)", Start: rec.Now()}
	nodes := members(t)
	for _, i := range nodes {
		err := t.Kill(i)
		if errors.Is(err, nemesis.ErrExited) {
			res.Anomalies = append(res.Anomalies, check.Anomaly{Checker: NameRecovery,
				Message: fmt.Sprintf("before the final restart: %v", err)})
			continue
		}
		if err != nil {
			return res, fmt.Errorf("suite: kill n%d: %w", i+1, err)
		}
	}
	for _, i := range nodes {
		if err := t.Restart(i); err != nil {
			return res, fmt.Errorf("suite: restart n%d: %w", i+1, err)
		}
	}
	final.Healed = rec.Now()
	if err := t.WaitReady(30 * time.Second); err != nil {
		// A cluster that does not come back is a failure of its own; the
		// history is judged all the same.
		res.Anomalies = append(res.Anomalies, check.Anomaly{Checker: NameRecovery,
			Message: fmt.Sprintf("not every node was ready within 30s after the restart of every node: %v", err)})
	} else {
		final.Recovered = rec.Now()
	}
	res.Faults = append(res.Faults, final)
	readBack(cfg, rec)
	all := rec.History()
	after := all.Ops[len(before.Ops):]

	// 4. Judge.
	opts := check.Options{LeaseSlack: cfg.LeaseSlack, Timeout: cfg.CheckTimeout}
	report, err := check.Run(all, opts)
	if err != nil {
		return res, fmt.Errorf("suite: %w", err)
	}
	start := time.Now()
	res.Durability = check.DurableAfterRestart(before, after, opts)
	report.Summary.Add(check.NameDurability, res.Durability, time.Since(start))
	res.Store = store.Stats()
	var fenced []check.Anomaly
	for _, v := range res.Store.Violations {
		fenced = append(fenced, check.Anomaly{Checker: NameStore, Message: v})
	}
	report.Summary.Add(NameStore, fenced, 0)
	report.Summary.Add(NameRecovery, res.Anomalies, 0)
	if slices.ContainsFunc(cfg.Nemeses, nemesis.IsMembership) {
		report.Summary.Add(NameMembership, changes, 0)
	}
	res.Report, res.History = report, all
	res.Anomalies = slices.Concat(report.Anomalies, res.Durability, fenced, res.Anomalies, changes)

	if !res.Passed() && cfg.ArtifactsDir != "" {
		report.Anomalies = res.Anomalies
		files, err := report.WriteArtifacts(cfg.ArtifactsDir, all)
		if err != nil {
			return res, fmt.Errorf("suite: %w", err)
		}
		faults := filepath.Join(cfg.ArtifactsDir, "faults.txt")
		if err := os.WriteFile(faults, []byte(res.String()), 0o644); err != nil {
			return res, fmt.Errorf("suite: %w", err)
		}
		res.Artifacts = append(files, faults)
	}
	return res, nil
}

// Client numbers of the suite's own operations: the workload's clients
// count from 0, the recovery probe's from probeClients, and the reads
// after the final restart from readBackClients, so that a saved history
// tells them apart (Recheck).
const (
	probeClients    = 1000
	readBackClients = 2000
)

// Recheck runs the history checkers again over a saved run's history
// (chaos.Load), with opt's budget: for a long run whose search ran out of
// time. The reads after the final restart are told apart by their client
// numbers.
func Recheck(h chaos.History, opt check.Options) (check.Report, error) {
	report, err := check.Run(h, opt)
	if err != nil {
		return report, fmt.Errorf("suite: %w", err)
	}
	var before chaos.History
	var after []chaos.Op
	for _, o := range h.Ops {
		if o.Client >= readBackClients {
			after = append(after, o)
		} else {
			before.Ops = append(before.Ops, o)
		}
	}
	start := time.Now()
	durability := check.DurableAfterRestart(before, after, opt)
	report.Summary.Add(check.NameDurability, durability, time.Since(start))
	report.Anomalies = append(report.Anomalies, durability...)
	return report, nil
}

// Names of the suite's own checks, beside check's.
const (
	NameRecovery = "recovery"
	NameStore    = "fenced-store"
	// NameMembership: what the membership nemeses saw the cluster do
	// against its contract (a join that never finished, a removed node
	// still in a configuration after a 200, or serving again).
	NameMembership = "membership"
)

// members are the target's nodes of now.
func members(t Target) []int {
	if d, ok := t.(nemesis.Dynamic); ok {
		return d.Members()
	}
	out := make([]int, t.Size())
	for i := range out {
		out[i] = i
	}
	return out
}

// Recovery is what the post-fault probes measured: per lock, the time from
// the end of the faults until a fresh owner got the lock.
type Recovery struct {
	Locks         int
	P50, P99, Max time.Duration
	Failed        []chaos.LockKey
}

// probeRecovery takes every lock of the workload with a fresh owner,
// waiting for whoever holds it, and times it. The grants stay: the
// full-restart check then finds them. Each lock keeps its owner across
// tries, as the contract tells clients to: a try answered 101 may still
// have been granted (leadership lost mid-commit), and only the same owner's
// retry, an idempotent re-lock, gets that grant back; a new owner would
// find the lock busy for the whole lease.
func probeRecovery(cfg Config, rec *chaos.Recorder) Recovery {
	nodes := workload.Dial(cfg.Workload.Endpoints, cfg.Workload.NewClient)
	defer nodes.Close()
	var keys []chaos.LockKey
	for _, r := range cfg.Workload.Resources(rec.Now()) {
		keys = append(keys, chaos.LockKey{Resource: r, Durability: chaos.Persistent}, chaos.LockKey{Resource: r, Durability: chaos.Ephemeral})
	}
	start := time.Now()
	took := make([]time.Duration, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			took[i] = -1
			for try := 0; time.Since(start) < cfg.RecoveryBound; try++ {
				op := chaos.Op{Client: probeClients + i, Kind: chaos.TryLock, Resource: k.Resource, Durability: k.Durability,
					Owner: fmt.Sprintf("recovery/%d", i), TTL: time.Minute, Wait: 2 * time.Second}
				if done := nodes.Do(rec, (i+try)%nodes.Len(), op, 2*time.Second); done.Is(chaos.TypeLocked) {
					took[i] = time.Since(start)
					return
				} else if !done.Definite {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	r := Recovery{Locks: len(keys)}
	var ok []time.Duration
	for i, d := range took {
		if d < 0 {
			r.Failed = append(r.Failed, keys[i])
			continue
		}
		ok = append(ok, d)
	}
	slices.Sort(ok)
	if len(ok) > 0 {
		r.P50, r.P99, r.Max = ok[len(ok)/2], ok[len(ok)*99/100], ok[len(ok)-1]
	}
	return r
}

// readBack reads every persistent lock of the workload once the restarted
// cluster answers, retrying until each read is definite.
func readBack(cfg Config, rec *chaos.Recorder) {
	nodes := workload.Dial(cfg.Workload.Endpoints, cfg.Workload.NewClient)
	defer nodes.Close()
	var wg sync.WaitGroup
	for i, r := range cfg.Workload.Resources(rec.Now()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Second)
			for try := 0; time.Now().Before(deadline); try++ {
				op := chaos.Op{Client: readBackClients + i, Kind: chaos.GetInfo, Resource: r, Durability: chaos.Persistent}
				if nodes.Do(rec, (i+try)%nodes.Len(), op, 2*time.Second).Definite {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// String is the run's summary: operations, checks, faults and recovery.
func (r Result) String() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed() {
		verdict = fmt.Sprintf("FAIL (%d anomalies)", len(r.Anomalies))
	}
	fmt.Fprintf(&b, "chaos run: seed %d, %v with faults, %d nodes, nemeses %v: %s\n\n",
		r.Config.Seed, r.Config.Duration, len(r.Config.Workload.Endpoints), r.Config.Nemeses, verdict)
	b.WriteString(r.Report.Summary.String())
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tnodes\tat\theld\tlongest without a leader\tall leaders back after heal\t")
	for _, f := range r.Faults {
		back := "not seen"
		if d := f.Recovery(); d >= 0 {
			back = d.Round(time.Millisecond).String()
		}
		gap := f.LeaderGap.Round(time.Millisecond).String()
		if nemesis.IsMembership(f.Kind) {
			// A membership change is not healed: it is done. Its leader
			// gaps show in the faults that ran beside it.
			gap, back = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%s\t%s\t\n", f.Kind, f.Detail, f.Start.Round(time.Millisecond),
			(f.Healed - f.Start).Round(time.Millisecond), gap, back)
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "\nfaults by kind: %s\n", FaultCounts(r.Faults))
	fmt.Fprintf(&b, "\nrecovery after the last fault: %d locks, p50 %v, p99 %v, max %v, %d not lockable within %v\n",
		r.Recovery.Locks, r.Recovery.P50.Round(time.Millisecond), r.Recovery.P99.Round(time.Millisecond),
		r.Recovery.Max.Round(time.Millisecond), len(r.Recovery.Failed), r.Config.RecoveryBound)
	fmt.Fprintf(&b, "fenced store: %d writes accepted, %d stale tokens turned away, %d tokens reused\n",
		r.Store.Accepted, r.Store.Stale, len(r.Store.Violations))
	if len(r.Anomalies) > 0 {
		b.WriteString("\n" + check.Format(r.Anomalies) + "\n")
	}
	if len(r.Artifacts) > 0 {
		fmt.Fprintf(&b, "\nartifacts: %s\n", filepath.Dir(r.Artifacts[0]))
	}
	return b.String()
}

// FaultCounts counts faults by kind, in the order kinds first struck, with
// the outcomes of membership changes, e.g. "kill-one 12, join 5 (joined
// 5), remove 4 (removed (200) 3, refused (503) 1)".
func FaultCounts(faults []nemesis.Fault) string {
	var kinds []nemesis.Kind
	count := map[nemesis.Kind]int{}
	outcomes := map[nemesis.Kind][]string{}
	byOutcome := map[nemesis.Kind]map[string]int{}
	for _, f := range faults {
		if count[f.Kind] == 0 {
			kinds = append(kinds, f.Kind)
			byOutcome[f.Kind] = map[string]int{}
		}
		count[f.Kind]++
		if f.Outcome != "" {
			if byOutcome[f.Kind][f.Outcome] == 0 {
				outcomes[f.Kind] = append(outcomes[f.Kind], f.Outcome)
			}
			byOutcome[f.Kind][f.Outcome]++
		}
	}
	var parts []string
	for _, k := range kinds {
		s := fmt.Sprintf("%s %d", k, count[k])
		if len(outcomes[k]) > 0 {
			var o []string
			for _, name := range outcomes[k] {
				o = append(o, fmt.Sprintf("%s %d", name, byOutcome[k][name]))
			}
			s += " (" + strings.Join(o, ", ") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
