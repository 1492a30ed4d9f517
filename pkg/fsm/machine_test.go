package fsm

import (
	"testing"
)

const t0 = int64(1_700_000_000_000) // a wall time in unix ms

func lock(res, owner string, ttl int64) Command {
	return Command{Op: OpTryLock, Resource: res, Owner: owner, TTL: ttl}
}
func extend(res, owner string, ttl int64) Command {
	return Command{Op: OpExtend, Resource: res, Owner: owner, TTL: ttl}
}
func unlock(res, owner string) Command {
	return Command{Op: OpUnlock, Resource: res, Owner: owner}
}
func force(res string) Command { return Command{Op: OpForceUnlock, Resource: res} }
func expire(grace int64, limit uint64) Command {
	return Command{Op: OpExpire, TTL: grace, Limit: limit}
}

// step is one batch applied at a wall time.
type step struct {
	at  int64
	cmd Command
}

// newMachine returns a machine whose first leader promoted at t0, the way a
// real partition starts.
func newMachine(t *testing.T) *Machine {
	t.Helper()
	m := New()
	if r := m.Apply(Batch{Now: t0, Commands: []Command{{Op: OpPromote}}}); r[0].Outcome != Done {
		t.Fatalf("promote: %v", r[0].Outcome)
	}
	return m
}

func run(m *Machine, steps []step) Result {
	var last Result
	for _, s := range steps {
		last = m.Apply(Batch{Now: s.at, Commands: []Command{s.cmd}})[0]
	}
	return last
}

