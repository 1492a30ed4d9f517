package partition

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/fsm"
)

func TestParseLogStore(t *testing.T) {
	for _, s := range []string{"wal", "boltdb"} {
		if got, err := ParseLogStore(s); err != nil || string(got) != s {
			t.Errorf("ParseLogStore(%q) = %q, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "WAL", "bolt", "rocksdb"} {
		if _, err := ParseLogStore(s); !errors.Is(err, ErrUnknownLogStore) {
			t.Errorf("ParseLogStore(%q): %v, want ErrUnknownLogStore", s, err)
		}
	}
	if _, err := Open(Config{NodeID: "n", Dir: t.TempDir(), Count: 1, Mux: nil, LogStore: "rocksdb"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open with an unknown store: %v", err)
	}
}

// TestLogStoreRefusesTheOtherEnginesFiles opens a partition directory with
// the engine it was not made with: an error, and the files stay as they
// were.
func TestLogStoreRefusesTheOtherEnginesFiles(t *testing.T) {
	eachLogStore(t, func(t *testing.T, store LogStore) {
		dir := t.TempDir()
		n := startNode(t, "n1", dir, "127.0.0.1:0", 1, withStore(store, nil))
		n.bootstrapAlone()
		n.waitServing()
		tok := n.do(Persistent, tryLock("kept", "a", time.Hour)).Token
		n.stop()

		other := LogStoreBoltDB
		if store == LogStoreBoltDB {
			other = LogStoreWAL
		}
		cfg := testConfig("n1", dir, 1)
		cfg.LogStore = other
		cfg.Mux = n.mux
		if s, err := Open(cfg); err == nil {
			s.Close()
			t.Fatalf("a %s directory opened as %s", store, other)
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("opening a %s directory as %s: %v, want ErrInvalid", store, other, err)
		}
		n2 := startNode(t, "n1", dir, n.addr, 1, withStore(store, nil))
		n2.waitServing()
		if r := n2.get(Persistent, "kept"); r.Outcome != fsm.Got || r.Token != tok {
			t.Fatalf("after the refused open: %+v, want token %d", r, tok)
		}
	})
}

// TestWALRecoversADamagedTail checks what raft-wal does with a tail segment
// that a crash left torn: the partition must start, every entry before the
// damage must be there, and nothing after it may be half-applied. The
// damage lands on what the last run appended, which is what a kill -9 or a
// power cut during a write can affect (docs/operations.md says what each
// case does).
func TestWALRecoversADamagedTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage changes the segment; start and end bound the bytes the
		// last run appended.
		damage func(t *testing.T, path string, start, end int64)
		// keepsLast reports whether the last run's lock must survive.
		keepsLast bool
	}{
		{"garbled last commit", func(t *testing.T, path string, _, end int64) {
			overwrite(t, path, end-8, bytes.Repeat([]byte{0xA5}, 8))
		}, false},
		{"zeroed second half", func(t *testing.T, path string, start, end int64) {
			mid := start + (end-start)/2
			overwrite(t, path, mid, make([]byte, end-mid))
		}, false},
		{"truncated mid-batch", func(t *testing.T, path string, start, end int64) {
			if err := os.Truncate(path, start+(end-start)/2); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"garbage after the last commit", func(t *testing.T, path string, _, end int64) {
			overwrite(t, path, end, bytes.Repeat([]byte{0x01, 0xff, 0x7f, 0x33}, 64))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			n := startNode(t, "n1", dir, "127.0.0.1:0", 1, withStore(LogStoreWAL, nil))
			n.bootstrapAlone()
			n.waitServing()
			kept := map[string]uint64{}
			for i := range 20 {
				res := fmt.Sprint("a", i)
				kept[res] = n.do(Persistent, tryLock(res, "o", time.Hour)).Token
			}
			n.stop()
			seg := tailSegment(t, filepath.Join(dir, "0", "wal"))
			before := readFile(t, seg)

			n = startNode(t, "n1", dir, n.addr, 1, withStore(LogStoreWAL, nil))
			n.waitServing()
			last := n.do(Persistent, tryLock("last", "o", time.Hour))
			n.stop()
			if got := tailSegment(t, filepath.Join(dir, "0", "wal")); got != seg {
				t.Fatalf("the log rotated to %s; the test needs one segment", got)
			}
			start, end := appended(before, readFile(t, seg))
			if end <= start {
				t.Fatal("the second run appended nothing")
			}
			tc.damage(t, seg, start, end)

			n = startNode(t, "n1", dir, n.addr, 1, withStore(LogStoreWAL, nil))
			n.waitServing()
			for res, tok := range kept {
				if r := n.get(Persistent, res); r.Outcome != fsm.Got || r.Token != tok {
					t.Fatalf("%s after recovery: %+v, want token %d", res, r, tok)
				}
			}
			r := n.get(Persistent, "last")
			switch {
			case tc.keepsLast && (r.Outcome != fsm.Got || r.Token != last.Token):
				t.Fatalf("the last lock after damage past its commit: %+v, want token %d", r, last.Token)
			case !tc.keepsLast && r.Outcome != fsm.NotFound:
				t.Fatalf("the last lock after its batch was torn: %+v, want it gone", r)
			}
			// The log takes new writes after the recovered tail, and they
			// survive another restart.
			next := n.do(Persistent, tryLock("next", "o", time.Hour))
			n.stop()
			n = startNode(t, "n1", dir, n.addr, 1, withStore(LogStoreWAL, nil))
			n.waitServing()
			if r := n.get(Persistent, "next"); r.Outcome != fsm.Got || r.Token != next.Token {
				t.Fatalf("a write after recovery, restarted: %+v, want token %d", r, next.Token)
			}
		})
	}
}

// tailSegment is the newest segment file in a raft-wal directory (file
// names sort by base index).
func tailSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment in %s: %v", dir, err)
	}
	return segs[len(segs)-1]
}

