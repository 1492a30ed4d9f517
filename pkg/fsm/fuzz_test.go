package fsm

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeBatch feeds arbitrary bytes to the batch decoder and, when they
// decode, applies them: neither may panic, and a decoded batch must survive
// an encode/decode round trip unchanged. (Varints may arrive in longer than
// minimal form, so the bytes themselves need not repeat.)
func FuzzDecodeBatch(f *testing.F) {
	f.Add(AppendBatch(nil, Batch{Now: t0, Commands: []Command{lock("r", "o", 1000), unlock("r", "o")}}))
	f.Add(AppendBatch(nil, Batch{Now: -1, Commands: []Command{expire(10, 5), {Op: OpPromote}, {Op: OpReserveTokens, Limit: 3}, force("x"), extend("a", "b", 9)}}))
	f.Add([]byte{batchVersion, 0, 0, 0, 1, byte(OpTryLock), 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			return
		}
		again, err := DecodeBatch(AppendBatch(nil, b))
		if err != nil || !reflect.DeepEqual(again, b) {
			t.Fatalf("round trip of %x: %+v vs %+v (%v)", data, again, b, err)
		}
		m := newMachine(t)
		res := m.Apply(b)
		if len(res) != len(b.Commands) {
			t.Fatalf("%d results for %d commands", len(res), len(b.Commands))
		}
		// Whatever was applied, the state must snapshot and restore.
		var buf bytes.Buffer
		if _, err := m.Snapshot().WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if err := New().Restore(&buf); err != nil {
			t.Fatalf("snapshot of a fuzzed state does not restore: %v", err)
		}
	})
}

// FuzzRestore feeds arbitrary bytes to snapshot restore: it must fail cleanly
// or produce a state whose own snapshot restores to the same state.
func FuzzRestore(f *testing.F) {
	m := newMachine(&testing.T{})
	m.Apply(Batch{Now: t0, Commands: []Command{lock("a", "x", 100), lock("b", "y", 1000), {Op: OpReserveTokens, Limit: 9}}})
	var good bytes.Buffer
	m.Snapshot().WriteTo(&good)
	f.Add(good.Bytes())
	var empty bytes.Buffer
	New().Snapshot().WriteTo(&empty)
	f.Add(empty.Bytes())
	f.Add([]byte("KHNS\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := New()
		if err := r.Restore(bytes.NewReader(data)); err != nil {
			return
		}
		var out bytes.Buffer
		if _, err := r.Snapshot().WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		r2 := New()
		if err := r2.Restore(&out); err != nil {
			t.Fatalf("re-snapshot of a restored state does not restore: %v", err)
		}
		l1, c1 := dump(r)
		l2, c2 := dump(r2)
		if !reflect.DeepEqual(l1, l2) || c1 != c2 {
			t.Fatalf("state changed across a snapshot round trip")
		}
	})
}