// TestSemantics walks every row of the contract's lock semantics table.
func TestSemantics(t *testing.T) {
	tests := []struct {
		name  string
		setup []step
		do    step
		want  Result
		// wantState is checked with a get-info at checkAt after do.
		checkAt   int64
		wantState Result
	}{
		{
			name: "try-lock free lock is granted with a new token",
			do:   step{t0, lock("r", "a", 1000)},
			want: Result{Outcome: Locked, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1000, ExpiresIn: 1000, Fresh: true},
		},
		{
			name:  "try-lock by the holder is granted again with the same token and expiry",
			setup: []step{{t0, lock("r", "a", 1000)}},
			do:    step{t0 + 400, lock("r", "a", 5000)},
			want:  Result{Outcome: Locked, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1000, ExpiresIn: 600},
		},
		{
			name:  "try-lock held by another owner is busy and names the holder",
			setup: []step{{t0, lock("r", "a", 1000)}},
			do:    step{t0 + 10, lock("r", "b", 1000)},
			want:  Result{Outcome: Busy, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1000, ExpiresIn: 990},
		},
		{
			name:  "try-lock of an expired lock grants a new token",
			setup: []step{{t0, lock("r", "a", 1000)}},
			do:    step{t0 + 1000, lock("r", "b", 500)},
			want:  Result{Outcome: Locked, Token: 2, Owner: "b", AcquiredAt: t0 + 1000, ExpiresAt: t0 + 1500, ExpiresIn: 500, Fresh: true},
		},
		{
			name:  "try-lock of its own expired lock grants a new token",
			setup: []step{{t0, lock("r", "a", 1000)}},
			do:    step{t0 + 2000, lock("r", "a", 500)},
			want:  Result{Outcome: Locked, Token: 2, Owner: "a", AcquiredAt: t0 + 2000, ExpiresAt: t0 + 2500, ExpiresIn: 500, Fresh: true},
		},
		{
			name:  "try-lock of an unlocked lock grants a new token",
			setup: []step{{t0, lock("r", "a", 1000)}, {t0 + 1, unlock("r", "a")}},
			do:    step{t0 + 2, lock("r", "a", 1000)},
			want:  Result{Outcome: Locked, Token: 2, Owner: "a", AcquiredAt: t0 + 2, ExpiresAt: t0 + 1002, ExpiresIn: 1000, Fresh: true},
		},
		{
			name:  "extend by the holder moves expiry to now+ttl and keeps the token",
			setup: []step{{t0, lock("r", "a", 1000)}},
			do:    step{t0 + 900, extend("r", "a", 300)},
			want:  Result{Outcome: Extended, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1200, ExpiresIn: 300},
			// Still held after the original expiry.
			checkAt:   t0 + 1100,
			wantState: Result{Outcome: Got, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1200, ExpiresIn: 100},
		},
		{
			name:  "extend may shorten the lease",
			setup: []step{{t0, lock("r", "a", 10_000)}},
			do:    step{t0 + 10, extend("r", "a", 100)},
			want:  Result{Outcome: Extended, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 110, ExpiresIn: 100},
		},
		{
			name: "extend of a missing lock does not exist",
			do:   step{t0, extend("r", "a", 1000)},
			want: Result{Outcome: NotFound},
		},
		{
			name:  "extend of an unlocked lock does not exist",
			setup: []step{{t0, lock("r", "a", 1000)}, {t0 + 1, unlock("r", "a")}},
			do:    step{t0 + 2, extend("r", "a", 1000)},
			want:  Result{Outcome: NotFound},
		},
		{
			name:  "extend of an expired lock does not exist",
			setup: []step{{t0, lock("r", "a", 1000)}},
			do:    step{t0 + 1000, extend("r", "a", 1000)},
			want:  Result{Outcome: NotFound},
		},
		{
			name:      "extend by another owner is refused and changes nothing",
			setup:     []step{{t0, lock("r", "a", 1000)}},
			do:        step{t0 + 1, extend("r", "b", 9000)},
			want:      Result{Outcome: NotOwner, Owner: "a"},
			checkAt:   t0 + 2,
			wantState: Result{Outcome: Got, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1000, ExpiresIn: 998},
		},
		{
			name:      "unlock by the holder releases",
			setup:     []step{{t0, lock("r", "a", 1000)}},
			do:        step{t0 + 1, unlock("r", "a")},
			want:      Result{Outcome: Unlocked, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1000, ExpiresIn: 999},
			checkAt:   t0 + 2,
			wantState: Result{Outcome: NotFound},
		},
		{
			name:  "unlock of its own expired lock nobody took since releases",
			setup: []step{{t0, lock("r", "a", 1000)}},
			do:    step{t0 + 5000, unlock("r", "a")},
			want:  Result{Outcome: Unlocked, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1000, ExpiresIn: -4000},
		},
		{
			name:  "unlock of an expired lock someone else took since is refused",
			setup: []step{{t0, lock("r", "a", 1000)}, {t0 + 1000, lock("r", "b", 1000)}},
			do:    step{t0 + 1001, unlock("r", "a")},
			want:  Result{Outcome: NotOwner, Owner: "b"},
		},
		{
			name: "unlock of a missing lock does not exist",
			do:   step{t0, unlock("r", "a")},
			want: Result{Outcome: NotFound},
		},
		{
			name:  "unlock of an unlocked lock does not exist",
			setup: []step{{t0, lock("r", "a", 1000)}, {t0 + 1, unlock("r", "a")}},
			do:    step{t0 + 2, unlock("r", "a")},
			want:  Result{Outcome: NotFound},
		},
		{
			name:      "unlock by another owner is refused and changes nothing",
			setup:     []step{{t0, lock("r", "a", 1000)}},
			do:        step{t0 + 1, unlock("r", "b")},
			want:      Result{Outcome: NotOwner, Owner: "a"},
			checkAt:   t0 + 2,
			wantState: Result{Outcome: Got, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1000, ExpiresIn: 998},
		},
		{
			name:  "unlock by a stranger of an expired lock does not exist",
			setup: []step{{t0, lock("r", "a", 1000)}},
			do:    step{t0 + 1000, unlock("r", "b")},
			want:  Result{Outcome: NotFound},
		},
		{
			name:      "force-unlock releases whoever holds the lock",
			setup:     []step{{t0, lock("r", "a", 1000)}},
			do:        step{t0 + 1, force("r")},
			want:      Result{Outcome: Unlocked, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1000, ExpiresIn: 999},
			checkAt:   t0 + 2,
			wantState: Result{Outcome: NotFound},
		},
		{
			name: "force-unlock of a missing lock does not exist",
			do:   step{t0, force("r")},
			want: Result{Outcome: NotFound},
		},
		{
			name:  "force-unlock of an expired lock does not exist",
			setup: []step{{t0, lock("r", "a", 1000)}},
			do:    step{t0 + 1000, force("r")},
			want:  Result{Outcome: NotFound},
		},
		{
			name: "try-lock without a resource is invalid",
			do:   step{t0, lock("", "a", 1000)},
			want: Result{Outcome: Invalid},
		},
		{
			name: "try-lock with a zero lease is invalid",
			do:   step{t0, lock("r", "a", 0)},
			want: Result{Outcome: Invalid},
		},
		{
			name:      "extend with a negative lease is invalid and changes nothing",
			setup:     []step{{t0, lock("r", "a", 1000)}},
			do:        step{t0 + 1, extend("r", "a", -5)},
			want:      Result{Outcome: Invalid},
			checkAt:   t0 + 2,
			wantState: Result{Outcome: Got, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1000, ExpiresIn: 998},
		},
		{
			name:  "a command stamped earlier than the last one does not turn time back",
			setup: []step{{t0, lock("r", "a", 1000)}, {t0 + 1500, extend("x", "x", 1)}},
			// The lock expired at t0+1500; a late stamp must not revive it.
			do:   step{t0 + 500, lock("r", "b", 1000)},
			want: Result{Outcome: Locked, Token: 2, Owner: "b", AcquiredAt: t0 + 1500, ExpiresAt: t0 + 2500, ExpiresIn: 1000, Fresh: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t)
			run(m, tc.setup)
			got := run(m, []step{tc.do})
			if got != tc.want {
				t.Fatalf("result\n got %+v\nwant %+v", got, tc.want)
			}
			if tc.checkAt != 0 {
				if st, _ := m.Get(tc.checkAt, "r"); st != tc.wantState {
					t.Fatalf("state afterwards\n got %+v\nwant %+v", st, tc.wantState)
				}
			}
		})
	}
}

