package nemesis

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"slices"
	"strings"
	"time"
)

// The membership nemeses (CONTRACT §7). They run on a schedule of their
// own, one change at a time, while the other nemeses keep striking.
const (
	// Join starts a new node (a new ID, an empty data directory, --join
	// and no --bootstrap-expect) and waits until it is a voter of every
	// partition and ready.
	Join Kind = "join"
	// Remove removes a member through POST /v1/cluster/remove-node, sent
	// to another member or, now and then, to the member itself.
	Remove Kind = "remove"
	// Replace kills a member with kill -9, deletes its data directory,
	// starts a new node in its place with --join, and once that one is a
	// voter removes the dead member: through the API, or by waiting for
	// the cluster's --dead-node-timeout.
	Replace Kind = "replace"
)

// Membership lists the membership nemeses.
func Membership() []Kind { return []Kind{Join, Remove, Replace} }

// IsMembership reports whether k changes the cluster's membership.
func IsMembership(k Kind) bool { return slices.Contains(Membership(), k) }

// Dynamic is a Cluster whose membership can change. Its node indexes are
// identities: a node that joins gets the next index (Size grows) and an
// index is never given to another node. Members lists the nodes that
// belong to the cluster now; the other nemeses strike only those.
type Dynamic interface {
	Cluster
	// Members are the indexes of the nodes in the cluster (joined,
	// joining, or being removed), in order.
	Members() []int
	// ID is node i's node ID.
	ID(i int) string
	// Join starts a new node that joins the cluster, with a new ID and an
	// empty data directory, and returns its index without waiting for it
	// to join.
	Join() (int, error)
	// Wipe deletes node i's data directory; the node must be down.
	Wipe(i int) error
	// Retire stops node i for good (kill -9 if it still runs) and takes
	// it out of Members; what it used (addresses, a network namespace)
	// may go to a later node.
	Retire(i int) error
	// RemoveNode sends POST /v1/cluster/remove-node {"node": id} to node
	// via and returns the HTTP status and the reply's error text; err is
	// set only when no HTTP reply came within timeout.
	RemoveNode(via int, id string, timeout time.Duration) (status int, msg string, err error)
	// Config is every partition's Raft configuration as node i sees it.
	Config(i int) ([]PartitionConfig, error)
	// Ready is node i's /readyz: whether it is ready, and why not.
	Ready(i int) (ok bool, reason string, err error)
	// StartRemoved starts the stopped node i once more on its old data
	// directory and reports whether it refused to start within timeout;
	// either way it is stopped again.
	StartRemoved(i int, timeout time.Duration) (refused bool, detail string, err error)
	// DeadNodeTimeout is the nodes' --dead-node-timeout; 0 if failed
	// members are never removed automatically.
	DeadNodeTimeout() time.Duration
}

// PartitionConfig is one partition's Raft configuration, by node ID.
type PartitionConfig struct {
	Voters, NonVoters []string
}

// MembershipLimits bound the membership schedule: the cluster grows to
// Max members and shrinks back to Min, and a removal never leaves fewer
// than Min (and never fewer than three) voters.
type MembershipLimits struct {
	Min, Max int
	// JoinTimeout bounds how long a new node may take to become a voter
	// of every partition; StopTimeout how long a removed node that still
	// runs may take to notice and stop serving.
	JoinTimeout, StopTimeout time.Duration
}

func (l MembershipLimits) withDefaults(size int) MembershipLimits {
	l.Min = max(l.Min, 3)
	if l.Max == 0 {
		l.Max = max(size, l.Min) + 2
	}
	l.Max = max(l.Max, l.Min)
	if l.JoinTimeout == 0 {
		l.JoinTimeout = 2 * time.Minute
	}
	if l.StopTimeout == 0 {
		l.StopTimeout = 15 * time.Second
	}
	return l
}

// The waits of a membership change.
const (
	// removeTimeout bounds one remove-node request (the server gives up
	// after 30 s and answers 503).
	removeTimeout = 45 * time.Second
	// goneTimeout bounds how long, after a 200, the members that answer
	// may still list the removed node in a configuration (they learn it
	// from their partitions' logs).
	goneTimeout = 30 * time.Second
	// settleTimeout bounds the retries of an unfinished removal after the
	// faults stopped.
	settleTimeout = 3 * time.Minute
	// restartTimeout is how long a removed node started again on its old
	// data has to refuse.
	restartTimeout = 20 * time.Second
)

