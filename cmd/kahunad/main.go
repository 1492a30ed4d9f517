// Command kahunad is the Kahuna lock server. With no flags it starts a ready
// single-node cluster on 127.0.0.1:8082 with its data in ./kahuna-data.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/server"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(health(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// options are the parsed flags.
type options struct {
	cfg       server.Config
	join      string
	logStore  string
	logLevel  string
	logFormat string
}

// envName maps a flag to its environment variable: --http-addr is
// KAHUNA_HTTP_ADDR.
func envName(flagName string) string {
	return "KAHUNA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("kahunad", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.StringVar(&c.NodeID, "node-id", "", "node ID (default: the ID stored in the data dir, else the host name)")
	fs.StringVar(&c.DataDir, "data-dir", "kahuna-data", "data directory")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8082", "HTTP API address")
	fs.StringVar(&c.RaftAddr, "raft-addr", "127.0.0.1:9082", "internal address: Raft for every partition, and forwarding")
	fs.StringVar(&c.GossipAddr, "gossip-addr", "127.0.0.1:7946", "membership gossip address")
	fs.StringVar(&c.AdvertiseHTTP, "advertise-http", "", "HTTP address to advertise when --http-addr binds 0.0.0.0")
	fs.StringVar(&c.AdvertiseRaft, "advertise-raft", "", "internal address to advertise when --raft-addr binds 0.0.0.0")
	fs.StringVar(&c.AdvertiseGossip, "advertise-gossip", "", "gossip address to advertise when --gossip-addr binds 0.0.0.0")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "serve Go's pprof profiling endpoints on this address (off when empty)")
	fs.StringVar(&o.join, "join", "", "comma-separated gossip addresses of existing members")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 1, "number of voters that form a new cluster")
	fs.IntVar(&c.Partitions, "partitions", 0, "number of partitions, fixed when the cluster is created (default: as stored, else --bootstrap-expect, one per voter)")
	fs.StringVar(&o.logStore, "log-store", "", "Raft log engine of a new data directory: wal (hashicorp/raft-wal) or boltdb (raft-boltdb/v2); fixed once created (default: as stored, else wal)")
	fs.DurationVar(&c.JoinTimeout, "join-timeout", time.Minute, "how long a new node with --join looks for a formed cluster before it gives up")
	fs.DurationVar(&c.DeadNodeTimeout, "dead-node-timeout", server.DefaultDeadNodeTimeout, "remove a member that gossip has reported failed this long, once that leaves at least three live voters (0: never)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "serve the HTTP API over HTTPS only, with this certificate (PEM; reloaded on SIGHUP)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "the key of --tls-cert-file (PEM)")
	fs.StringVar(&c.TLSClientCAFile, "tls-client-ca-file", "", "also require API clients to present a certificate signed by this CA (PEM)")
	fs.StringVar(&c.PeerTLSCertFile, "peer-tls-cert-file", "", "mutual TLS on the internal port: this node's certificate (PEM; server and client use; reloaded on SIGHUP)")
	fs.StringVar(&c.PeerTLSKeyFile, "peer-tls-key-file", "", "the key of --peer-tls-cert-file (PEM)")
	fs.StringVar(&c.PeerTLSCAFile, "peer-tls-ca-file", "", "the CA (PEM) every node's certificate must chain to")
	fs.StringVar(&c.GossipKeyFile, "gossip-key-file", "", "file with a base64 key of 16, 24 or 32 bytes that encrypts gossip; a node without it cannot join")
	fs.StringVar(&c.AuthFile, "auth-file", "", "JSON file of bearer tokens with roles and prefixes; every /v1 request then needs one (see docs/security.md); reloaded on SIGHUP")
	fs.BoolVar(&c.ForceNewCluster, "force-new-cluster", false, "disaster recovery after a quorum is lost for good, for one start on one surviving node: make every partition a single-voter group of this node with the data it holds (see docs/operations.md)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kahunad [flags]\n       kahunad health [--http-addr ADDR]   exit 0 if the node is ready\n\nEvery flag can also be set with an environment variable, e.g. --http-addr as KAHUNA_HTTP_ADDR.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	// Environment variables fill in what the command line left unset.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	for _, j := range strings.Split(o.join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			c.Join = append(c.Join, j)
		}
	}
	if o.logStore != "" {
		ls, err := partition.ParseLogStore(o.logStore)
		if err != nil {
			return nil, fmt.Errorf("--log-store: %w", err)
		}
		c.LogStore = ls
	}
	if c.DeadNodeTimeout < 0 {
		return nil, fmt.Errorf("--dead-node-timeout must not be negative, got %v", c.DeadNodeTimeout)
	}
	if c.Partitions == 0 && (set["partitions"] || getenv(envName("partitions")) != "") {
		return nil, errors.New("--partitions must be at least 1")
	}
	return o, nil
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	o, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kahunad: %v\n", err)
		return 2
	}
	level, err := logging.ParseLevel(o.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "kahunad: %v\n", err)
		return 2
	}
	log, err := logging.New(stderr, o.logFormat, level)
	if err != nil {
		fmt.Fprintf(stderr, "kahunad: %v\n", err)
		return 2
	}
	o.cfg.Logger = log

	// Catch signals before starting, so an early SIGTERM still shuts down
	// cleanly.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)

	srv, err := server.New(o.cfg)
	if err != nil {
		log.Error("kahunad could not start", "err", err)
		fmt.Fprintf(stderr, "kahunad: %v\n", err)
		if errors.Is(err, server.ErrConfig) {
			return 2
		}
		return 1
	}
	code := 0
serve:
	for {
		select {
		case <-hups:
			if err := srv.Reload(); err != nil {
				log.Error("reload failed", "err", err)
			}
		case sig := <-sigs:
			log.Info("shutting down", "signal", sig.String())
			break serve
		case err := <-srv.Errors():
			log.Error("serving failed, shutting down", "err", err)
			code = 1
			break serve
		}
	}
	if err := srv.Close(); err != nil {
		log.Error("shutdown was not clean", "err", err)
		code = 1
	}
	return code
}
