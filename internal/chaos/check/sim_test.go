package check

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// A simulated Kahuna partition, correct by construction, driven by
// simulated clients on a simulated clock. It produces histories that obey
// the contract while exercising everything the checkers must tolerate:
// concurrency, expiry, leases lengthened by leader changes (and reads that
// see a lease live again after one), garbage collection of expired entries,
// millisecond truncation of the leader's stamps, waiting try-locks,
// partition-wide token counters with gaps, lost ephemeral locks, replies
// lost after or without the effect, and effects landing after the client
// gave up.

type simParams struct {
	clients, opsPerClient int
	resources             []string
	pIndefinite           float64
	pEphemeral            float64
	// leaderEvery is the mean time between leader changes.
	leaderEvery time.Duration
	// truncate stamps the lease clock in whole milliseconds, as the
	// leader does; the checkers then need a millisecond of LeaseSlack.
	truncate bool
}

// simEntry is a lock table entry.
type simEntry struct {
	owner   string
	token   int64
	expires time.Duration // lease clock
}

// simServer follows pkg/fsm/table.go on a lease clock built like
// pkg/fsm/machine.go's: lease = max(last logged lease, anchor + elapsed),
// re-anchored at the last logged lease on every leader change.
type simServer struct {
	rng      *rand.Rand
	truncate bool
	tables   [2]map[string]simEntry // by durability
	fence    int64                  // persistent counter, shared by all resources
	ephFence int64
	logged   time.Duration
	anchor   struct{ lease, real time.Duration }
}

func newSimServer(rng *rand.Rand, truncate bool) *simServer {
	s := &simServer{rng: rng, truncate: truncate}
	s.tables[0], s.tables[1] = map[string]simEntry{}, map[string]simEntry{}
	return s
}

func (s *simServer) lease(t time.Duration) time.Duration {
	l := s.anchor.lease + t - s.anchor.real
	if s.truncate {
		l = l.Truncate(time.Millisecond)
	}
	return max(s.logged, l)
}

// leaderChange: the new leader resumes the lease clock from the log, which
// holds no reads; the ephemeral table is lost, and ephemeral tokens move to
// a fresh block above every earlier one.
func (s *simServer) leaderChange(t time.Duration) {
	s.anchor.lease, s.anchor.real = s.logged, t
	s.tables[chaos.Ephemeral] = map[string]simEntry{}
	s.ephFence = (s.ephFence>>20 + 1) << 20
}

func (s *simServer) nextToken(dur int) int64 {
	if dur == chaos.Ephemeral {
		s.ephFence++
		return s.ephFence
	}
	// Other resources of the partition take tokens too: leave gaps.
	s.fence += 1 + int64(s.rng.Intn(3))
	return s.fence
}

// apply runs one op at real time t and returns its reply.
func (s *simServer) apply(t time.Duration, o chaos.Op) chaos.Reply {
	now := s.lease(t)
	tab := s.tables[o.Durability]
	if o.Durability == chaos.Persistent && o.Kind != chaos.GetInfo {
		s.logged = now // a logged command records its time
	}
	e, ok := tab[o.Resource]
	if ok && e.expires <= now && o.Kind != chaos.GetInfo && s.rng.Intn(4) == 0 {
		delete(tab, o.Resource) // the periodic expire command got there first
		ok = false
	}
	live := ok && e.expires > now
	switch o.Kind {
	case chaos.TryLock:
		if live {
			if e.owner == o.Owner {
				return chaos.Reply{Type: chaos.TypeLocked, Token: e.token}
			}
			return chaos.Reply{Type: chaos.TypeBusy, Holder: e.owner}
		}
		e = simEntry{owner: o.Owner, token: s.nextToken(o.Durability), expires: now + o.TTL}
		tab[o.Resource] = e
		return chaos.Reply{Type: chaos.TypeLocked, Token: e.token}
	case chaos.Extend:
		if !live {
			return chaos.Reply{Type: chaos.TypeLockDoesNotExist}
		}
		if e.owner != o.Owner {
			return chaos.Reply{Type: chaos.TypeInvalidOwner}
		}
		e.expires = now + o.TTL
		tab[o.Resource] = e
		return chaos.Reply{Type: chaos.TypeExtended, Token: e.token}
	case chaos.Unlock:
		if !ok || (e.owner != o.Owner && !live) {
			return chaos.Reply{Type: chaos.TypeLockDoesNotExist}
		}
		if e.owner != o.Owner {
			return chaos.Reply{Type: chaos.TypeInvalidOwner}
		}
		delete(tab, o.Resource)
		return chaos.Reply{Type: chaos.TypeUnlocked}
	case chaos.ForceUnlock:
		delete(tab, o.Resource)
		if !live {
			return chaos.Reply{Type: chaos.TypeLockDoesNotExist}
		}
		return chaos.Reply{Type: chaos.TypeUnlocked}
	case chaos.GetInfo:
		if !live {
			return chaos.Reply{Type: chaos.TypeLockDoesNotExist}
		}
		return chaos.Reply{Type: chaos.TypeGot, Holder: e.owner, Token: e.token}
	}
	return chaos.Reply{Type: chaos.TypeErrored}
}