// changer carries out membership changes, one at a time.
type changer struct {
	c      Dynamic
	in     *Injector // shares its guard with the fault schedule
	rng    *rand.Rand
	kinds  []Kind
	lim    MembershipLimits
	now    func() time.Duration
	log    *slog.Logger
	shrink bool // heading for Min rather than Max
	// pending are the members whose removal is under way or unfinished
	// (an answer other than 200 or 404): they are removed, in order,
	// before any other change.
	pending []*removal
}

// removal is a member to remove.
type removal struct {
	node int
	// dead: it was killed (a replaced node, or a new node that never
	// joined) and is never started again.
	dead bool
	// unsure is set once a removal of the node may still be under way:
	// an answer of 503 or none, or the dead-node timeout.
	unsure bool
}

// owe adds r to the pending removals, unless its node is there already;
// it returns the pending entry.
func (m *changer) owe(r removal) *removal {
	for _, p := range m.pending {
		if p.node == r.node {
			return p
		}
	}
	m.pending = append(m.pending, &r)
	return &r
}

// settled takes node off the pending removals.
func (m *changer) settled(node int) {
	m.pending = slices.DeleteFunc(m.pending, func(p *removal) bool { return p.node == node })
}

// run makes changes until ctx ends, pausing quiet to 3 × quiet between
// two, then finishes an unfinished removal.
func (m *changer) run(ctx context.Context, quiet time.Duration) []Fault {
	var faults []Fault
	pause := func() bool {
		return sleep(ctx, quiet+time.Duration(m.rng.Int63n(int64(2*quiet)+1)))
	}
	if !pause() {
		return nil
	}
	for ctx.Err() == nil {
		k, ok := m.next()
		if !ok {
			pause()
			continue
		}
		f := m.change(k)
		faults = append(faults, f)
		if !pause() {
			break
		}
	}
	deadline := time.Now().Add(settleTimeout)
	for len(m.pending) > 0 && time.Now().Before(deadline) {
		n := len(m.pending)
		f := m.change(Remove)
		f.Detail += " (after the faults stopped)"
		faults = append(faults, f)
		if len(m.pending) >= n {
			time.Sleep(2 * time.Second)
		}
	}
	for _, p := range m.pending {
		id := m.c.ID(p.node)
		faults = append(faults, Fault{Kind: Remove, Start: m.now(), Healed: m.now(), Detail: id,
			Outcome: "unfinished", Anomaly: fmt.Sprintf("the removal of %s did not finish within %v after the faults stopped", id, settleTimeout)})
	}
	return faults
}

// next picks the next change: an unfinished removal first; else, a
// third of the time a replacement, otherwise a step towards Max while
// growing and towards Min while shrinking.
func (m *changer) next() (Kind, bool) {
	n := len(m.c.Members())
	if len(m.pending) > 0 {
		// A removal that would leave fewer than Min voters (a replaced
		// node whose replacement never joined) waits for a join.
		if left, ok := m.votersLeft(m.pending[0].node); ok && left < m.lim.Min {
			if slices.Contains(m.kinds, Join) && n < m.lim.Max+1 {
				return Join, true
			}
			return "", false
		}
		return Remove, true
	}
	can := func(k Kind) bool {
		if !slices.Contains(m.kinds, k) {
			return false
		}
		switch k {
		case Join:
			return n < m.lim.Max
		case Remove:
			return n > m.lim.Min
		}
		return n >= m.lim.Min
	}
	if n >= m.lim.Max {
		m.shrink = true
	}
	if n <= m.lim.Min {
		m.shrink = false
	}
	step, back := Join, Remove
	if m.shrink {
		step, back = Remove, Join
	}
	switch replace := can(Replace) && m.rng.Intn(3) == 0; {
	case replace:
		return Replace, true
	case can(step):
		return step, true
	case can(Replace):
		return Replace, true
	case can(back):
		return back, true
	}
	return "", false
}

func (m *changer) change(k Kind) Fault {
	f := Fault{Kind: k, Start: m.now()}
	m.log.Info("membership change", "nemesis", k)
	switch k {
	case Join:
		m.join(&f)
	case Remove:
		m.remove(&f)
	case Replace:
		m.replace(&f)
	}
	f.Healed = m.now()
	m.log.Info("membership change done", "nemesis", k, "detail", f.Detail, "outcome", f.Outcome, "anomaly", f.Anomaly, "err", f.Err)
	return f
}