func TestGetInfo(t *testing.T) {
	m := newMachine(t)
	run(m, []step{{t0, lock("r", "a", 1000)}})
	tests := []struct {
		name string
		at   int64
		res  string
		want Result
	}{
		{"live lock", t0 + 250, "r", Result{Outcome: Got, Token: 1, Owner: "a", AcquiredAt: t0, ExpiresAt: t0 + 1000, ExpiresIn: 750}},
		{"missing lock", t0 + 250, "other", Result{Outcome: NotFound}},
		{"expired at the exact expiry", t0 + 1000, "r", Result{Outcome: NotFound}},
		{"expired later", t0 + 5000, "r", Result{Outcome: NotFound}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := m.Get(tc.at, tc.res); got != tc.want {
				t.Fatalf("got %+v want %+v", got, tc.want)
			}
		})
	}
}

// TestTokensNeverReused checks that tokens grow for a resource across every
// way a lock can end, including garbage collection of its entry.
func TestTokensNeverReused(t *testing.T) {
	m := newMachine(t)
	now := t0
	var last uint64
	grant := func(owner string) {
		t.Helper()
		r := run(m, []step{{now, lock("r", owner, 100)}})
		if r.Outcome != Locked || !r.Fresh {
			t.Fatalf("grant to %s: %+v", owner, r)
		}
		if r.Token <= last {
			t.Fatalf("token %d after %d", r.Token, last)
		}
		last = r.Token
	}
	grant("a")
	now += 10
	run(m, []step{{now, unlock("r", "a")}})
	grant("b")
	now += 200 // expires
	grant("c")
	now += 10
	run(m, []step{{now, force("r")}})
	grant("d")
	now += 1000
	// Collect the expired entry entirely, then lock again.
	if r := run(m, []step{{now, expire(0, 100)}}); r.Count != 1 {
		t.Fatalf("expire dropped %d, want 1", r.Count)
	}
	if m.Len() != 0 {
		t.Fatalf("table holds %d entries after GC", m.Len())
	}
	grant("e")
	// Tokens are per partition: another resource's grant is larger still.
	r := run(m, []step{{now, lock("other", "x", 100)}})
	if r.Token <= last {
		t.Fatalf("other resource got token %d, not above %d", r.Token, last)
	}
}