// Events of the simulation, ordered by time.
type simEventKind int

const (
	evInvoke simEventKind = iota
	evApply
	evReply
	evGiveUp
	evLeader
)

type simEvent struct {
	at   time.Duration
	seq  int
	kind simEventKind
	n    int // client (evInvoke) or op index
}

type simQueue []simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// simOp is an op in flight.
type simOp struct {
	op        chaos.Op
	handle    chaos.Handle
	lost      bool // the client will never hear the reply
	applied   bool
	reply     chaos.Reply
	answered  bool // the client has been told (or gave up)
	deadline  time.Duration
	scheduled bool // an apply event is pending
}

type sim struct {
	p      simParams
	rng    *rand.Rand
	srv    *simServer
	rec    *chaos.Recorder
	now    time.Duration
	q      simQueue
	seq    int
	ops    []*simOp
	issued []int
}

func newSim(seed int64, p simParams) *sim {
	rng := rand.New(rand.NewSource(seed))
	s := &sim{p: p, rng: rng, srv: newSimServer(rng, p.truncate), issued: make([]int, p.clients)}
	s.rec = chaos.NewRecorderWithClock(func() time.Duration { return s.now })
	return s
}

func (s *sim) at(d time.Duration, k simEventKind, n int) {
	s.seq++
	heap.Push(&s.q, simEvent{at: s.now + d, seq: s.seq, kind: k, n: n})
}

// uniform draws a duration in [lo, hi) at microsecond resolution.
func (s *sim) uniform(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int63n(int64((hi-lo)/time.Microsecond)))*time.Microsecond
}

// request draws client c's next op.
func (s *sim) request(c int) chaos.Op {
	o := chaos.Op{Client: c, Resource: s.p.resources[s.rng.Intn(len(s.p.resources))], Durability: chaos.Persistent}
	if s.rng.Float64() < s.p.pEphemeral {
		o.Durability = chaos.Ephemeral
	}
	owner := fmt.Sprintf("o%d", c)
	if s.rng.Intn(5) == 0 {
		// Sometimes another client's owner: concurrent idempotent retries.
		owner = fmt.Sprintf("o%d", s.rng.Intn(s.p.clients))
	}
	switch r := s.rng.Intn(100); {
	case r < 35:
		o.Kind, o.Owner, o.TTL = chaos.TryLock, owner, s.uniform(10*time.Millisecond, 120*time.Millisecond)
		if s.rng.Intn(4) == 0 {
			o.Wait = s.uniform(5*time.Millisecond, 80*time.Millisecond)
		}
	case r < 52:
		o.Kind, o.Owner, o.TTL = chaos.Extend, owner, s.uniform(10*time.Millisecond, 120*time.Millisecond)
	case r < 72:
		o.Kind, o.Owner = chaos.Unlock, owner
	case r < 96:
		o.Kind = chaos.GetInfo
	default:
		o.Kind = chaos.ForceUnlock
	}
	return o
}

var errSimTimeout = errors.New("timeout")

// run simulates until every client issued its ops, or until kill (if > 0),
// when everything stops at once. It returns the history up to then.
func (s *sim) run(kill time.Duration) chaos.History {
	for c := range s.p.clients {
		s.at(s.uniform(0, 5*time.Millisecond), evInvoke, c)
	}
	if s.p.leaderEvery > 0 {
		s.at(time.Duration(s.rng.ExpFloat64()*float64(s.p.leaderEvery)), evLeader, 0)
	}
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(simEvent)
		if kill > 0 && e.at >= kill {
			heap.Push(&s.q, e)
			s.now = kill
			break
		}
		s.now = e.at
		s.handle(e)
		if e.kind == evLeader && s.busy() {
			s.at(time.Duration(s.rng.ExpFloat64()*float64(s.p.leaderEvery))+time.Microsecond, evLeader, 0)
		}
	}
	return s.rec.History()
}

// busy: some client still has work or some op is still in flight.
func (s *sim) busy() bool {
	for _, e := range s.q {
		if e.kind != evLeader {
			return true
		}
	}
	return false
}