// join adds a new node and waits until it is a voter everywhere.
func (m *changer) join(f *Fault) {
	i, took, ok := m.addNode(f)
	if !ok {
		return
	}
	f.Detail = fmt.Sprintf("%s (voter after %v)", m.c.ID(i), took.Round(time.Millisecond))
	f.Outcome = "joined"
}

// addNode starts a new node, holds it while it joins, and waits until it
// is a voter of every partition and ready. ok is false if it never was
// (f says why).
func (m *changer) addNode(f *Fault) (i int, took time.Duration, ok bool) {
	start := time.Now()
	// Held before it exists, so that no other fault strikes it before
	// it is a voter: the next index is the new node's.
	next := m.c.Size()
	m.in.hold(Join, next)
	i, err := m.c.Join()
	if err != nil {
		m.in.release(next)
		f.Err = fmt.Errorf("starting a new node: %w", err)
		return -1, 0, false
	}
	if i != next {
		m.in.hold(Join, i)
		m.in.release(next)
	}
	defer m.in.release(i)
	why, joined := m.waitJoined(i)
	if !joined {
		f.Detail = m.c.ID(i)
		f.Outcome = "never joined"
		f.Anomaly = fmt.Sprintf("new node %s was not a ready voter of every partition within %v: %s", m.c.ID(i), m.lim.JoinTimeout, why)
		// Out of the way, and out of the cluster's configurations it may
		// be in as a non-voter; the run goes on so that the other checks
		// still judge it.
		m.in.hold(Join, i)
		if err := m.c.Kill(i); err != nil {
			f.Err = fmt.Errorf("kill %s: %w", m.c.ID(i), err)
		}
		m.owe(removal{node: i, dead: true, unsure: true})
		return i, 0, false
	}
	return i, time.Since(start), true
}

