package server

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kahuna-go/kahuna/pkg/partition"
)

// Data directory errors.
var (
	ErrDataDir           = errors.New("data directory unusable")
	ErrDataDirInUse      = errors.New("data directory in use")
	ErrPartitionMismatch = errors.New("partition count differs from the data directory's")
	ErrNodeIDMismatch    = errors.New("node ID differs from the data directory's")
	ErrLogStoreMismatch  = errors.New("log store differs from the data directory's")
	ErrRemoved           = errors.New("this node was removed from its cluster")
)

// metaFile records what a data directory was created with. Raft state under
// it is only meaningful with the same node ID, partition count and log
// store.
const metaFile = "node.json"

type meta struct {
	FormatVersion int    `json:"formatVersion"`
	NodeID        string `json:"nodeId"`
	Partitions    int    `json:"partitions"`
	// LogStore is absent from directories made before raft-wal was
	// supported; those hold boltdb logs.
	LogStore  partition.LogStore `json:"logStore,omitempty"`
	CreatedAt time.Time          `json:"createdAt"`
	// Formed is set once every partition holds Raft state: from then on a
	// partition without its log is damage, never a reason to start afresh.
	Formed bool `json:"formed,omitempty"`
	// Removed is set when the cluster removed the node: its Raft state
	// must never serve or vote again.
	Removed   bool   `json:"removed,omitempty"`
	RemovedBy string `json:"removedBy,omitempty"`
}

// logStoreBeforeChoice is the engine of a directory whose node.json names
// none.
const logStoreBeforeChoice = partition.LogStoreBoltDB

const metaFormatVersion = 1

// dataDir is an opened, exclusively locked data directory.
type dataDir struct {
	// mu orders the metadata writes of formation and removal.
	mu   sync.Mutex
	path string
	lock *os.File
	meta meta
	// fresh is true when this start created the directory's metadata.
	fresh bool
}

// dataDirWants is what the flags ask of a data directory. Zero values
// mean "whatever is stored, else the default".
type dataDirWants struct {
	NodeID            string
	Partitions        int
	DefaultPartitions int
	LogStore          partition.LogStore
	Hostname          func() (string, error)
	// Defer leaves a new directory's metadata unwritten: a joining node
	// learns the partition count and log store from the cluster first,
	// then calls create.
	Defer bool
}

