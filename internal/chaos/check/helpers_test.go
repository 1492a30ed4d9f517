package check

import (
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// A tiny language for writing histories by hand. Times are milliseconds on
// the run's clock; every op is persistent on resource "r" unless told
// otherwise:
//
//	lock("a", 100, 0, 10).locked(1)     a try-lock by a, ttl 100ms, invoked at 0, answered at 10
//	unlock("a", 20, 30).unknown()       an unlock whose outcome is unknown

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

type opb struct{ o chaos.Op }

func newOp(k chaos.Kind, owner string, ttl, inv, cmp int) *opb {
	return &opb{chaos.Op{
		Kind: k, Resource: "r", Durability: chaos.Persistent, Owner: owner,
		TTL: ms(ttl), Invoke: ms(inv), Complete: ms(cmp), Client: -1,
	}}
}

func lock(owner string, ttl, inv, cmp int) *opb   { return newOp(chaos.TryLock, owner, ttl, inv, cmp) }
func extend(owner string, ttl, inv, cmp int) *opb { return newOp(chaos.Extend, owner, ttl, inv, cmp) }
func unlock(owner string, inv, cmp int) *opb      { return newOp(chaos.Unlock, owner, 0, inv, cmp) }
func get(inv, cmp int) *opb                       { return newOp(chaos.GetInfo, "", 0, inv, cmp) }
func force(inv, cmp int) *opb                     { return newOp(chaos.ForceUnlock, "", 0, inv, cmp) }

func (b *opb) on(resource string) *opb { b.o.Resource = resource; return b }
func (b *opb) eph() *opb               { b.o.Durability = chaos.Ephemeral; return b }
func (b *opb) wait(n int) *opb         { b.o.Wait = ms(n); return b }
func (b *opb) client(c int) *opb       { b.o.Client = c; return b }

func (b *opb) res(t int) chaos.Op {
	b.o.Definite, b.o.Type = true, t
	return b.o
}
func (b *opb) locked(tok int64) chaos.Op   { b.o.Token = tok; return b.res(chaos.TypeLocked) }
func (b *opb) extended(tok int64) chaos.Op { b.o.Token = tok; return b.res(chaos.TypeExtended) }
func (b *opb) busy(holder string) chaos.Op { b.o.Holder = holder; return b.res(chaos.TypeBusy) }
func (b *opb) unlocked() chaos.Op          { return b.res(chaos.TypeUnlocked) }
func (b *opb) missing() chaos.Op           { return b.res(chaos.TypeLockDoesNotExist) }
func (b *opb) notOwner() chaos.Op          { return b.res(chaos.TypeInvalidOwner) }
func (b *opb) got(holder string, tok int64) chaos.Op {
	b.o.Holder, b.o.Token = holder, tok
	return b.res(chaos.TypeGot)
}

// unknown: the client gave up at the op's Complete without an answer.
func (b *opb) unknown() chaos.Op {
	b.o.Definite, b.o.Err = false, "timeout"
	return b.o
}

// hist numbers the ops and gives each op without an explicit client its
// own (owner-less ops get fresh ones), as a real run would.
func hist(ops ...chaos.Op) chaos.History {
	clients := make(map[string]int)
	for i := range ops {
		ops[i].ID = i
		if ops[i].Client >= 0 {
			continue
		}
		key := ops[i].Owner
		if key == "" {
			key = "#" + string(rune('A'+i))
		}
		c, ok := clients[key]
		if !ok {
			c = len(clients)
			clients[key] = c
		}
		ops[i].Client = c
	}
	return chaos.History{Ops: ops}
}

// historyCase is one hand-written history and whether it must pass.
type historyCase struct {
	name  string
	h     chaos.History
	valid bool
	// want, for invalid histories, is a substring every reported anomaly
	// list must contain (optional).
	want string
}

// runCases checks each case with fn: valid ones must yield no anomaly,
// invalid ones at least one (containing want).
func runCases(t *testing.T, cases []historyCase, fn func(chaos.History) []Anomaly) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.h.Validate(); err != nil {
				t.Fatalf("bad test history: %v", err)
			}
			found := fn(tc.h)
			switch {
			case tc.valid && len(found) > 0:
				t.Errorf("valid history flagged:\n%s", Format(found))
			case !tc.valid && len(found) == 0:
				t.Errorf("invalid history passed")
			case !tc.valid && tc.want != "" && !strings.Contains(Format(found), tc.want):
				t.Errorf("anomalies do not mention %q:\n%s", tc.want, Format(found))
			}
			if testing.Verbose() && !tc.valid {
				t.Logf("caught:\n%s", Format(found))
			}
		})
	}
}