// waitJoined waits until node i is ready and, as it sees it, a voter of
// every partition; it returns the last reason it was not.
func (m *changer) waitJoined(i int) (string, bool) {
	deadline := time.Now().Add(m.lim.JoinTimeout)
	why := "no answer yet"
	for time.Now().Before(deadline) {
		ok, reason, err := m.c.Ready(i)
		switch {
		case err != nil:
			why = err.Error()
		case !ok:
			why = reason
		default:
			parts, err := m.c.Config(i)
			if err != nil {
				why = err.Error()
				break
			}
			why = ""
			for p, c := range parts {
				if !slices.Contains(c.Voters, m.c.ID(i)) {
					why = fmt.Sprintf("ready, but not a voter of partition %d (voters %v, non-voters %v)", p, c.Voters, c.NonVoters)
					break
				}
			}
			if why == "" {
				return "", true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return why, false
}

// remove removes a member, never below Min voters: the first pending
// one if a removal is unfinished, else a random one no other fault holds.
func (m *changer) remove(f *Fault) {
	if len(m.pending) > 0 {
		m.removeNode(f, m.pending[0].node, false)
		return
	}
	if len(m.c.Members()) <= m.lim.Min {
		f.Outcome, f.Detail = "skipped", "no member free to remove"
		return
	}
	victim, ok := m.claimVictim(f, Remove)
	if !ok {
		return
	}
	if left, ok := m.votersLeft(victim); !ok || left < m.lim.Min {
		m.in.release(victim)
		f.Outcome, f.Detail = "skipped", fmt.Sprintf("without %s, %d voters would be left (ok %v)", m.c.ID(victim), left, ok)
		return
	}
	m.owe(removal{node: victim})
	m.removeNode(f, victim, false)
}

// claimVictim picks a random member no other fault holds and claims it
// for a change of kind k; if there is none, it marks f skipped.
func (m *changer) claimVictim(f *Fault, k Kind) (int, bool) {
	free := m.in.free()
	if len(free) == 0 {
		f.Outcome, f.Detail = "skipped", fmt.Sprintf("no member free to %s", k)
		return -1, false
	}
	victim := free[m.rng.Intn(len(free))]
	if len(m.in.claim(k, victim)) == 0 {
		f.Outcome, f.Detail = "skipped", fmt.Sprintf("%s was taken by another fault", m.c.ID(victim))
		return -1, false
	}
	return victim, true
}

// replace kills a member, wipes its data, adds a new node and removes
// the dead member.
func (m *changer) replace(f *Fault) {
	victim, ok := m.claimVictim(f, Replace)
	if !ok {
		return
	}
	if err := m.c.Kill(victim); err != nil {
		m.in.release(victim)
		f.Err = fmt.Errorf("kill %s: %w", m.c.ID(victim), err)
		return
	}
	// From here the dead member must be removed, whatever happens; the
	// cluster may do it by itself (the dead-node timeout).
	m.owe(removal{node: victim, dead: true, unsure: true})
	if err := m.c.Wipe(victim); err != nil {
		f.Err = fmt.Errorf("wipe %s: %w", m.c.ID(victim), err)
		return
	}
	i, took, ok := m.addNode(f)
	if !ok {
		f.Detail = fmt.Sprintf("%s → %s", m.c.ID(victim), f.Detail)
		return
	}
	head := fmt.Sprintf("%s → %s (voter after %v), ", m.c.ID(victim), m.c.ID(i), took.Round(time.Millisecond))
	m.removeNode(f, victim, m.c.DeadNodeTimeout() > 0 && m.rng.Intn(2) == 0)
	f.Detail = head + f.Detail
}

// removeNode removes victim, a pending removal held by this changer: by
// waiting for the dead-node timeout when auto is set, else (or if that
// does not happen) through the API. On anything but 200 or 404 the
// victim stays pending.
func (m *changer) removeNode(f *Fault, victim int, auto bool) {
	id := m.c.ID(victim)
	r := m.owe(removal{node: victim})
	dead := r.dead
	if auto {
		wait := m.c.DeadNodeTimeout() + goneTimeout
		start := time.Now()
		if m.waitGone(victim, wait) == "" {
			f.Detail = fmt.Sprintf("%s removed by the dead-node timeout after %v", id, time.Since(start).Round(time.Millisecond))
			f.Outcome = "removed (dead-node timeout)"
			m.retire(f, victim, false)
			return
		}
		f.Detail = fmt.Sprintf("%s not removed by the dead-node timeout within %v; ", id, wait)
	}
	via := victim
	others := slices.DeleteFunc(m.in.free(), func(j int) bool { return j == victim })
	if dead || len(others) > 0 && m.rng.Intn(4) != 0 {
		if len(others) == 0 {
			f.Detail += fmt.Sprintf("%s: no other member free to ask", id)
			f.Outcome = "not tried"
			return
		}
		via = others[m.rng.Intn(len(others))]
	}
	// A 409 changes nothing (CONTRACT §7). That can be checked when no
	// other removal of the node can be under way: a live node, and no
	// earlier request for it that may still run.
	var before map[int]bool
	sure := !dead && !r.unsure
	if sure {
		before = m.lacking(victim)
	}
	start := time.Now()
	status, msg, err := m.c.RemoveNode(via, id, removeTimeout)
	took := time.Since(start).Round(time.Millisecond)
	f.Detail += fmt.Sprintf("%s via %s", id, m.c.ID(via))
	switch {
	case err != nil:
		f.Outcome = "no answer"
		f.Detail += fmt.Sprintf(": no answer in %v (%v)", took, shorten(err.Error()))
		r.unsure = true
		return
	case status == 200 || status == 404:
		f.Outcome = fmt.Sprintf("removed (%d)", status)
		f.Detail += fmt.Sprintf(": %d in %v", status, took)
		if status == 404 {
			f.Detail += " (already gone)"
		}
	default:
		// 409 (the removal would leave a partition without a quorum of
		// live voters) and 503 (not finished in time) are answers the
		// contract allows while other faults strike; the node is
		// removed again later.
		f.Outcome = fmt.Sprintf("refused (%d)", status)
		f.Detail += fmt.Sprintf(": %d in %v: %s", status, took, shorten(msg))
		if status != 409 {
			r.unsure = true
		} else if sure {
			for p := range m.lacking(victim) {
				if !before[p] {
					f.Anomaly = fmt.Sprintf("remove-node %s answered 409, which changes nothing, but partition %d no longer has %s", id, p, id)
					break
				}
			}
		}
		return
	}
	if still := m.waitGone(victim, goneTimeout); still != "" {
		f.Anomaly = fmt.Sprintf("remove-node %s answered %d, but %s", id, status, still)
		m.settled(victim)
		m.in.release(victim) // it stays a member: the others may strike it
		return
	}
	m.retire(f, victim, !dead)
}

// votersLeft is the fewest voters a partition keeps without victim, as
// the first other member that answers sees it; ok is false if none did.
func (m *changer) votersLeft(victim int) (left int, ok bool) {
	id := m.c.ID(victim)
	for _, j := range m.c.Members() {
		if j == victim {
			continue
		}
		parts, err := m.c.Config(j)
		if err != nil || len(parts) == 0 {
			continue
		}
		left = -1
		for _, c := range parts {
			n := len(slices.DeleteFunc(slices.Clone(c.Voters), func(v string) bool { return v == id }))
			if left < 0 || n < left {
				left = n
			}
		}
		return left, true
	}
	return 0, false
}

// lacking lists the partitions that some member other than victim that
// answers sees without victim.
func (m *changer) lacking(victim int) map[int]bool {
	id := m.c.ID(victim)
	out := map[int]bool{}
	for _, j := range m.c.Members() {
		if j == victim {
			continue
		}
		parts, err := m.c.Config(j)
		if err != nil {
			continue
		}
		for p, c := range parts {
			if !slices.Contains(c.Voters, id) && !slices.Contains(c.NonVoters, id) {
				out[p] = true
			}
		}
	}
	return out
}

// waitGone waits until no member that answers lists victim in any
// partition's configuration; it returns "" then, else what still does.
func (m *changer) waitGone(victim int, timeout time.Duration) string {
	id := m.c.ID(victim)
	deadline := time.Now().Add(timeout)
	for {
		still := ""
		answered := 0
		for _, j := range m.c.Members() {
			if j == victim {
				continue
			}
			parts, err := m.c.Config(j)
			if err != nil {
				continue // down, paused or restarting: nothing to ask
			}
			answered++
			for p, c := range parts {
				if slices.Contains(c.Voters, id) || slices.Contains(c.NonVoters, id) {
					still = fmt.Sprintf("%s still lists %s in partition %d (voters %v, non-voters %v)", m.c.ID(j), id, p, c.Voters, c.NonVoters)
					break
				}
			}
			if still != "" {
				break
			}
		}
		if still == "" && answered > 0 {
			return ""
		}
		if still == "" {
			still = "no other member answered"
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("after %v %s", timeout, still)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// retire ends a removed node. One that still ran must notice and stop
// serving; it is then killed and started once more on its old data,
// which it must refuse.
func (m *changer) retire(f *Fault, victim int, running bool) {
	defer func() {
		m.settled(victim)
		m.in.release(victim)
	}()
	if running {
		start := time.Now()
		noticed := false
		last := ""
		for time.Since(start) < m.lim.StopTimeout {
			ok, reason, err := m.c.Ready(victim)
			if err == nil && !ok && strings.Contains(reason, "removed") {
				noticed = true
				break
			}
			last = reason
			if err != nil {
				last = err.Error()
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := m.c.Kill(victim); err != nil {
			f.Err = fmt.Errorf("kill removed %s: %w", m.c.ID(victim), err)
			return
		}
		if noticed {
			f.Detail += fmt.Sprintf("; stopped serving after %v", time.Since(start).Round(time.Millisecond))
			refused, detail, err := m.c.StartRemoved(victim, restartTimeout)
			switch {
			case err != nil:
				f.Err = fmt.Errorf("start removed %s again: %w", m.c.ID(victim), err)
				return
			case !refused:
				f.Anomaly = fmt.Sprintf("removed node %s started again on its old data directory: %s", m.c.ID(victim), detail)
			default:
				f.Detail += "; refused to start again"
			}
		} else {
			// Not a safety matter (a removed node is out of every
			// configuration), but the contract says it stops serving.
			f.Detail += fmt.Sprintf("; did not say it was removed within %v (last: %s)", m.lim.StopTimeout, shorten(last))
		}
	}
	if err := m.c.Retire(victim); err != nil {
		f.Err = fmt.Errorf("retire %s: %w", m.c.ID(victim), err)
	}
}

func shorten(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}
