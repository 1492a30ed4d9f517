package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// populate drives a machine through a pseudo-random history that leaves live,
// expired and released entries behind.
func populate(t *testing.T, m *Machine, seed uint64, n int) int64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	now := t0
	for range n {
		now += rng.Int64N(20)
		res := fmt.Sprintf("res-%d", rng.IntN(200))
		owner := fmt.Sprintf("owner-%d", rng.IntN(5))
		var c Command
		switch rng.IntN(5) {
		case 0, 1:
			c = lock(res, owner, 1+rng.Int64N(2000))
		case 2:
			c = extend(res, owner, 1+rng.Int64N(2000))
		case 3:
			c = unlock(res, owner)
		case 4:
			c = expire(rng.Int64N(500), uint64(rng.IntN(5)))
		}
		m.Apply(Batch{Now: now, Commands: []Command{c}})
	}
	m.Apply(Batch{Now: now, Commands: []Command{{Op: OpReserveTokens, Limit: 77}}})
	return now
}

func dump(m *Machine) ([]Lock, Counters) {
	var out []Lock
	m.mu.RLock()
	m.st.table.Ascend(func(l Lock) bool { out = append(out, l); return true })
	m.mu.RUnlock()
	return out, m.Counters()
}

func TestSnapshotRoundTrip(t *testing.T) {
	for seed := range uint64(5) {
		m := newMachine(t)
		now := populate(t, m, seed, 3000)
		var buf bytes.Buffer
		n, err := m.Snapshot().WriteTo(&buf)
		if err != nil || n != int64(buf.Len()) {
			t.Fatalf("write: n=%d len=%d err=%v", n, buf.Len(), err)
		}
		r := New()
		if err := r.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("restore: %v", err)
		}
		wantLocks, wantCounters := dump(m)
		gotLocks, gotCounters := dump(r)
		if !reflect.DeepEqual(gotLocks, wantLocks) || gotCounters != wantCounters {
			t.Fatalf("seed %d: restored state differs: %d vs %d entries, %+v vs %+v",
				seed, len(gotLocks), len(wantLocks), gotCounters, wantCounters)
		}
		// The restored machine must behave identically from here on.
		rng := rand.New(rand.NewPCG(seed, 99))
		for i := range 500 {
			now += rng.Int64N(30)
			c := lock(fmt.Sprintf("res-%d", rng.IntN(250)), "z", 1+rng.Int64N(500))
			if i%7 == 0 {
				c = expire(0, 3)
			}
			a := m.Apply(Batch{Now: now, Commands: []Command{c}})
			b := r.Apply(Batch{Now: now, Commands: []Command{c}})
			if a[0] != b[0] {
				t.Fatalf("seed %d step %d: original %+v restored %+v", seed, i, a[0], b[0])
			}
		}
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	m := newMachine(t)
	run(m, []step{{t0, lock("a", "x", 1000)}, {t0, lock("b", "x", 1000)}})
	snap := m.Snapshot()
	// Changes after the snapshot must not leak into it.
	run(m, []step{{t0 + 1, unlock("a", "x")}, {t0 + 1, extend("b", "x", 9999)}, {t0 + 1, lock("c", "x", 10)}})
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	locks, c := dump(r)
	if len(locks) != 2 || locks[0].Resource != "a" || locks[1].Expires != 1000 || c.Fence != 2 {
		t.Fatalf("snapshot saw later changes: %+v %+v", locks, c)
	}
}

func TestRestoreRejectsDamage(t *testing.T) {
	m := newMachine(t)
	populate(t, m, 42, 500)
	var buf bytes.Buffer
	if _, err := m.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()

	target := newMachine(t)
	run(target, []step{{t0, lock("keep", "me", 1000)}})
	before, beforeCounters := dump(target)
	unchanged := func(t *testing.T) {
		t.Helper()
		after, afterCounters := dump(target)
		if !reflect.DeepEqual(after, before) || afterCounters != beforeCounters {
			t.Fatal("failed restore changed the machine")
		}
	}

	// Every truncation fails.
	for cut := 0; cut < len(good); cut += 1 + cut/16 {
		if err := target.Restore(bytes.NewReader(good[:cut])); err == nil {
			t.Fatalf("truncated at %d of %d: restore succeeded", cut, len(good))
		}
	}
	unchanged(t)
	// Every single flipped bit fails (checksum or structure).
	for i := 0; i < len(good); i += 1 + i/8 {
		bad := bytes.Clone(good)
		bad[i] ^= 0x10
		if err := target.Restore(bytes.NewReader(bad)); err == nil {
			t.Fatalf("flipped byte %d: restore succeeded", i)
		}
	}
	unchanged(t)
	if err := target.Restore(bytes.NewReader(append(bytes.Clone(good), 0))); !errors.Is(err, ErrSnapshotTrailingGarbage) {
		t.Fatalf("trailing byte: %v", err)
	}
	bad := bytes.Clone(good)
	bad[4] = 9
	if err := target.Restore(bytes.NewReader(bad)); !errors.Is(err, ErrUnknownSnapshotVersion) {
		t.Fatalf("future version: %v", err)
	}
	if err := target.Restore(bytes.NewReader([]byte("not a snapshot at all"))); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("garbage: %v", err)
	}
	unchanged(t)
}

func TestBatchCodecRoundTrip(t *testing.T) {
	b := Batch{Now: -5, Term: 7, Seq: 1 << 40, Commands: []Command{
		lock("résumé/ü", "owner", 1<<40),
		extend("r", "o", 7),
		unlock("r", ""),
		force("r"),
		expire(30_000, 10_000),
		{Op: OpPromote},
		{Op: OpReserveTokens, Limit: 1 << 20},
	}}
	enc := AppendBatch(nil, b)
	got, err := DecodeBatch(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, b)
	}
	for cut := range len(enc) {
		if _, err := DecodeBatch(enc[:cut]); err == nil {
			t.Fatalf("truncated at %d: decoded", cut)
		}
	}
	if _, err := DecodeBatch(append(enc, 1)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("trailing byte: %v", err)
	}
	bad := bytes.Clone(enc)
	bad[0] = 2
	if _, err := DecodeBatch(bad); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("version: %v", err)
	}
	if _, err := DecodeBatch([]byte{batchVersion, 0, 0, 0, 1, 200}); !errors.Is(err, ErrUnknownOp) {
		t.Fatalf("unknown op: %v", err)
	}
	// A huge declared count must not allocate.
	if _, err := DecodeBatch([]byte{batchVersion, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("huge count: %v", err)
	}
}
