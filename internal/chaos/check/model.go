package check

import (
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// The sequential specification of one persistent lock, as porcupine sees
// it. The model is nondeterministic because the client cannot tell, at an
// op's linearization point, whether a lease past its sure end (lease.go) is
// still live, whether an expired entry was already garbage-collected, and
// whether an op with an unknown outcome took effect: Step returns every
// state the contract allows and porcupine keeps the set.

// request is an operation's input: what was asked and when.
type request struct {
	ID     int
	Kind   chaos.Kind
	Owner  string
	TTL    time.Duration
	Wait   time.Duration
	Invoke time.Duration
	// MinEnd is the instant until which the lease this op would set
	// (grant or extend) surely lasts: Invoke + TTL - slack.
	MinEnd time.Duration
}

// reply is an operation's output: what the client was told and by when.
type reply struct {
	Definite bool
	Type     int
	Token    int64
	Holder   string
	// End bounds the linearization point from above: Complete for a
	// definite reply, infinity for an unknown outcome.
	End time.Duration
}

// lockState is the model's view of one lock. It is a comparable value, so
// porcupine merges equal states with ==; fields that do not matter in a
// state are kept zero so equal situations compare equal.
type lockState struct {
	// Held: an entry exists (live, or expired and not yet collected).
	Held  bool
	Owner string
	// Token is the entry's fencing token when TokenKnown. A grant whose
	// reply was lost has an unknown token, only known to be above Floor;
	// the first reply that shows it fixes it.
	Token      int64
	TokenKnown bool
	Floor      int64
	// MinEnd: the lease surely lasts until then (see lease.go); after it
	// the entry may be live or expired.
	MinEnd time.Duration
	// Expired is set when a logged command (an extend or a stranger's
	// unlock answered LockDoesNotExist) saw the entry expired. The lease
	// clock in the log never runs backwards, so every later command and
	// read sees it expired too. Reads do not set it: a read is not logged,
	// and a new leader resumes the lease clock from the log, so a lease a
	// read saw end can legitimately be live again on the next leader.
	Expired bool
	// Last bounds every token granted so far: a fresh grant must return
	// a larger one. It counts a grant with an unknown token as Last+1,
	// the least it can be.
	Last int64
	// Now bounds the current linearization point from below with what
	// the ops so far relied on: an op that found a lease over happened at
	// or after that lease's MinEnd, and so did every op ordered after it.
	// This matters for ops with an unknown outcome, which may otherwise
	// claim an expiry "at the end of time" and still be ordered before an
	// op that completed long before the lease could end.
	Now time.Duration
}

func initialState() lockState { return lockState{Last: -1} }

// live: the lock may be live at the linearization point. Leases can be
// lengthened without bound, so any entry not seen expired may still be.
func (s lockState) live() bool { return s.Held && !s.Expired }

// expired: the lock may be expired at a linearization point no later than
// at; before MinEnd it surely is not. (An entry marked Expired always
// passes: its finder set Now to MinEnd, and step refuses ops that end
// before Now.)
func (s lockState) expired(at time.Duration) bool { return s.Held && at >= s.MinEnd }

// free: no entry at all.
func (s lockState) free() bool { return !s.Held }

// overNow returns s as seen by an op that found the lease over: from now
// on the linearization point is at least the lease's MinEnd. A free lock
// has no lease to find over.
func (s lockState) overNow() lockState {
	if s.Held {
		s.Now = max(s.Now, s.MinEnd)
	}
	return s
}

// grant is a fresh grant to the request's owner with a known token; the old
// entry, if any, was over.
func (s lockState) grant(req request, token int64) lockState {
	return lockState{Held: true, Owner: req.Owner, Token: token, TokenKnown: true, MinEnd: req.MinEnd, Last: token, Now: s.overNow().Now}
}

// grantUnknown is a fresh grant whose reply was lost.
func (s lockState) grantUnknown(req request) lockState {
	return lockState{Held: true, Owner: req.Owner, Floor: s.Last, MinEnd: req.MinEnd, Last: s.Last + 1, Now: s.overNow().Now}
}

// released drops the entry; tokens keep growing from Last.
func (s lockState) released() lockState { return lockState{Last: s.Last, Now: s.Now} }

// expire marks the entry seen expired by a logged command.
func (s lockState) expire() lockState {
	s = s.overNow()
	s.Expired = true
	return s
}

// withToken checks a token shown for the current entry, fixing it if it was
// unknown.
func (s lockState) withToken(token int64) (lockState, bool) {
	if s.TokenKnown {
		return s, token == s.Token
	}
	if token <= s.Floor {
		return s, false
	}
	s.Token, s.TokenKnown, s.Floor = token, true, 0
	s.Last = max(s.Last, token)
	return s, true
}

// step returns every state the lock can be in after req answered rep, or
// none if the contract does not allow that answer from s.
//
// An op whose outcome is unknown (rep.Definite false, End infinity) may
// have taken effect at any point after its invocation, or never. Its step
// gives the states of taking effect at this point. "Never" needs no branch
// of its own: porcupine may always linearize such an op last, after every
// other op, where its effect is observed by nobody; and each such step
// below has a successor from every state, so placing it last never fails.
func step(s lockState, req request, rep reply) []lockState {
	if rep.End < s.Now {
		// An op ordered earlier relied on a time this one ended before:
		// this order of ops is impossible.
		return nil
	}
	switch req.Kind {
	case chaos.TryLock:
		return stepTryLock(s, req, rep)
	case chaos.Extend:
		return stepExtend(s, req, rep)
	case chaos.Unlock:
		return stepUnlock(s, req, rep)
	case chaos.ForceUnlock:
		return stepForceUnlock(s, rep)
	case chaos.GetInfo:
		return stepGetInfo(s, rep)
	}
	return nil
}

// stepTryLock: free or expired → Locked with a new, larger token; live and
// the requester's → Locked with the same token, lease unchanged; live and
// another's → Busy naming the holder. A try-lock that waited and got Busy
// is treated like any Busy: true at some point of its interval.
func stepTryLock(s lockState, req request, rep reply) []lockState {
	at := rep.End
	var out []lockState
	if !rep.Definite {
		// Applied here: Busy or an idempotent re-lock if the lock may be
		// live (nothing changes), a grant if it may be free or over.
		// (A waiting grant released at once because the client hung up
		// is, to every later op, the same as "never applied", with the
		// token it burnt only making later tokens larger.)
		if s.live() {
			out = append(out, s)
		}
		if s.free() || s.expired(at) {
			out = append(out, s.grantUnknown(req))
		}
		return out
	}
	switch rep.Type {
	case chaos.TypeLocked:
		if (s.free() || s.expired(at)) && rep.Token > s.Last {
			out = append(out, s.grant(req, rep.Token))
		}
		if s.live() && s.Owner == req.Owner {
			if n, ok := s.withToken(rep.Token); ok {
				out = append(out, n)
			}
		}
	case chaos.TypeBusy:
		if s.live() && s.Owner != req.Owner && s.Owner == rep.Holder {
			out = append(out, s)
		}
	}
	return out
}

// stepExtend: live and the requester's → Extended, same token, lease now
// at least Invoke+TTL (an extend may also shorten it); free or expired →
// LockDoesNotExist; live and another's → InvalidOwner.
func stepExtend(s lockState, req request, rep reply) []lockState {
	at := rep.End
	var out []lockState
	if !rep.Definite {
		// Applied here: the requester's live lease moves, or (over, free,
		// another's) nothing changes.
		out = append(out, s)
		if s.live() && s.Owner == req.Owner {
			n := s
			n.MinEnd = req.MinEnd
			out = append(out, n)
		}
		return out
	}
	switch rep.Type {
	case chaos.TypeExtended:
		if s.live() && s.Owner == req.Owner {
			if n, ok := s.withToken(rep.Token); ok {
				n.MinEnd = req.MinEnd
				out = append(out, n)
			}
		}
	case chaos.TypeLockDoesNotExist:
		if s.free() {
			out = append(out, s)
		}
		if s.expired(at) {
			out = append(out, s.expire())
		}
	case chaos.TypeInvalidOwner:
		if s.live() && s.Owner != req.Owner {
			out = append(out, s)
		}
	}
	return out
}

// stepUnlock: the requester's entry, live or expired → Unlocked; but an
// expired entry may already be collected, so LockDoesNotExist is allowed
// (and means it is gone) once the requester's entry may be expired. No
// entry → LockDoesNotExist; another's live entry → InvalidOwner; another's
// expired entry → LockDoesNotExist (the table reports a stranger's expired
// entry as missing).
func stepUnlock(s lockState, req request, rep reply) []lockState {
	at := rep.End
	own := s.Held && s.Owner == req.Owner
	var out []lockState
	if !rep.Definite {
		// Applied here: the requester's entry goes (released, or it was
		// collected); anything else is refused unchanged.
		if own {
			return []lockState{s.released()}
		}
		return []lockState{s}
	}
	switch rep.Type {
	case chaos.TypeUnlocked:
		if own && (s.live() || s.expired(at)) {
			out = append(out, s.released())
		}
	case chaos.TypeLockDoesNotExist:
		if s.free() {
			out = append(out, s)
		}
		if own && s.expired(at) {
			out = append(out, s.overNow().released())
		}
		if s.Held && !own && s.expired(at) {
			out = append(out, s.expire())
		}
	case chaos.TypeInvalidOwner:
		if s.Held && !own && s.live() {
			out = append(out, s)
		}
	}
	return out
}

// stepForceUnlock: live → Unlocked; free or expired → LockDoesNotExist;
// the entry is gone either way.
func stepForceUnlock(s lockState, rep reply) []lockState {
	at := rep.End
	var out []lockState
	if !rep.Definite {
		if s.Held {
			return []lockState{s.released()}
		}
		return []lockState{s}
	}
	switch rep.Type {
	case chaos.TypeUnlocked:
		if s.live() {
			out = append(out, s.released())
		}
	case chaos.TypeLockDoesNotExist:
		if s.free() {
			out = append(out, s)
		}
		if s.expired(at) {
			out = append(out, s.overNow().released())
		}
	}
	return out
}

// stepGetInfo: live → Got with the holder and token; free or expired →
// LockDoesNotExist. A read changes nothing (see lockState.Expired).
func stepGetInfo(s lockState, rep reply) []lockState {
	at := rep.End
	var out []lockState
	if !rep.Definite {
		return []lockState{s}
	}
	switch rep.Type {
	case chaos.TypeGot:
		if s.live() && s.Owner == rep.Holder {
			if n, ok := s.withToken(rep.Token); ok {
				out = append(out, n)
			}
		}
	case chaos.TypeLockDoesNotExist:
		if s.free() {
			out = append(out, s)
		}
		if s.expired(at) {
			out = append(out, s.overNow())
		}
	}
	return out
}

// normalize forgets what no later op can observe, so that states which
// differ only there merge (the search's memo is keyed by state): porcupine
// linearizes an op only when it was invoked before every op still pending
// returned, so each later op ends at or after req's Invoke. A time bound at
// or before that instant therefore constrains nothing: a Now there never
// fails a later op, and a MinEnd there lets every later op see the lease
// over (as zero does). An entry seen expired keeps no MinEnd: its Now
// already carries the bound.
func normalize(s lockState, req request) lockState {
	if s.Now <= req.Invoke {
		s.Now = 0
	}
	if s.MinEnd <= req.Invoke || s.Expired {
		s.MinEnd = 0
	}
	return s
}

// hashState mixes every field (FNV-1a style); equal states hash equally.
func hashState(s lockState) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	mix := func(v uint64) { h = (h ^ v) * prime }
	for i := 0; i < len(s.Owner); i++ {
		mix(uint64(s.Owner[i]))
	}
	flags := uint64(0)
	if s.Held {
		flags |= 1
	}
	if s.TokenKnown {
		flags |= 2
	}
	if s.Expired {
		flags |= 4
	}
	mix(flags)
	mix(uint64(s.Token))
	mix(uint64(s.Floor))
	mix(uint64(s.MinEnd))
	mix(uint64(s.Last))
	mix(uint64(s.Now))
	return h
}

// lockModel is the porcupine model of one lock (the caller partitions the
// history by lock).
func lockModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []interface{} { return []interface{}{initialState()} },
		Step: func(state, input, output interface{}) []interface{} {
			req := input.(request)
			next := step(state.(lockState), req, output.(reply))
			out := make([]interface{}, len(next))
			for i, n := range next {
				out[i] = normalize(n, req)
			}
			return out
		},
		Equal:             func(a, b interface{}) bool { return a.(lockState) == b.(lockState) },
		Hash:              func(s interface{}) uint64 { return hashState(s.(lockState)) },
		DescribeOperation: func(input, output interface{}) string { return describeOperation(input.(request), output.(reply)) },
		DescribeState:     func(s interface{}) string { return describeState(s.(lockState)) },
		DescribeOperationMetadata: func(m interface{}) string {
			if m == nil {
				return ""
			}
			return m.(string)
		},
	}
	return nm.ToModel()
}
