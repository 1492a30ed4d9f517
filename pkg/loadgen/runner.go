package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Run drives cfg.Workers connections for cfg.Warmup plus cfg.Duration and
// returns the statistics of the measured part. A try-lock is measured when
// it starts inside the measured period, and its unlock with it. A worker that
// was granted a lock still sends its unlock after the period ends, so no lock
// is left behind, and the reported duration stretches to cover it.
//
// Cancelling ctx stops the run early; the partial result is returned with
// Interrupted set.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Owner == "" {
		cfg.Owner = fmt.Sprintf("kahuna-bench-%d-", os.Getpid())
	}
	targets := make([]endpoint, len(cfg.Endpoints))
	for i, e := range cfg.Endpoints {
		t, err := parseEndpoint(e)
		if err != nil {
			return nil, err
		}
		targets[i] = t
	}
	tlsConfigs := endpointTLS(cfg.TLS, targets)
	var routes *leaderRoutes
	if cfg.RouteToLeader {
		addrs := make([]string, len(targets))
		for i, t := range targets {
			addrs[i] = t.addr
		}
		var err error
		if routes, err = newLeaderRoutes(ctx, cfg, addrs); err != nil {
			return nil, err
		}
		log.Info("routing to partition leaders", "partitions", routes.table.Load().Partitions(),
			"routed", routes.table.Load().Routed())
	}
	// Worker i sticks to one endpoint, so each keeps its connection alive
	// and the nodes share the workers as evenly as the count allows; when
	// routing, that endpoint serves only keys the map has no leader for.
	workers := make([]*worker, cfg.Workers)
	for i := range workers {
		clients := make([]*Client, len(targets))
		for e, t := range targets {
			clients[e] = NewClientWith(t.addr, t.host, ClientOptions{Timeout: cfg.Timeout, TLS: tlsConfigs[e], Token: cfg.Token})
		}
		w, err := newWorker(cfg, i, i%len(targets), clients, routes)
		if err != nil {
			return nil, err
		}
		workers[i] = w
	}

	// Workers poll an atomic flag rather than ctx.Err(), which takes a lock
	// on every iteration of every worker.
	var stop atomic.Bool
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			stop.Store(true)
		case <-done:
		}
	}()
	if routes != nil {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go routes.follow(fctx, routeRefresh, log)
	}

	commits := newCommitReader(cfg.Endpoints[0], tlsConfigs[0], cfg.Token)
	defer commits.close()

	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	stopAt := measureFrom.Add(cfg.Duration)
	// At the start of the measured period: the cluster's commit index
	// and this process's CPU time.
	type reading struct {
		commits commitReading
		cpu     time.Duration
		cpuOK   bool
	}
	before := make(chan reading, 1)
	go func() {
		// Nothing is counted for a run stopped before the measured
		// period starts.
		t := time.NewTimer(time.Until(measureFrom))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			before <- reading{}
			return
		}
		var r reading
		r.cpu, r.cpuOK = processCPU()
		var err error
		if r.commits, err = commits.read(ctx); err != nil {
			log.Debug("no commit index at the start of the measured period", "err", err)
		}
		before <- r
	}()
	log.Info("load run started", "durability", cfg.Durability.String(), "endpoints", cfg.Endpoints,
		"workers", cfg.Workers, "keys", cfg.Keys, "warmup", cfg.Warmup, "duration", cfg.Duration, "retry", cfg.Retry)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(&stop, measureFrom, stopAt)
		}()
	}
	wg.Wait()
	elapsed := max(time.Since(measureFrom), 0)
	cpuEnd, cpuEndOK := processCPU()

	res := merge(cfg, workers, elapsed)
	for _, w := range workers {
		for _, c := range w.clients {
			c.Close()
		}
	}
	res.Interrupted = ctx.Err() != nil
	b := <-before
	if b.cpuOK && cpuEndOK && !res.Interrupted {
		res.ClientCPU = cpuEnd - b.cpu
	}
	if b := b.commits; b.node != "" && !res.Interrupted {
		a, err := commits.read(ctx)
		if n, ok := entriesBetween(b, a); ok {
			res.RaftEntries, res.RaftEntriesFrom = &n, a.node
		} else {
			log.Debug("Raft entries not counted", "before", b.node, "after", a.node, "err", err)
		}
	}
	if res.Errors > 0 {
		log.Warn("transport errors", "durability", res.Durability, "errors", res.Errors, "first", res.FirstError)
	}
	return res, nil
}

