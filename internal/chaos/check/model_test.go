package check

import (
	"math/rand"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// randomState draws a state the model can reach: free, or held (token known
// or not, maybe seen expired), with a history of tokens and time bounds.
func randomState(rng *rand.Rand) lockState {
	s := lockState{Last: int64(rng.Intn(5)) - 1, Now: ms(rng.Intn(3) * 50)}
	if rng.Intn(3) == 0 {
		return s
	}
	s.Held, s.Owner = true, []string{"a", "b"}[rng.Intn(2)]
	s.MinEnd = ms(rng.Intn(4) * 40)
	if rng.Intn(3) == 0 {
		s.Floor = s.Last
		s.Last++
	} else {
		s.Last++
		s.Token, s.TokenKnown = s.Last, true
	}
	if rng.Intn(4) == 0 {
		s.Expired = true
		s.Now = max(s.Now, s.MinEnd)
	}
	return s
}

func randomCall(rng *rand.Rand, lo time.Duration) (request, reply) {
	kinds := chaos.Kinds()
	k := kinds[rng.Intn(len(kinds))]
	inv := lo + ms(rng.Intn(4)*30)
	req := request{Kind: k, Invoke: inv, TTL: ms(10 + rng.Intn(3)*40)}
	req.MinEnd = inv + req.TTL
	if k == chaos.TryLock || k == chaos.Extend || k == chaos.Unlock {
		req.Owner = []string{"a", "b"}[rng.Intn(2)]
	}
	rep := reply{End: inv + ms(rng.Intn(4)*30)}
	if rng.Intn(5) == 0 {
		rep.End = infinity
		return req, rep
	}
	rep.Definite = true
	types := allowed[k]
	rep.Type = types[rng.Intn(len(types))]
	rep.Token = int64(rng.Intn(6))
	rep.Holder = []string{"a", "b"}[rng.Intn(2)]
	return req, rep
}

// The "never applied" branch of an op with an unknown outcome is left to
// porcupine placing the op last, which needs a successor from every state.
func TestUnknownOutcomeAlwaysHasASuccessor(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 20000 {
		s := randomState(rng)
		req, _ := randomCall(rng, 0)
		if req.Kind == chaos.GetInfo {
			continue // unanswered reads are dropped from the history
		}
		if next := step(s, req, reply{End: infinity}); len(next) == 0 {
			t.Fatalf("no successor for unknown %s from %s", req.Kind, describeState(s))
		}
	}
}

// normalize forgets only what no later op can see: for every op that may
// follow (ending no earlier than the current op's invocation), stepping
// from the normalized state allows exactly the same replies.
func TestNormalizeIsInvisible(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	checked := 0
	for range 50000 {
		s := randomState(rng)
		cur, _ := randomCall(rng, 0)
		n := normalize(s, cur)
		if n == s {
			continue
		}
		next, rep := randomCall(rng, 0)
		if rep.End < cur.Invoke {
			continue // porcupine would have ordered this op first
		}
		a, b := step(s, next, rep), step(n, next, rep)
		if len(a) != len(b) {
			t.Fatalf("state %s normalized at %v to %s: %s → %+v %d successors vs %d",
				describeState(s), cur.Invoke, describeState(n), next.Kind, rep, len(a), len(b))
		}
		// Normalizing the successors again makes them equal: every op
		// after both ends no earlier than either's invocation.
		both := request{Invoke: max(cur.Invoke, next.Invoke)}
		for i := range a {
			if normalize(a[i], both) != normalize(b[i], both) {
				t.Fatalf("successors differ: %s vs %s", describeState(a[i]), describeState(b[i]))
			}
		}
		checked++
	}
	if checked < 1000 {
		t.Fatalf("only %d normalizations exercised", checked)
	}
}

func TestStepRules(t *testing.T) {
	live := lockState{Held: true, Owner: "a", Token: 3, TokenKnown: true, MinEnd: ms(100), Last: 3}
	def := func(t int) reply { return reply{Definite: true, Type: t, End: ms(50)} }
	late := func(t int) reply { return reply{Definite: true, Type: t, End: ms(150)} }
	cases := []struct {
		name  string
		s     lockState
		req   request
		rep   reply
		count int // successor states, 0 = refused
	}{
		{"re-lock keeps the token", live, request{Kind: chaos.TryLock, Owner: "a"}, reply{Definite: true, Type: chaos.TypeLocked, Token: 3, End: ms(50)}, 1},
		{"re-lock with a new token while surely live", live, request{Kind: chaos.TryLock, Owner: "a"}, reply{Definite: true, Type: chaos.TypeLocked, Token: 4, End: ms(50)}, 0},
		{"re-lock or fresh grant after the sure end", live, request{Kind: chaos.TryLock, Owner: "a", MinEnd: ms(300)}, reply{Definite: true, Type: chaos.TypeLocked, Token: 4, End: ms(150)}, 1},
		{"stranger's unlock while surely live", live, request{Kind: chaos.Unlock, Owner: "b"}, def(chaos.TypeInvalidOwner), 1},
		{"stranger's unlock: missing only after the sure end", live, request{Kind: chaos.Unlock, Owner: "b"}, def(chaos.TypeLockDoesNotExist), 0},
		{"stranger's unlock after the sure end", live, request{Kind: chaos.Unlock, Owner: "b"}, late(chaos.TypeLockDoesNotExist), 1},
		{"own unlock of a collected entry", live, request{Kind: chaos.Unlock, Owner: "a"}, late(chaos.TypeLockDoesNotExist), 1},
		{"force-unlock of a lock that may be live or over", live, request{Kind: chaos.ForceUnlock}, late(chaos.TypeUnlocked), 1},
		{"an op that ended before a bound another relied on", lockState{Now: ms(100)}, request{Kind: chaos.GetInfo}, def(chaos.TypeLockDoesNotExist), 0},
		{"unknown try-lock on a lock that may be live or over", live, request{Kind: chaos.TryLock, Owner: "b"}, reply{End: infinity}, 2},
		{"unknown unlock of one's own lock", live, request{Kind: chaos.Unlock, Owner: "a"}, reply{End: infinity}, 1},
	}
	for _, tc := range cases {
		if got := len(step(tc.s, tc.req, tc.rep)); got != tc.count {
			t.Errorf("%s: %d successors, want %d", tc.name, got, tc.count)
		}
	}
}