// openDataDir creates (if needed) and locks the data directory, and settles
// the node ID, partition count and log store against what it was created
// with.
func openDataDir(path string, want dataDirWants) (*dataDir, error) {
	if err := os.MkdirAll(path, 0o750); err != nil {
		return nil, fmt.Errorf("%w: create %s: %w", ErrDataDir, path, err)
	}
	lock, err := lockDir(path)
	if err != nil {
		return nil, err
	}
	d := &dataDir{path: path, lock: lock}
	ok := false
	defer func() {
		if !ok {
			d.close()
		}
	}()

	stored, err := readMeta(filepath.Join(path, metaFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		nodeID := want.NodeID
		if nodeID == "" {
			if nodeID, err = want.Hostname(); err != nil || nodeID == "" {
				return nil, fmt.Errorf("%w: no --node-id given and the host name is unknown: %w", ErrDataDir, err)
			}
		}
		d.fresh = true
		d.meta = meta{FormatVersion: metaFormatVersion, NodeID: nodeID}
		if want.Defer {
			break
		}
		if err := d.create(cmp.Or(want.Partitions, want.DefaultPartitions), cmp.Or(want.LogStore, partition.DefaultLogStore)); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if want.NodeID != "" && want.NodeID != stored.NodeID {
			return nil, fmt.Errorf("%w: %s belongs to node %q, but --node-id is %q; use the node's own data directory or the same ID",
				ErrNodeIDMismatch, path, stored.NodeID, want.NodeID)
		}
		if want.Partitions != 0 && want.Partitions != stored.Partitions {
			return nil, fmt.Errorf("%w: %s was created with %d partitions, but --partitions is %d; the count is fixed when a cluster is created",
				ErrPartitionMismatch, path, stored.Partitions, want.Partitions)
		}
		if stored.LogStore == "" {
			// Say it from now on, so that the file alone tells.
			stored.LogStore = logStoreBeforeChoice
			if err := writeMeta(path, stored); err != nil {
				return nil, err
			}
		}
		if want.LogStore != "" && want.LogStore != stored.LogStore {
			return nil, fmt.Errorf("%w: %s was created with --log-store %s, but --log-store is %s; the log store is fixed when a data directory is created",
				ErrLogStoreMismatch, path, stored.LogStore, want.LogStore)
		}
		if stored.Removed {
			return nil, fmt.Errorf("%w: %s belongs to node %q, which the cluster removed (told by %s); its state must not serve or vote again: empty the data directory and start the node with --join to add it anew",
				ErrRemoved, path, stored.NodeID, cmp.Or(stored.RemovedBy, "a partition leader"))
		}
		d.meta = stored
	}
	ok = true
	return d, nil
}

// lockDir takes an exclusive advisory lock so two processes never share a
// data directory. The lock file also proves the directory is writable.
func lockDir(path string) (*os.File, error) {
	name := filepath.Join(path, "LOCK")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not writable: %w", ErrDataDir, path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(name)
		f.Close()
		msg := fmt.Sprintf("%s is locked by another kahunad", path)
		if pid := strings.TrimSpace(string(holder)); pid != "" {
			msg += " (pid " + pid + ")"
		}
		return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, msg)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

func readMeta(name string) (meta, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return meta{}, err
		}
		return meta{}, fmt.Errorf("%w: read %s: %w", ErrDataDir, name, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return meta{}, fmt.Errorf("%w: %s is damaged: %w", ErrDataDir, name, err)
	}
	if m.FormatVersion != metaFormatVersion || m.NodeID == "" || m.Partitions < 1 {
		return meta{}, fmt.Errorf("%w: %s has format %d, node %q, %d partitions; this kahunad reads format %d",
			ErrDataDir, name, m.FormatVersion, m.NodeID, m.Partitions, metaFormatVersion)
	}
	if m.LogStore != "" {
		if _, err := partition.ParseLogStore(string(m.LogStore)); err != nil {
			return meta{}, fmt.Errorf("%w: %s: %w", ErrDataDir, name, err)
		}
	}
	return m, nil
}

// writeMeta writes the metadata atomically: a crash leaves either no file or
// a whole one.
func writeMeta(dir string, m meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, metaFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("%w: %s is not writable: %w", ErrDataDir, dir, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("%w: write %s: %w", ErrDataDir, tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%w: sync %s: %w", ErrDataDir, tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: close %s: %w", ErrDataDir, tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, metaFile)); err != nil {
		return fmt.Errorf("%w: %w", ErrDataDir, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// create writes a new directory's metadata.
func (d *dataDir) create(partitions int, store partition.LogStore) error {
	m := d.meta
	m.Partitions, m.LogStore, m.CreatedAt = partitions, store, time.Now().UTC()
	if err := writeMeta(d.path, m); err != nil {
		return err
	}
	d.meta = m
	return nil
}

// markRemoved records that the cluster removed this node.
func (d *dataDir) markRemoved(by string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.meta
	m.Removed, m.RemovedBy = true, by
	if err := writeMeta(d.path, m); err != nil {
		return err
	}
	// Field by field: other goroutines read the fields that never change.
	d.meta.Removed, d.meta.RemovedBy = true, by
	return nil
}

// markFormed records that the node belongs to a cluster.
func (d *dataDir) markFormed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.meta.Formed {
		return nil
	}
	m := d.meta
	m.Formed = true
	if err := writeMeta(d.path, m); err != nil {
		return err
	}
	d.meta.Formed = true
	return nil
}

func (d *dataDir) partitionsDir() string { return filepath.Join(d.path, "partitions") }

func (d *dataDir) close() {
	if d.lock != nil {
		d.lock.Close() // closing releases the flock
		d.lock = nil
	}
}

// readGossipKey reads a base64 gossip key of 16, 24 or 32 bytes (AES-128,
// -192 or -256), as `openssl rand -base64 32` or `head -c32 /dev/urandom |
// base64` makes one.
func readGossipKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s is not base64: %w", path, err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	default:
		return nil, fmt.Errorf("%s holds a key of %d bytes; it must be 16, 24 or 32", path, len(key))
	}
}
