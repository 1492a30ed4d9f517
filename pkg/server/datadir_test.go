package server

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

func host(name string) func() (string, error) {
	return func() (string, error) { return name, nil }
}

func TestDataDirRemembersNodeAndPartitions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d, err := openDataDir(dir, dataDirWants{DefaultPartitions: 8, Hostname: host("box-1")})
	if err != nil {
		t.Fatal(err)
	}
	if !d.fresh || d.meta.NodeID != "box-1" || d.meta.Partitions != 8 {
		t.Fatalf("fresh dir: %+v", d.meta)
	}
	// While it is open, nobody else may use it.
	if _, err := openDataDir(dir, dataDirWants{DefaultPartitions: 8, Hostname: host("box-1")}); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second open: %v", err)
	}
	d.close()

	// Reopened: stored values win over defaults and the host name.
	d, err = openDataDir(dir, dataDirWants{DefaultPartitions: 16, Hostname: host("renamed-box")})
	if err != nil {
		t.Fatal(err)
	}
	if d.fresh || d.meta.NodeID != "box-1" || d.meta.Partitions != 8 {
		t.Fatalf("reopened dir: %+v", d.meta)
	}
	d.close()

	if _, err := openDataDir(dir, dataDirWants{Partitions: 16, DefaultPartitions: 8, Hostname: host("box-1")}); !errors.Is(err, ErrPartitionMismatch) {
		t.Fatalf("partition mismatch: %v", err)
	}
	if _, err := openDataDir(dir, dataDirWants{NodeID: "other", DefaultPartitions: 8, Hostname: host("box-1")}); !errors.Is(err, ErrNodeIDMismatch) {
		t.Fatalf("node mismatch: %v", err)
	}
	// Matching explicit values are fine.
	d, err = openDataDir(dir, dataDirWants{NodeID: "box-1", Partitions: 8, DefaultPartitions: 8, Hostname: host("x")})
	if err != nil {
		t.Fatal(err)
	}
	d.close()
}

func TestDataDirRemembersTheLogStore(t *testing.T) {
	dir := t.TempDir()
	d, err := openDataDir(dir, dataDirWants{DefaultPartitions: 1, Hostname: host("h")})
	if err != nil {
		t.Fatal(err)
	}
	if d.meta.LogStore != partition.LogStoreWAL {
		t.Fatalf("a new directory got log store %q, want the default wal", d.meta.LogStore)
	}
	d.close()
	if _, err := openDataDir(dir, dataDirWants{LogStore: partition.LogStoreBoltDB, Hostname: host("h")}); !errors.Is(err, ErrLogStoreMismatch) {
		t.Fatalf("boltdb on a wal directory: %v", err)
	}
	d, err = openDataDir(dir, dataDirWants{LogStore: partition.LogStoreWAL, Hostname: host("h")})
	if err != nil {
		t.Fatalf("the same store again: %v", err)
	}
	d.close()

	// A directory from before the choice existed holds boltdb logs, and
	// node.json says so from its first open on.
	old := t.TempDir()
	os.WriteFile(filepath.Join(old, metaFile), []byte(`{"formatVersion":1,"nodeId":"a","partitions":2}`), 0o600)
	d, err = openDataDir(old, dataDirWants{Hostname: host("h")})
	if err != nil {
		t.Fatal(err)
	}
	d.close()
	if d.meta.LogStore != partition.LogStoreBoltDB {
		t.Fatalf("an old directory opened as %q", d.meta.LogStore)
	}
	if m, err := readMeta(filepath.Join(old, metaFile)); err != nil || m.LogStore != partition.LogStoreBoltDB {
		t.Fatalf("node.json after the first open: %+v, %v", m, err)
	}
	if _, err := openDataDir(old, dataDirWants{LogStore: partition.LogStoreWAL, Hostname: host("h")}); !errors.Is(err, ErrLogStoreMismatch) {
		t.Fatalf("wal on an old directory: %v", err)
	}

	unknown := t.TempDir()
	os.WriteFile(filepath.Join(unknown, metaFile), []byte(`{"formatVersion":1,"nodeId":"a","partitions":2,"logStore":"rocks"}`), 0o600)
	if _, err := openDataDir(unknown, dataDirWants{Hostname: host("h")}); !errors.Is(err, ErrDataDir) {
		t.Fatalf("an unknown store in node.json: %v", err)
	}
}

func TestDataDirErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openDataDir(filepath.Join(file, "data"), dataDirWants{DefaultPartitions: 8, Hostname: host("h")}); !errors.Is(err, ErrDataDir) {
		t.Fatalf("dir beneath a file: %v", err)
	}
	damaged := t.TempDir()
	os.WriteFile(filepath.Join(damaged, metaFile), []byte("{not json"), 0o600)
	if _, err := openDataDir(damaged, dataDirWants{DefaultPartitions: 8, Hostname: host("h")}); !errors.Is(err, ErrDataDir) {
		t.Fatalf("damaged node.json: %v", err)
	}
	future := t.TempDir()
	os.WriteFile(filepath.Join(future, metaFile), []byte(`{"formatVersion":9,"nodeId":"a","partitions":2}`), 0o600)
	if _, err := openDataDir(future, dataDirWants{DefaultPartitions: 8, Hostname: host("h")}); !errors.Is(err, ErrDataDir) {
		t.Fatalf("future format: %v", err)
	}
	noHost := func() (string, error) { return "", errors.New("no name") }
	if _, err := openDataDir(t.TempDir(), dataDirWants{DefaultPartitions: 8, Hostname: noHost}); !errors.Is(err, ErrDataDir) {
		t.Fatalf("no host name: %v", err)
	}
}

func testConfig(t *testing.T) Config {
	return Config{
		NodeID:     "n1",
		DataDir:    t.TempDir(),
		HTTPAddr:   "127.0.0.1:0",
		RaftAddr:   "127.0.0.1:0",
		GossipAddr: "127.0.0.1:0",
		Logger:     logging.Discard(),
		Raft:       partition.FastRaftTimings(),
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"bad address":     func(c *Config) { c.HTTPAddr = "localhost" },
		"unadvertisable":  func(c *Config) { c.RaftAddr = "0.0.0.0:0" },
		"too many parts":  func(c *Config) { c.Partitions = partition.MaxPartitions + 1 },
		"negative expect": func(c *Config) { c.BootstrapExpect = -1 },
		"bad advertise":   func(c *Config) { c.AdvertiseRaft = "nope" },
		"bad log store":   func(c *Config) { c.LogStore = "rocksdb" },
		"long node ID":    func(c *Config) { c.NodeID = strings.Repeat("n", 256) },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			mutate(&cfg)
			s, err := New(cfg)
			if err == nil {
				s.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not a configuration error", err)
			}
		})
	}
}

func TestAPIOnEveryInterfaceAdvertisesTheInternalHost(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTPAddr = "0.0.0.0:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	host, _, _ := net.SplitHostPort(s.HTTPAddr())
	if host != "127.0.0.1" {
		t.Fatalf("advertised API address %s", s.HTTPAddr())
	}
}

// TestFailedStartLeavesNothingBehind checks that a start that fails half
// way (a busy port) releases the data directory and the ports it took.
func TestFailedStartLeavesNothingBehind(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t)
	cfg.RaftAddr = busy.Addr().String()
	if _, err := New(cfg); !errors.Is(err, ErrListen) {
		t.Fatalf("busy raft port: %v", err)
	}
	cfg.RaftAddr = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("the data directory stayed locked after a failed start: %v", err)
	}
	s.Close()
}
