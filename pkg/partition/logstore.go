package partition

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"go.etcd.io/bbolt"
)

// LogStore names the engine that keeps a partition's Raft log and its
// stable state (current term, vote). It is chosen when a data directory is
// created and never changes for it.
type LogStore string

const (
	// LogStoreWAL is hashicorp/raft-wal: segment files with one fsync per
	// append, truncated by deleting whole segments. The default.
	LogStoreWAL LogStore = "wal"
	// LogStoreBoltDB is raft-boltdb/v2 on bbolt: a B-tree file with two
	// fsyncs per append (data pages, then the meta page).
	LogStoreBoltDB LogStore = "boltdb"
)

// DefaultLogStore is the engine of new data directories.
const DefaultLogStore = LogStoreWAL

// LogStores lists every engine, the default first; tests run against each.
func LogStores() []LogStore { return []LogStore{LogStoreWAL, LogStoreBoltDB} }

// ErrUnknownLogStore is returned for a name that is not a LogStore.
var ErrUnknownLogStore = errors.New("unknown log store")

// ParseLogStore checks a --log-store value.
func ParseLogStore(s string) (LogStore, error) {
	for _, ls := range LogStores() {
		if string(ls) == s {
			return ls, nil
		}
	}
	names := make([]string, 0, 2)
	for _, ls := range LogStores() {
		names = append(names, string(ls))
	}
	return "", fmt.Errorf("%w %q: choose %s", ErrUnknownLogStore, s, strings.Join(names, " or "))
}

// walSegmentSize is the size of one raft-wal segment file. Each partition
// preallocates one, so it is the disk a partition takes before it holds
// anything; the library's 64 MiB default would give a node with 32
// partitions 2 GiB of empty segments. Lock commands are small (a full
// batch of 1024 is under 200 KiB), so a segment still holds tens of
// thousands of entries and rotates, at full load, every few seconds at
// most; a rotation is one small metadata write.
const walSegmentSize = 16 << 20

// durableStore is a partition's log and stable store in one engine.
type durableStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openDurableStore opens (or creates) the partition's store of the given
// kind in dir. It refuses to open one kind where the other kind's files
// are, which only a hand-edited node.json could cause.
func openDurableStore(kind LogStore, dir string, log hclog.Logger) (*closedStore, error) {
	boltPath := filepath.Join(dir, "raft.db")
	walDir := filepath.Join(dir, "wal")
	switch kind {
	case LogStoreBoltDB:
		if exists(walDir) {
			return nil, fmt.Errorf("%w: %s holds a raft-wal log, not a boltdb one", ErrInvalid, dir)
		}
		s, err := raftboltdb.New(raftboltdb.Options{
			Path: boltPath,
			BoltOptions: &bbolt.Options{
				// Another process holding the file fails fast instead of hanging.
				Timeout:        time.Second,
				NoFreelistSync: true,
				FreelistType:   bbolt.FreelistMapType,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("open boltdb log store %s: %w", boltPath, err)
		}
		return guard(s), nil
	case LogStoreWAL:
		if exists(boltPath) {
			return nil, fmt.Errorf("%w: %s holds a boltdb log, not a raft-wal one", ErrInvalid, dir)
		}
		if err := os.MkdirAll(walDir, 0o750); err != nil {
			return nil, fmt.Errorf("create %s: %w", walDir, err)
		}
		w, err := openWAL(walDir, log)
		if err != nil {
			return nil, fmt.Errorf("open raft-wal log store %s: %w", walDir, err)
		}
		return guard(w), nil
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownLogStore, kind)
	}
}

// openWAL opens raft-wal, turning a panic into an error: raft-wal v0.4
// dereferences nil when its metadata file is empty or lacks its buckets
// (a file truncated by hand or by a failing disk), and a damaged data
// directory must be a start-up error, not a crash.
func openWAL(dir string, log hclog.Logger) (w *wal.WAL, err error) {
	defer func() {
		if r := recover(); r != nil {
			w, err = nil, fmt.Errorf("%w: %s (raft-wal: %v)", ErrDamaged, dir, r)
		}
	}()
	return wal.Open(dir, wal.WithSegmentSize(walSegmentSize), wal.WithLogger(log))
}

// closedStore keeps a closed store from being used. hashicorp/raft handles
// heartbeats on the transport's goroutine, outside the ones Shutdown waits
// for: one that passed Raft's shutdown check just before Close can still
// save a new term, and Raft panics when that save fails. So Close waits for
// the calls under way, and calls made after it never return: nothing may
// be written (or acknowledged) once the store is closed, and a goroutine
// parked on a connection that is already gone harms nothing, while a panic
// takes the process down.
type closedStore struct {
	mu     sync.RWMutex
	closed bool
	store  durableStore
	// onWrite, set before Raft starts, is told how long each write of
	// entries took, sync included (Config.OnLogWrite).
	onWrite func(time.Duration)
}

func guard(s durableStore) *closedStore { return &closedStore{store: s} }

// enter returns the store, holding the read lock, or parks forever once
// the store is closed.
func (c *closedStore) enter() durableStore {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		select {}
	}
	return c.store
}