// appended returns the byte range where after differs from before: the
// frames written by the run in between (segments are preallocated with
// zeros, and written only at their end). Frames are 8-byte aligned, so end
// is rounded up to the end of the last one, the commit frame.
func appended(before, after []byte) (start, end int64) {
	i := 0
	for i < len(before) && i < len(after) && before[i] == after[i] {
		i++
	}
	j := len(after)
	for j > i && after[j-1] == 0 {
		j--
	}
	return int64(i), int64((j + 7) &^ 7)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestLogStoreSurvivesATailTruncation is what a follower does when a new
// leader's log conflicts with its own: Raft deletes the newest entries,
// appends the leader's, and later restarts. raft-wal v0.4.0 marked the
// truncated segment sealed without writing its index, and every later
// start panicked in raft.NewRaft ("sealed segment has no index block",
// hashicorp/raft-wal#31, found here by the chaos suite).
func TestLogStoreSurvivesATailTruncation(t *testing.T) {
	eachLogStore(t, func(t *testing.T, store LogStore) {
		dir := t.TempDir()
		open := func() durableStore {
			s, err := openDurableStore(store, dir, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		entries := func(from, to uint64, term uint64) []*raft.Log {
			var out []*raft.Log
			for i := from; i <= to; i++ {
				out = append(out, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte(fmt.Sprint("entry ", i, " term ", term))})
			}
			return out
		}
		s := open()
		if err := s.StoreLogs(entries(1, 10, 1)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRange(8, 10); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreLogs(entries(8, 12, 2)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open()
		defer s.Close()
		if last, err := s.LastIndex(); err != nil || last != 12 {
			t.Fatalf("last index after reopening: %d, %v; want 12", last, err)
		}
		for i := uint64(1); i <= 12; i++ {
			var l raft.Log
			if err := s.GetLog(i, &l); err != nil {
				t.Fatalf("entry %d after reopening: %v", i, err)
			}
			want := uint64(1)
			if i >= 8 {
				want = 2
			}
			if l.Term != want {
				t.Fatalf("entry %d has term %d, want %d", i, l.Term, want)
			}
		}
	})
}

// TestClosedStoreNeverAnswers: a call that reaches a closed store must not
// fail (Raft panics when saving its term fails) and must not succeed
// (nothing may be acknowledged after shutdown); it parks.
func TestClosedStoreNeverAnswers(t *testing.T) {
	eachLogStore(t, func(t *testing.T, store LogStore) {
		s, err := openDurableStore(store, t.TempDir(), hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetUint64([]byte("CurrentTerm"), 3); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("a second close: %v", err)
		}
		answered := make(chan error, 1)
		go func() { answered <- s.SetUint64([]byte("CurrentTerm"), 4) }()
		select {
		case err := <-answered:
			t.Fatalf("a write to the closed store answered %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	})
}

// TestHasLogAfterCloseAnswers: the server's formation loop asks whether
// the groups hold a log, and shutdown closes the groups and then waits for
// that loop. Calls after Close park so that Raft's stray goroutines never
// write; this package's own read must answer ErrClosed instead, or
// shutdown hangs (as TestFailedStartLeavesNothingBehind did, 1 run in 10).
func TestHasLogAfterCloseAnswers(t *testing.T) {
	n := startNode(t, "n1", t.TempDir(), "127.0.0.1:0", 1, nil)
	g := n.set.Group(0)
	n.stop()
	done := make(chan error, 1)
	go func() {
		_, err := g.HasLog()
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("HasLog after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("HasLog parked after Close")
	}
}