func TestExpireRespectsGraceAndLimit(t *testing.T) {
	m := newMachine(t)
	for i, res := range []string{"a", "b", "c", "d"} {
		run(m, []step{{t0, lock(res, "o", int64(100*(i+1)))}}) // expire at +100..+400
	}
	// At +350: a, b, c expired at +100, +200, +300. Grace 100 leaves c.
	if r := run(m, []step{{t0 + 350, expire(100, 10)}}); r.Count != 2 || r.Outcome != Done {
		t.Fatalf("first expire: %+v", r)
	}
	if m.Len() != 2 {
		t.Fatalf("len %d want 2", m.Len())
	}
	// The owner can still unlock c, which is expired but kept for the grace.
	if r := run(m, []step{{t0 + 360, unlock("c", "o")}}); r.Outcome != Unlocked {
		t.Fatalf("unlock in grace: %+v", r)
	}
	// The limit bounds one command's work.
	for i := range 10 {
		run(m, []step{{t0 + 400, lock(string(rune('k'+i)), "o", 1)}})
	}
	if r := run(m, []step{{t0 + 10_000, expire(0, 4)}}); r.Count != 4 {
		t.Fatalf("limited expire dropped %d want 4", r.Count)
	}
	if !m.Expirable(t0+10_000, 0) {
		t.Fatal("entries left but Expirable says none")
	}
	run(m, []step{{t0 + 10_000, expire(0, 100)}})
	if m.Len() != 0 || m.Expirable(t0+10_000, 0) {
		t.Fatalf("len %d after full expire", m.Len())
	}
}

// TestPromoteNeverShortensLeases models a leader change to a node whose clock
// is an hour ahead, and one an hour behind.
func TestPromoteNeverShortensLeases(t *testing.T) {
	for _, skew := range []int64{3_600_000, -3_600_000, 0} {
		m := newMachine(t)
		run(m, []step{{t0, lock("r", "a", 10_000)}, {t0 + 4000, expire(0, 10)}})
		// New leader at (its) time t0+5000+skew: 1 s passed since the log
		// last recorded time, so the lease may be lengthened by that second.
		now := t0 + 5000 + skew
		run(m, []step{{now, Command{Op: OpPromote}}})
		got, _ := m.Get(now, "r")
		if got.Outcome != Got || got.ExpiresIn != 6000 {
			t.Fatalf("skew %d: right after promote %+v, want 6000 ms left", skew, got)
		}
		if got.ExpiresAt != now+6000 {
			t.Fatalf("skew %d: expiresAt %d want %d", skew, got.ExpiresAt, now+6000)
		}
		// The lease runs out 6 s of the new leader's time later, not before.
		if r := run(m, []step{{now + 5999, lock("r", "b", 1)}}); r.Outcome != Busy {
			t.Fatalf("skew %d: lock before lease end: %+v", skew, r)
		}
		if r := run(m, []step{{now + 6000, lock("r", "b", 1)}}); r.Outcome != Locked || r.Token != 2 {
			t.Fatalf("skew %d: lock at lease end: %+v", skew, r)
		}
	}
}

