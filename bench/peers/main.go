// Command peers runs one closed-loop lock workload against Kahuna, etcd and
// Redis on this machine, each through its Go client, and prints what each
// served and how Kahuna compares: the same 64 workers and 10,000 keys,
// try-lock and, when granted, unlock; every system started fresh and
// measured from a few seconds after all of its nodes are ready.
//
//	go run . -kahunad ../../bin/kahunad [-rounds 3] [-duration 10s]
//
// It is its own Go module so that Kahuna's go.mod does not carry etcd's and
// Redis's clients; `make bench-peers` builds kahunad and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var b Binaries
	fs.StringVar(&b.Kahunad, "kahunad", "kahunad", "kahunad binary")
	fs.StringVar(&b.Etcd, "etcd", "etcd", "etcd binary (Debian: etcd-server)")
	fs.StringVar(&b.Redis, "redis", "redis-server", "redis-server binary")
	w := Workload{Seed: 1}
	fs.IntVar(&w.Workers, "workers", 64, "concurrent workers, one request in flight each")
	fs.IntVar(&w.Keys, "keys", 10000, "keys the workers pick from")
	fs.DurationVar(&w.Duration, "duration", 10*time.Second, "measured time of each run")
	settle := fs.Duration("settle", 3*time.Second, "idle time between every node being ready and the measurement")
	rounds := fs.Int("rounds", 1, "times to measure every system, interleaved")
	only := fs.String("only", "", "comma-separated words: measure only the systems whose name contains one (e.g. kahuna)")
	logPath := fs.String("log", "", "file for the servers' output (default: a temp file, named at the end)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *rounds < 1 || w.Workers < 1 || w.Keys < 1 || w.Duration <= 0 {
		fmt.Fprintln(stderr, "peers: bad arguments; see -help")
		return 2
	}
	if err := lookBinaries(b); err != nil {
		fmt.Fprintf(stderr, "peers: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "kahuna-peers-")
	if err != nil {
		fmt.Fprintf(stderr, "peers: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *logPath == "" {
		*logPath = filepath.Join(os.TempDir(), fmt.Sprintf("kahuna-peers-%d.log", os.Getpid()))
	}
	logs, err := os.Create(*logPath)
	if err != nil {
		fmt.Fprintf(stderr, "peers: %v\n", err)
		return 1
	}
	defer logs.Close()

	fmt.Fprintf(stdout, "%d workers, %d keys, try-lock then unlock when granted, %v per run, measured from %v after every node is ready\n",
		w.Workers, w.Keys, w.Duration, *settle)
	var report Report
	for round := 1; round <= *rounds; round++ {
		for si, s := range Select(Setups(), *only) {
			fmt.Fprintf(stderr, "round %d: %s\n", round, s.Name)
			rows, err := measure(ctx, s, b, filepath.Join(dir, fmt.Sprintf("r%d-s%d", round, si)), logs, w, *settle)
			if err != nil {
				fmt.Fprintf(stderr, "peers: %s: %v (server output in %s)\n", s.Name, err, *logPath)
				return 1
			}
			report.Add(round, rows)
		}
	}
	report.Write(stdout)
	fmt.Fprintf(stderr, "server output: %s\n", *logPath)
	return 0
}

// measure starts s, waits settle, and runs the workload once per run of s.
func measure(ctx context.Context, s Setup, b Binaries, dir string, logs io.Writer, w Workload, settle time.Duration) ([]Row, error) {
	fmt.Fprintf(logs, "==== %s ====\n", s.Name)
	c, err := s.start(ctx, b, dir, logs)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var rows []Row
	for _, r := range s.runs {
		l, err := r.locker(c, w.Workers)
		if err != nil {
			return nil, err
		}
		res, err := w.Run(ctx, l)
		l.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
		rows = append(rows, Row{Name: r.name, Result: res})
	}
	return rows, nil
}
