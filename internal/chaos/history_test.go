package chaos

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

func TestWireValues(t *testing.T) {
	pairs := []struct {
		ours   int
		theirs wire.Type
	}{
		{TypeLocked, wire.Locked}, {TypeBusy, wire.Busy}, {TypeExtended, wire.Extended},
		{TypeUnlocked, wire.Unlocked}, {TypeGot, wire.Got}, {TypeErrored, wire.Errored},
		{TypeInvalidInput, wire.InvalidInput}, {TypeMustRetry, wire.MustRetry},
		{TypeLockDoesNotExist, wire.LockDoesNotExist}, {TypeInvalidOwner, wire.InvalidOwner},
	}
	for _, p := range pairs {
		if p.ours != int(p.theirs) {
			t.Errorf("%s: %d here, %d on the wire", TypeName(p.ours), p.ours, p.theirs)
		}
		if TypeName(p.ours) != p.theirs.String() {
			t.Errorf("name %q here, %q on the wire", TypeName(p.ours), p.theirs.String())
		}
	}
	if Persistent != int(wire.Persistent) || Ephemeral != int(wire.Ephemeral) {
		t.Error("durability values differ from the wire's")
	}
}

// fakeClock advances by a millisecond on every read, so each recorded time
// is distinct and predictable.
type fakeClock struct{ ticks atomic.Int64 }

func (c *fakeClock) now() time.Duration { return time.Duration(c.ticks.Add(1)) * time.Millisecond }