// merge folds the per-worker statistics into one Result.
func merge(cfg Config, workers []*worker, elapsed time.Duration) *Result {
	hist := newHistogram()
	var total stats
	endpoints := make(map[string]uint64, len(cfg.Endpoints))
	for _, e := range cfg.Endpoints {
		endpoints[e] = 0 // an endpoint that answered nothing shows as 0
	}
	var conns, handshakes, resumed int
	for _, w := range workers {
		hist.Merge(w.hist)
		total.add(&w.stats)
		for _, c := range w.clients {
			h, r := c.Handshakes()
			conns, handshakes, resumed = conns+c.Dials(), handshakes+h, resumed+r
		}
	}
	for i, n := range total.perEndpoint {
		endpoints[cfg.Endpoints[i]] += n
	}
	res := &Result{
		Durability:        cfg.Durability.String(),
		Workers:           cfg.Workers,
		Keys:              cfg.Keys,
		Duration:          elapsed,
		Requests:          total.requests,
		Outcomes:          total.outcomeMap(),
		EndpointOrder:     uniqueInOrder(cfg.Endpoints),
		Endpoints:         endpoints,
		ServedFrom:        total.served.byNode(),
		ServedFromMissing: total.served.missing,
		Errors:            total.errors,
		Retry:             cfg.Retry,
		Retries:           total.retries,
		FailedOps:         total.failed,
		UnfinishedOps:     total.unfinished,
		BadReplies:        total.badReplies,
		BadTokens:         total.badTokens,
		TokenRegressions:  total.regressions,
		Routed:            total.routed,
		Misrouted:         total.misrouted,
		FirstError:        total.firstError,
		Connections:       uint64(conns),
		TLSHandshakes:     uint64(handshakes),
		TLSResumed:        uint64(resumed),
	}
	if elapsed > 0 {
		res.RequestsPerSec = float64(total.requests) / elapsed.Seconds()
	}
	if hist.TotalCount() > 0 {
		res.LatencyUs = LatencyUs{
			P50:  hist.ValueAtQuantile(50),
			P90:  hist.ValueAtQuantile(90),
			P99:  hist.ValueAtQuantile(99),
			P999: hist.ValueAtQuantile(99.9),
			Max:  total.maxUs, // exact, the histogram only knows its bucket
		}
	}
	return res
}

// Latencies are kept in microseconds from 1 µs to 60 s at 3 significant
// figures: 0.1 % precision across the whole range.
const (
	histMinUs   = 1
	histMaxUs   = 60_000_000
	histSigFigs = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinUs, histMaxUs, histSigFigs)
}

// uniqueInOrder drops repeats, keeping the first of each.
func uniqueInOrder(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// endpointTLS returns the TLS config of each endpoint: nil for http://, and
// for https:// a clone of base (TLS 1.2 or later and the system roots when
// base is nil) that names the endpoint's host unless base names a server.
// Every endpoint gets its own shelf of base's session cache (one of the
// run's own when base has none): Go files sessions under the server name,
// and nodes that share one (three local nodes on 127.0.0.1) would
// otherwise be offered each other's tickets, which they cannot resume.
func endpointTLS(base *tls.Config, eps []endpoint) []*tls.Config {
	out := make([]*tls.Config, len(eps))
	var cache tls.ClientSessionCache
	if base != nil {
		cache = base.ClientSessionCache
	}
	for i, e := range eps {
		if !e.tls {
			continue
		}
		c := &tls.Config{MinVersion: tls.VersionTLS12}
		if base != nil {
			c = base.Clone()
		}
		if c.ServerName == "" {
			c.ServerName = e.hostname
		}
		if cache == nil {
			cache = tls.NewLRUClientSessionCache(0)
		}
		c.ClientSessionCache = shelvedSessions{shelf: e.addr + " ", cache: cache}
		out[i] = c
	}
	return out
}

// shelvedSessions files a session cache's entries under a prefix.
type shelvedSessions struct {
	shelf string
	cache tls.ClientSessionCache
}

func (s shelvedSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return s.cache.Get(s.shelf + key)
}

func (s shelvedSessions) Put(key string, cs *tls.ClientSessionState) {
	s.cache.Put(s.shelf+key, cs)
}