func TestReserveTokens(t *testing.T) {
	m := newMachine(t)
	r1 := run(m, []step{{t0, Command{Op: OpReserveTokens, Limit: 1000}}})
	r2 := run(m, []step{{t0, Command{Op: OpReserveTokens, Limit: 10}}})
	if r1.Token != 1 || r1.Count != 1000 || r2.Token != 1001 || r2.Count != 10 {
		t.Fatalf("reservations %+v %+v", r1, r2)
	}
	if r := run(m, []step{{t0, Command{Op: OpReserveTokens}}}); r.Outcome != Invalid {
		t.Fatalf("empty reservation: %+v", r)
	}
	// Persistent tokens are a separate sequence.
	if r := run(m, []step{{t0, lock("r", "a", 10)}}); r.Token != 1 {
		t.Fatalf("persistent token %d", r.Token)
	}
}

func TestList(t *testing.T) {
	m := newMachine(t)
	for _, res := range []string{"app/b", "app/a", "app/c", "other", "app/dead"} {
		run(m, []step{{t0, lock(res, "o-"+res, 1000)}})
	}
	run(m, []step{{t0, extend("app/dead", "o-app/dead", 1)}})
	now := t0 + 10
	list := func(now int64, prefix, after string, limit int) []Info {
		in, _ := m.List(now, prefix, after, limit)
		return in
	}
	names := func(in []Info) []string {
		var out []string
		for _, i := range in {
			out = append(out, i.Resource)
		}
		return out
	}
	eq := func(a, b []string) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	if got := names(list(now, "app/", "", 10)); !eq(got, []string{"app/a", "app/b", "app/c"}) {
		t.Fatalf("prefix list %v", got)
	}
	if got := names(list(now, "app/", "", 2)); !eq(got, []string{"app/a", "app/b"}) {
		t.Fatalf("limited list %v", got)
	}
	if got := names(list(now, "app/", "app/b", 10)); !eq(got, []string{"app/c"}) {
		t.Fatalf("cursor list %v", got)
	}
	if got := names(list(now, "", "", 10)); !eq(got, []string{"app/a", "app/b", "app/c", "other"}) {
		t.Fatalf("full list %v", got)
	}
	info := list(now, "other", "", 1)[0]
	if info.Owner != "o-other" || info.Token != 4 || info.ExpiresIn != 990 || info.ExpiresAt != t0+1000 {
		t.Fatalf("info %+v", info)
	}
}

// TestReadsReportUnloggedExpiry checks that Get and List say when their
// answer relies on time no command has carried into the log yet.
func TestReadsReportUnloggedExpiry(t *testing.T) {
	m := newMachine(t)
	run(m, []step{{t0, lock("short", "a", 100)}, {t0, lock("long", "b", 10_000)}})
	if r, unlogged := m.Get(t0+50, "short"); r.Outcome != Got || unlogged {
		t.Fatalf("live lock: %+v unlogged=%v", r, unlogged)
	}
	if r, unlogged := m.Get(t0+200, "short"); r.Outcome != NotFound || !unlogged {
		t.Fatalf("expired only by unlogged time: %+v unlogged=%v", r, unlogged)
	}
	if _, unlogged := m.List(t0+200, "", "", 10); !unlogged {
		t.Fatal("list left out a lock on unlogged time without saying so")
	}
	if _, unlogged := m.List(t0+200, "long", "", 10); unlogged {
		t.Fatal("a list that does not cover the expired lock reported unlogged time")
	}
	// Once a command records the time, the same reads are settled.
	run(m, []step{{t0 + 200, expire(30_000, 0)}})
	if r, unlogged := m.Get(t0+200, "short"); r.Outcome != NotFound || unlogged {
		t.Fatalf("after logging the time: %+v unlogged=%v", r, unlogged)
	}
	if _, unlogged := m.List(t0+200, "", "", 10); unlogged {
		t.Fatal("list still unlogged after the time was logged")
	}
	if r, unlogged := m.Get(t0+200, "missing"); r.Outcome != NotFound || unlogged {
		t.Fatalf("a lock that never existed: %+v unlogged=%v", r, unlogged)
	}
}
