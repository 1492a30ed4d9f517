// Command kahuna-bench loads a Kahuna server or cluster with
// try-lock/try-unlock pairs on random keys and reports throughput and latency
// percentiles, with the requests each endpoint answered and the nodes that
// served them.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kahuna-go/kahuna/pkg/loadgen"
	"github.com/kahuna-go/kahuna/pkg/tlsconfig"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1 // unreachable server, no replies, or a contract violation
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed command line.
type options struct {
	cfg          loadgen.Config
	durabilities []wire.Durability
	format       string
	readyTimeout time.Duration
}

// getenv is os.Getenv; tests replace it.
var getenv = os.Getenv

func parseFlags(args []string, stderr io.Writer) (options, error) {
	def := loadgen.DefaultConfig()
	fs := flag.NewFlagSet("kahuna-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", strings.Join(def.Endpoints, ","),
		"comma-separated base URLs of the Kahuna nodes to load; worker i uses endpoint i mod their number")
	workers := fs.Int("workers", def.Workers, "concurrent connections, one request in flight each")
	keys := fs.Int("keys", def.Keys, "number of distinct resources")
	duration := fs.Duration("duration", def.Duration, "measured period per durability")
	warmup := fs.Duration("warmup", def.Warmup, "load before each measured period, excluded from the results")
	durability := fs.String("durability", "persistent", "persistent, ephemeral or both (persistent, then ephemeral)")
	expiresMs := fs.Int64("expires-ms", def.ExpiresMs, "lease of each try-lock in milliseconds")
	keyPrefix := fs.String("key-prefix", def.KeyPrefix, "prefix of every resource name")
	seed := fs.Uint64("seed", def.Seed, "seed of the key choice; worker i uses (seed, i)")
	format := fs.String("format", "text", "output format: text or json")
	timeout := fs.Duration("timeout", def.Timeout, "per-request timeout")
	route := fs.String("route", "endpoint", "where requests go: endpoint (worker i's endpoint, which forwards to the partition leader) or leader (each key's partition leader, as a leader-aware client does)")
	retry := fs.Duration("retry", def.Retry, "act as a client that retries: send an operation answered 101 (MustRetry), without a type or not at all again, to the next endpoint, with a jittered backoff after each round of them, until this long after its first attempt; an operation still unanswered then counts as failed, and the run fails (0: send each request once)")
	readyTimeout := fs.Duration("ready-timeout", 10*time.Second, "how long to wait for GET /readyz to answer 200 on every endpoint")
	cacert := fs.String("cacert", "", "PEM file of the CA(s) that signed the servers' certificates, for https:// endpoints (default: the system roots)")
	cert := fs.String("cert", "", "PEM client certificate for https:// endpoints that require one (with -key)")
	key := fs.String("key", "", "PEM private key of -cert")
	token := fs.String("token", "", "bearer token sent with every request, for a server started with --auth-file (default: $KAHUNA_TOKEN)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kahuna-bench [flags]\n\nLoads Kahuna nodes with try-lock/try-unlock pairs and reports throughput and latency.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	opts := options{format: *format, readyTimeout: *readyTimeout}
	switch *durability {
	case "persistent":
		opts.durabilities = []wire.Durability{wire.Persistent}
	case "ephemeral":
		opts.durabilities = []wire.Durability{wire.Ephemeral}
	case "both":
		opts.durabilities = []wire.Durability{wire.Persistent, wire.Ephemeral}
	default:
		return options{}, fmt.Errorf("-durability %q: want persistent, ephemeral or both", *durability)
	}
	if *format != "text" && *format != "json" {
		return options{}, fmt.Errorf("-format %q: want text or json", *format)
	}
	if *route != "endpoint" && *route != "leader" {
		return options{}, fmt.Errorf("-route %q: want endpoint or leader", *route)
	}
	if *retry < 0 {
		return options{}, errors.New("-retry must not be negative")
	}
	if *readyTimeout <= 0 {
		return options{}, errors.New("-ready-timeout must be positive")
	}
	endpoints, err := loadgen.SplitEndpoints(*endpoint)
	if err != nil {
		return options{}, fmt.Errorf("-endpoint: %w", err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["token"] {
		*token = getenv("KAHUNA_TOKEN")
	}
	var tlsConfig *tls.Config
	if loadgen.UsesTLS(endpoints) {
		// One config for every run of the process: its session cache
		// lets the second durability's connections resume.
		if tlsConfig, err = tlsconfig.Client(*cacert, *cert, *key); err != nil {
			return options{}, err
		}
	} else if *cacert != "" || *cert != "" || *key != "" {
		return options{}, errors.New("-cacert, -cert and -key are for https:// endpoints, and every endpoint is http://")
	}
	opts.cfg = loadgen.Config{
		Endpoints:  endpoints,
		Workers:    *workers,
		Keys:       *keys,
		KeyPrefix:  *keyPrefix,
		Duration:   *duration,
		Warmup:     *warmup,
		Durability: opts.durabilities[0],
		ExpiresMs:  *expiresMs,
		Seed:       *seed,
		Timeout:    *timeout,
		Retry:      *retry,
		TLS:        tlsConfig,
		Token:      *token,
		// The map would send everything to the one node there is.
		RouteToLeader: *route == "leader" && len(endpoints) > 1,
	}
	if err := opts.cfg.Validate(); err != nil {
		return options{}, err
	}
	return opts, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "kahuna-bench: %v\n", err)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	if err := waitReady(ctx, opts.cfg.Endpoints, opts.cfg.TLS, opts.readyTimeout); err != nil {
		log.Error("server not reachable", "endpoints", opts.cfg.Endpoints, "err", err)
		fmt.Fprintf(stderr, "kahuna-bench: %v\n", err)
		return exitFailed
	}

	var results []*loadgen.Result
	for _, d := range opts.durabilities {
		cfg := opts.cfg
		cfg.Durability = d
		res, err := loadgen.Run(ctx, cfg, log)
		if err != nil {
			log.Error("load run failed", "durability", d.String(), "err", err)
			return exitFailed
		}
		results = append(results, res)
		if res.Interrupted {
			break
		}
	}

	if opts.format == "json" {
		err = loadgen.WriteJSON(stdout, results...)
	} else {
		err = loadgen.WriteText(stdout, results...)
	}
	if err != nil {
		log.Error("writing results", "err", err)
		return exitFailed
	}
	return exitCode(results, log)
}

// exitCode fails a run that got no replies, caught the server breaking the
// fencing-token contract, or (with -retry) had operations fail despite
// their retries: a benchmark must not pass silently on any of them.
func exitCode(results []*loadgen.Result, log *slog.Logger) int {
	code := exitOK
	for _, r := range results {
		switch {
		case r.Interrupted:
			return exitInterrupted
		case r.Requests == 0:
			log.Error("no request was answered", "durability", r.Durability, "first_error", r.FirstError)
			code = exitFailed
		case r.Failed():
			log.Error("server broke the fencing-token contract", "durability", r.Durability,
				"token_regressions", r.TokenRegressions, "bad_tokens", r.BadTokens)
			code = exitFailed
		case r.Retry > 0 && r.FailedOps > 0:
			log.Error("operations failed despite retries", "durability", r.Durability,
				"failed", r.FailedOps, "retry", r.Retry, "first_error", r.FirstError)
			code = exitFailed
		case r.BadReplies > 0:
			log.Warn("replies without a type", "durability", r.Durability, "count", r.BadReplies, "first", r.FirstError)
		}
	}
	return code
}

// waitReady polls GET /readyz on every endpoint, all at once, until each
// has answered 200 or timeout passes; the error names every endpoint that
// never did, with the last thing it said. A TLS failure that waiting cannot
// mend (a certificate not trusted, a server that does not speak TLS) ends
// the wait for that endpoint at once.
func waitReady(ctx context.Context, endpoints []string, tlsConfig *tls.Config, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConfig.Clone() // the transport adds its protocols to it
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: time.Second, Transport: tr}
	errs := make([]error, len(endpoints))
	var wg sync.WaitGroup
	for i, e := range endpoints {
		if slices.Contains(endpoints[:i], e) {
			continue // a repeated endpoint is waited for once
		}
		wg.Go(func() { errs[i] = waitOne(ctx, client, e+wire.PathReadyz, timeout) })
	}
	wg.Wait()
	var failed []string
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

func waitOne(ctx context.Context, client *http.Client, url string, timeout time.Duration) error {
	for {
		last := probe(ctx, client, url)
		if last == nil {
			return nil
		}
		if hint := tlsHint(last); hint != "" {
			return fmt.Errorf("%s: %s: %w", url, hint, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", url, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tlsHint names a TLS failure that no amount of waiting mends, or returns "".
func tlsHint(err error) string {
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	switch {
	case errors.As(err, &verify):
		return "the server's certificate is not trusted (is -cacert the CA that signed it?)"
	case errors.As(err, &record):
		return "the server does not speak TLS (an http:// node behind an https:// endpoint?)"
	}
	return ""
}

func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
