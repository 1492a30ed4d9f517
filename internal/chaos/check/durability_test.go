package check

import (
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// Every node is killed at 1s in these histories; reads happen from 2s on.
func TestDurableAfterRestart(t *testing.T) {
	cases := []struct {
		name   string
		before []chaos.Op
		after  []chaos.Op
		valid  bool
		want   string
	}{
		{name: "acknowledged lock survives", valid: true,
			before: []chaos.Op{lock("a", 10000, 0, 10).locked(1)},
			after:  []chaos.Op{get(2000, 2010).got("a", 1)}},
		{name: "lease surely over: the lock may be gone", valid: true,
			before: []chaos.Op{lock("a", 500, 0, 10).locked(1)},
			after:  []chaos.Op{get(2000, 2010).missing()}},
		{name: "lease surely over: the lock may be lengthened by the downtime", valid: true,
			before: []chaos.Op{lock("a", 500, 0, 10).locked(1)},
			after:  []chaos.Op{get(2000, 2010).got("a", 1)}},
		{name: "acknowledged extend survives", valid: true,
			before: []chaos.Op{
				lock("a", 500, 0, 10).locked(1),
				extend("a", 10000, 400, 410).extended(1),
			},
			after: []chaos.Op{get(2000, 2010).got("a", 1)}},
		{name: "acknowledged unlock survives", valid: true,
			before: []chaos.Op{
				lock("a", 10000, 0, 10).locked(1),
				unlock("a", 20, 30).unlocked(),
			},
			after: []chaos.Op{get(2000, 2010).missing()}},
		{name: "unlock in flight at the kill: applied", valid: true,
			before: []chaos.Op{
				lock("a", 10000, 0, 10).locked(1),
				unlock("a", 990, 1000).unknown(),
			},
			after: []chaos.Op{get(2000, 2010).missing()}},
		{name: "unlock in flight at the kill: lost", valid: true,
			before: []chaos.Op{
				lock("a", 10000, 0, 10).locked(1),
				unlock("a", 990, 1000).unknown(),
			},
			after: []chaos.Op{get(2000, 2010).got("a", 1)}},
		{name: "try-lock in flight at the kill: applied", valid: true,
			before: []chaos.Op{
				lock("a", 10, 0, 5).locked(1),
				unlock("a", 10, 15).unlocked(),
				lock("b", 10000, 990, 1000).unknown(),
			},
			after: []chaos.Op{get(2000, 2010).got("b", 2)}},
		{name: "try-lock in flight at the kill: lost", valid: true,
			before: []chaos.Op{lock("b", 10000, 990, 1000).unknown()},
			after:  []chaos.Op{get(2000, 2010).missing()}},
		{name: "several resources", valid: true,
			before: []chaos.Op{
				lock("a", 10000, 0, 10).on("x").locked(1),
				lock("b", 10000, 0, 10).on("y").locked(2),
				unlock("b", 20, 30).on("y").unlocked(),
			},
			after: []chaos.Op{
				get(2000, 2010).on("x").got("a", 1),
				get(2000, 2010).on("y").missing(),
			}},
		{name: "ephemeral locks are not expected to survive", valid: true,
			before: []chaos.Op{lock("a", 10000, 0, 10).eph().locked(1)},
			after:  []chaos.Op{get(2000, 2010).eph().missing()}},

		{name: "acknowledged lock lost", want: "acknowledged lock lost",
			before: []chaos.Op{lock("a", 10000, 0, 10).locked(1)},
			after:  []chaos.Op{get(2000, 2010).missing()}},
		{name: "acknowledged extend lost", want: "acknowledged lock lost",
			before: []chaos.Op{
				lock("a", 500, 0, 10).locked(1),
				extend("a", 10000, 400, 410).extended(1),
			},
			after: []chaos.Op{get(2000, 2010).missing()}},
		{name: "acknowledged unlock lost", want: "acknowledged unlock lost",
			before: []chaos.Op{
				lock("a", 10000, 0, 10).locked(1),
				unlock("a", 20, 30).unlocked(),
			},
			after: []chaos.Op{get(2000, 2010).got("a", 1)}},
		{name: "token changed by the restart", want: "f1",
			before: []chaos.Op{lock("a", 10000, 0, 10).locked(1)},
			after:  []chaos.Op{get(2000, 2010).got("a", 2)}},
		{name: "owner changed by the restart",
			before: []chaos.Op{lock("a", 10000, 0, 10).locked(1)},
			after:  []chaos.Op{get(2000, 2010).got("b", 1)}},
		{name: "acknowledged lock not read back", want: "no read after the restart",
			before: []chaos.Op{lock("a", 10000, 0, 10).locked(1)}},
		{name: "history already broken before the kill", want: "already not linearizable",
			before: []chaos.Op{
				lock("a", 10000, 0, 10).locked(1),
				lock("b", 10000, 20, 30).locked(2),
			},
			after: []chaos.Op{get(2000, 2010).got("b", 2)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := hist(tc.before...)
			after := hist(tc.after...).Ops
			for i := range after {
				after[i].ID = len(before.Ops) + i
			}
			found := DurableAfterRestart(before, after, Options{Timeout: 10 * time.Second})
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