func (s *sim) handle(e simEvent) {
	switch e.kind {
	case evInvoke:
		c := e.n
		if s.issued[c] >= s.p.opsPerClient {
			return
		}
		s.issued[c]++
		op := s.request(c)
		so := &simOp{op: op, handle: s.rec.Begin(op), deadline: s.now + op.Wait}
		so.op.ID, so.op.Invoke = int(so.handle), s.now
		s.ops = append(s.ops, so)
		i := len(s.ops) - 1
		if s.rng.Float64() < s.p.pIndefinite {
			so.lost = true
			s.at(s.uniform(20*time.Millisecond, 60*time.Millisecond), evGiveUp, i)
			if s.rng.Intn(2) == 0 {
				// Applied, possibly after the client gave up.
				so.scheduled = true
				s.at(s.uniform(0, 100*time.Millisecond), evApply, i)
			}
			return
		}
		so.scheduled = true
		s.at(s.uniform(0, 15*time.Millisecond), evApply, i)
	case evApply:
		so := s.ops[e.n]
		so.scheduled = false
		rep := s.srv.apply(s.now, so.op)
		if rep.Type == chaos.TypeBusy && so.op.Wait > 0 && s.now < so.deadline {
			// A waiter looks again on release or expiry; polling at
			// random moments up to the deadline allows the same outcomes.
			so.scheduled = true
			s.at(min(s.uniform(time.Millisecond, 10*time.Millisecond), so.deadline-s.now), evApply, e.n)
			return
		}
		so.applied, so.reply = true, rep
		if so.lost && so.op.Wait > 0 && rep.Type == chaos.TypeLocked && s.rng.Intn(2) == 0 {
			// The client hung up while waiting: the server releases the
			// grant at once (pkg/partition's abandoned). Releasing a
			// re-lock would be wrong, so only a fresh grant (a token no
			// earlier op of this owner saw) is released.
			if !s.sawToken(so.op, rep.Token) {
				unlock := so.op
				unlock.Kind = chaos.Unlock
				s.srv.apply(s.now, unlock)
			}
		}
		if !so.lost {
			s.at(s.uniform(0, 15*time.Millisecond), evReply, e.n)
		}
	case evReply:
		so := s.ops[e.n]
		_ = s.rec.End(so.handle, so.reply, nil)
		so.answered = true
		s.at(s.uniform(0, 10*time.Millisecond), evInvoke, so.op.Client)
	case evGiveUp:
		so := s.ops[e.n]
		if s.rng.Intn(2) == 0 {
			_ = s.rec.End(so.handle, chaos.Reply{Type: chaos.TypeMustRetry, Error: "leader changed"}, nil)
		} else {
			_ = s.rec.End(so.handle, chaos.Reply{}, errSimTimeout)
		}
		so.answered = true
		s.at(s.uniform(0, 10*time.Millisecond), evInvoke, so.op.Client)
	case evLeader:
		s.srv.leaderChange(s.now)
	}
}

// sawToken: an op of the same owner and lock applied before got token.
func (s *sim) sawToken(o chaos.Op, token int64) bool {
	for _, x := range s.ops {
		if x.applied && x.op.ID != o.ID && x.op.Owner == o.Owner && x.op.Key() == o.Key() && x.reply.Token == token &&
			(x.reply.Type == chaos.TypeLocked || x.reply.Type == chaos.TypeExtended) {
			return true
		}
	}
	return false
}

// restart models a full-cluster restart after run(kill): every node comes
// back after downtime, a new leader re-anchors the lease clock, writes
// that were committed but not yet applied land (or were never committed),
// and then every persistent resource is read once. It returns the reads.
func (s *sim) restart(downtime time.Duration) []chaos.Op {
	s.now += downtime
	s.srv.leaderChange(s.now)
	for _, so := range s.ops {
		if so.scheduled && so.op.Kind != chaos.GetInfo && s.rng.Intn(2) == 0 {
			s.srv.apply(s.now, so.op)
		}
		so.scheduled = false
	}
	s.q = nil
	first := len(s.rec.History().Ops)
	for _, r := range s.p.resources {
		op := chaos.Op{Client: s.p.clients, Kind: chaos.GetInfo, Resource: r, Durability: chaos.Persistent}
		h := s.rec.Begin(op)
		s.now += s.uniform(0, 2*time.Millisecond)
		rep := s.srv.apply(s.now, op)
		s.now += s.uniform(0, 2*time.Millisecond)
		_ = s.rec.End(h, rep, nil)
	}
	return s.rec.History().Ops[first:]
}