func TestRecorderOutcomes(t *testing.T) {
	var clk fakeClock
	r := NewRecorderWithClock(clk.now)
	base := Op{Client: 3, Kind: TryLock, Resource: "r", Durability: Persistent, Owner: "a", TTL: time.Second}
	h1 := r.Begin(base)
	h2 := r.Begin(base)
	h3 := r.Begin(base)
	h4 := r.Begin(base)
	h5 := r.Begin(Op{Client: 4, Kind: GetInfo, Resource: "r", Durability: Persistent})
	if err := r.End(h1, Reply{Type: TypeLocked, Token: 7, Node: "n1"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.End(h2, Reply{}, errors.New("context deadline exceeded")); err != nil {
		t.Fatal(err)
	}
	if err := r.End(h3, Reply{Type: TypeMustRetry, Node: "n2", Error: "no leader"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.End(h4, Reply{Type: TypeErrored, Error: "boom"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.End(h1, Reply{}, nil); err == nil {
		t.Error("second End accepted")
	}
	if err := r.End(Handle(99), Reply{}, nil); err == nil {
		t.Error("End of an unknown handle accepted")
	}
	h := r.History()
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	ops := h.Ops
	if len(ops) != 5 {
		t.Fatalf("%d ops", len(ops))
	}
	if o := ops[0]; !o.Definite || o.Type != TypeLocked || o.Token != 7 || o.Node != "n1" || o.Invoke != time.Millisecond || o.Complete != 6*time.Millisecond {
		t.Errorf("definite: %+v", o)
	}
	if o := ops[1]; o.Definite || o.Err != "context deadline exceeded" {
		t.Errorf("transport error: %+v", o)
	}
	if o := ops[2]; o.Definite || o.Type != TypeMustRetry || !strings.Contains(o.Err, "no leader") {
		t.Errorf("101: %+v", o)
	}
	if o := ops[3]; !o.Definite || o.Type != TypeErrored || o.Err != "boom" {
		t.Errorf("99 is definite (a bug the checkers report): %+v", o)
	}
	if o := ops[4]; o.Definite || o.Err != ErrNoReply.Error() || o.Complete <= o.Invoke {
		t.Errorf("open op: %+v", o)
	}
	if ops[4].ID != 4 || ops[4].Client != 4 {
		t.Errorf("ids: %+v", ops[4])
	}
	_ = h5
}

func TestRecorderCancel(t *testing.T) {
	var clk fakeClock
	r := NewRecorderWithClock(clk.now)
	base := Op{Kind: Unlock, Resource: "r", Durability: Persistent, Owner: "a"}
	first, dropped, last := r.Begin(base), r.Begin(base), r.Begin(base)
	if err := r.Cancel(dropped); err != nil {
		t.Fatal(err)
	}
	if err := r.End(dropped, Reply{Type: TypeUnlocked}, nil); err == nil {
		t.Error("End after Cancel accepted")
	}
	if err := r.End(first, Reply{Type: TypeUnlocked}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Cancel(first); err == nil {
		t.Error("Cancel after End accepted")
	}
	if err := r.Cancel(Handle(9)); err == nil {
		t.Error("Cancel of an unknown handle accepted")
	}
	_ = last
	h := r.History()
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(h.Ops) != 2 || !h.Ops[0].Definite || h.Ops[1].Definite || h.Ops[1].Invoke != 3*time.Millisecond {
		t.Fatalf("history without the canceled op: %+v", h.Ops)
	}
}

func TestRecorderImply(t *testing.T) {
	var clk fakeClock
	r := NewRecorderWithClock(clk.now)
	h := r.Begin(Op{Client: 2, Kind: TryLock, Resource: "r", Durability: Persistent, Owner: "a", TTL: time.Second, Wait: time.Second})
	unlock := Op{Kind: Unlock, Resource: "r", Durability: Persistent, Owner: "a"}
	if err := r.Imply(h, unlock, "left"); err == nil {
		t.Fatal("implied from an open op")
	}
	if err := r.End(h, Reply{}, errors.New("connection reset")); err != nil {
		t.Fatal(err)
	}
	if err := r.Imply(h, unlock, "left"); err != nil {
		t.Fatal(err)
	}
	hist := r.History()
	if err := hist.Validate(); err != nil {
		t.Fatal(err)
	}
	got := hist.Ops[1]
	if got.Kind != Unlock || got.Definite || got.Client != 2 || got.Invoke != hist.Ops[0].Invoke ||
		got.Complete != hist.Ops[0].Complete || !strings.Contains(got.Err, "implied") {
		t.Fatalf("implied op %+v", got)
	}
}

// Many goroutines record at once; run with -race.
func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder()
	const clients, each = 16, 200
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				h := r.Begin(Op{Client: c, Kind: Extend, Resource: "r", Durability: Persistent, Owner: "o", TTL: time.Second})
				if err := r.End(h, Reply{Type: TypeExtended, Token: int64(i)}, nil); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					_ = r.History()
				}
			}
		}()
	}
	wg.Wait()
	h := r.History()
	if len(h.Ops) != clients*each {
		t.Fatalf("%d ops", len(h.Ops))
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	// A client's ops do not overlap: each begins after the previous ended.
	last := make(map[int]time.Duration)
	for _, o := range h.Ops {
		if o.Invoke < last[o.Client] {
			t.Fatalf("client %d: op %d invoked at %v before its previous op completed at %v", o.Client, o.ID, o.Invoke, last[o.Client])
		}
		last[o.Client] = o.Complete
	}
}

func sampleHistory() History {
	return History{Ops: []Op{
		{ID: 0, Client: 0, Kind: TryLock, Resource: "ресурс/1 \"q\"", Durability: Persistent, Owner: "YWJj", TTL: 1500 * time.Millisecond, Wait: time.Second,
			Invoke: 10 * time.Microsecond, Complete: 3 * time.Millisecond, Definite: true, Type: TypeLocked, Token: 1 << 40, Node: "n1"},
		{ID: 1, Client: 1, Kind: GetInfo, Resource: "r", Durability: Ephemeral,
			Invoke: time.Millisecond, Complete: 2 * time.Millisecond, Definite: true, Type: TypeGot, Token: 0, Holder: "<b>&", Node: "n2"},
		{ID: 2, Client: 2, Kind: ForceUnlock, Resource: "r", Durability: Persistent,
			Invoke: time.Millisecond, Complete: time.Second, Type: TypeMustRetry, Err: "MustRetry: leader changed"},
	}}
}

func TestJSONLRoundTrip(t *testing.T) {
	h := sampleHistory()
	var buf bytes.Buffer
	if err := h.WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != len(h.Ops) {
		t.Errorf("%d lines for %d ops:\n%s", n, len(h.Ops), buf.String())
	}
	if !strings.Contains(buf.String(), `"kind":"try-lock"`) || !strings.Contains(buf.String(), `"holder":"<b>&"`) {
		t.Errorf("not readable:\n%s", buf.String())
	}
	got, err := ReadJSONL(strings.NewReader(buf.String() + "\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, h)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run-1")
	h := sampleHistory()
	path, err := h.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != HistoryFile {
		t.Errorf("path %s", path)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("load: %+v", got)
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("loading a missing history succeeded")
	}
}

func TestReadJSONLRejects(t *testing.T) {
	cases := map[string]string{
		"not json":                "{\n",
		"unknown field":           `{"id":0,"kind":"try-lock","resource":"r","durability":1,"owner":"a","ttlNs":1,"invokeNs":0,"completeNs":0,"definite":false,"type":0,"color":"red"}`,
		"unknown kind":            `{"id":0,"kind":"steal","resource":"r","durability":1,"invokeNs":0,"completeNs":0,"definite":false,"type":0}`,
		"no kind":                 `{"id":0,"resource":"r","durability":1,"invokeNs":0,"completeNs":0,"definite":false,"type":0}`,
		"ids out of order":        `{"id":1,"kind":"get-info","resource":"r","durability":1,"invokeNs":0,"completeNs":0,"definite":false,"type":0}`,
		"completes before invoke": `{"id":0,"kind":"get-info","resource":"r","durability":1,"invokeNs":5,"completeNs":4,"definite":false,"type":0}`,
		"try-lock without ttl":    `{"id":0,"kind":"try-lock","resource":"r","durability":1,"owner":"a","invokeNs":0,"completeNs":0,"definite":false,"type":0}`,
		"bad durability":          `{"id":0,"kind":"get-info","resource":"r","durability":2,"invokeNs":0,"completeNs":0,"definite":false,"type":0}`,
		"two values on a line":    `{"id":0,"kind":"get-info","resource":"r","durability":1,"invokeNs":0,"completeNs":0,"definite":false,"type":0} {}`,
	}
	for name, in := range cases {
		if _, err := ReadJSONL(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOpString(t *testing.T) {
	o := sampleHistory().Ops[0]
	s := o.String()
	for _, want := range []string{"#0", "c0", "try-lock", "owner=YWJj", "ttl=1.5s", "wait=1s", "Locked f1099511627776", "@n1"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
	if s := sampleHistory().Ops[2].Outcome(); !strings.Contains(s, "unknown (MustRetry") {
		t.Errorf("outcome %q", s)
	}
	if s := (Op{Kind: GetInfo, Resource: "r", Definite: true, Type: TypeBusy, Holder: "x"}).Outcome(); s != "Busy by x" {
		t.Errorf("outcome %q", s)
	}
}

func TestByLock(t *testing.T) {
	ops := []Op{
		{Resource: "b", Durability: Persistent}, {Resource: "a", Durability: Ephemeral},
		{Resource: "a", Durability: Persistent}, {Resource: "b", Durability: Persistent},
	}
	keys, groups := ByLock(ops)
	want := []LockKey{{"a", Persistent}, {"b", Persistent}, {"a", Ephemeral}}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %v", keys)
	}
	if len(groups[LockKey{"b", Persistent}]) != 2 {
		t.Errorf("groups %v", groups)
	}
}