// IsMonotonic passes on raft-wal's raft.MonotonicLogStore: its log must
// stay contiguous, so after installing a leader's snapshot Raft has to
// empty it rather than keep a trailing part. Without it a follower whose
// log ended below the snapshot kept that part, could not append the
// entries after the snapshot ("non-monotonic log entries") and never
// caught up.
func (c *closedStore) IsMonotonic() bool {
	m, ok := c.store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// lastIndexUnlessClosed is LastIndex for this package's own callers,
// which are waited for on shutdown and so must get ErrClosed rather than
// park like Raft's stray goroutines.
func (c *closedStore) lastIndexUnlessClosed() (uint64, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return 0, ErrClosed
	}
	return c.store.LastIndex()
}

func (c *closedStore) FirstIndex() (uint64, error) {
	defer c.mu.RUnlock()
	return c.enter().FirstIndex()
}

func (c *closedStore) LastIndex() (uint64, error) {
	defer c.mu.RUnlock()
	return c.enter().LastIndex()
}

func (c *closedStore) GetLog(index uint64, log *raft.Log) error {
	defer c.mu.RUnlock()
	return c.enter().GetLog(index, log)
}

func (c *closedStore) StoreLog(log *raft.Log) error {
	defer c.mu.RUnlock()
	s := c.enter()
	defer c.timed(time.Now())
	return s.StoreLog(log)
}

func (c *closedStore) StoreLogs(logs []*raft.Log) error {
	defer c.mu.RUnlock()
	s := c.enter()
	defer c.timed(time.Now())
	return s.StoreLogs(logs)
}

// timed tells onWrite how long a write that began at start took.
func (c *closedStore) timed(start time.Time) {
	if c.onWrite != nil {
		c.onWrite(time.Since(start))
	}
}

func (c *closedStore) DeleteRange(min, max uint64) error {
	defer c.mu.RUnlock()
	return c.enter().DeleteRange(min, max)
}

func (c *closedStore) Set(key, val []byte) error {
	defer c.mu.RUnlock()
	return c.enter().Set(key, val)
}

func (c *closedStore) Get(key []byte) ([]byte, error) {
	defer c.mu.RUnlock()
	return c.enter().Get(key)
}

func (c *closedStore) SetUint64(key []byte, val uint64) error {
	defer c.mu.RUnlock()
	return c.enter().SetUint64(key, val)
}

func (c *closedStore) GetUint64(key []byte) (uint64, error) {
	defer c.mu.RUnlock()
	return c.enter().GetUint64(key)
}

// Close waits for the calls under way and closes the store once.
func (c *closedStore) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.store.Close()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
