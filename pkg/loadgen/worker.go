package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// maxTrackedType bounds the outcome array; codes above it count as unknown.
const maxTrackedType = int(wire.InvalidOwner)

// stats is one worker's tally; it is only touched by its worker, then merged.
type stats struct {
	requests    uint64
	outcomes    [maxTrackedType + 1]uint64
	unknown     map[wire.Type]uint64 // codes outside the array, rare
	errors      uint64
	badReplies  uint64
	badTokens   uint64
	regressions uint64
	maxUs       int64
	firstError  string
	served      servedTally
	// perEndpoint counts requests by the index of the endpoint sent to.
	perEndpoint []uint64
	// routed requests went to the leader the map named; misrouted ones
	// of them were served by another node (the map was behind).
	routed, misrouted uint64
	// retries are attempts beyond an operation's first (Config.Retry);
	// failed operations ended without a final answer; unfinished ones
	// were still being retried when the run was cancelled.
	retries, failed, unfinished uint64
}

func (s *stats) add(o *stats) {
	s.requests += o.requests
	for i, n := range o.outcomes {
		s.outcomes[i] += n
	}
	for t, n := range o.unknown {
		s.countType(t, n)
	}
	s.errors += o.errors
	s.badReplies += o.badReplies
	s.badTokens += o.badTokens
	s.regressions += o.regressions
	s.maxUs = max(s.maxUs, o.maxUs)
	s.served.add(&o.served)
	if s.perEndpoint == nil {
		s.perEndpoint = make([]uint64, len(o.perEndpoint))
	}
	for i, n := range o.perEndpoint {
		s.perEndpoint[i] += n
	}
	s.routed += o.routed
	s.misrouted += o.misrouted
	s.retries += o.retries
	s.failed += o.failed
	s.unfinished += o.unfinished
	if s.firstError == "" {
		s.firstError = o.firstError
	}
}

func (s *stats) countType(t wire.Type, n uint64) {
	if t >= 0 && int(t) <= maxTrackedType {
		s.outcomes[t] += n
		return
	}
	if s.unknown == nil {
		s.unknown = make(map[wire.Type]uint64)
	}
	s.unknown[t] += n
}

// outcomeMap names each code the way the contract does; codes it does not
// name keep their number.
func (s *stats) outcomeMap() map[string]uint64 {
	m := make(map[string]uint64)
	name := func(t wire.Type) string {
		if n := t.String(); n != "Unknown" {
			return n
		}
		return "type" + strconv.Itoa(int(t))
	}
	for i, n := range s.outcomes {
		if n > 0 {
			m[name(wire.Type(i))] += n
		}
	}
	for t, n := range s.unknown {
		m[name(t)] += n
	}
	return m
}

// worker owns its connections, one random source and one histogram, so the
// hot loop shares nothing with other workers.
type worker struct {
	clients    []*Client     // one per endpoint, dialed on first use
	endpoint   int           // index into Config.Endpoints of the node this worker talks to
	routes     *leaderRoutes // when set, each key goes to its partition's leader instead
	rng        *rand.Rand
	keys       int
	head       []byte // {"resource":"<prefix>
	lockTail   []byte // ","owner":...,"expiresMs":...,"durability":...}
	unlockTail []byte // ","owner":...,"durability":...}
	body       []byte
	lastToken  []int64       // per key: the highest token this worker was granted, -1 if none
	retry      time.Duration // Config.Retry: each operation's deadline for retries, 0 for none
	stop       *atomic.Bool  // set when the run is cancelled; ends retries early
	hist       *hdrhistogram.Histogram
	stats      stats
}

func newWorker(cfg Config, index int, endpoint int, clients []*Client, routes *leaderRoutes) (*worker, error) {
	prefix, err := jsonString(cfg.KeyPrefix)
	if err != nil {
		return nil, err
	}
	owner, err := jsonString(cfg.Owner + strconv.Itoa(index))
	if err != nil {
		return nil, err
	}
	lastToken := make([]int64, cfg.Keys)
	for i := range lastToken {
		lastToken[i] = -1
	}
	d := int(cfg.Durability)
	return &worker{
		clients:    clients,
		endpoint:   endpoint,
		routes:     routes,
		rng:        rand.New(rand.NewPCG(cfg.Seed, uint64(index))),
		keys:       cfg.Keys,
		head:       []byte(`{"resource":"` + prefix),
		lockTail:   fmt.Appendf(nil, `","owner":"%s","expiresMs":%d,"durability":%d}`, owner, cfg.ExpiresMs, d),
		unlockTail: fmt.Appendf(nil, `","owner":"%s","durability":%d}`, owner, d),
		lastToken:  lastToken,
		retry:      cfg.Retry,
		hist:       newHistogram(),
		stats:      stats{perEndpoint: make([]uint64, len(clients))},
	}, nil
}

// jsonString escapes s for use between quotes in a JSON body.
func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode %q: %w", s, err)
	}
	return string(b[1 : len(b)-1]), nil
}

func (w *worker) run(stop *atomic.Bool, measureFrom, stopAt time.Time) {
	w.stop = stop
	var backoff time.Duration
	for !stop.Load() {
		start := time.Now()
		if !start.Before(stopAt) {
			return
		}
		// The unlock is measured with its try-lock, so that grants and
		// unlocks pair up across the edges of the measured period.
		measured := !start.Before(measureFrom)
		key := w.rng.IntN(w.keys)
		to := target{endpoint: w.endpoint}
		if w.routes != nil {
			if e, node, ok := w.routes.lookup(key); ok {
				to = target{endpoint: e, leader: node}
			}
		}
		w.body = w.appendBody(w.body[:0], key, w.lockTail)
		rep, ok := w.do(to, wire.PathTryLock, start, measured)
		if !ok {
			backoff = pause(backoff)
			continue
		}
		backoff = 0
		if rep.Type != wire.Locked {
			continue
		}
		w.checkToken(key, rep, measured)
		w.body = w.appendBody(w.body[:0], key, w.unlockTail)
		if _, ok := w.do(to, wire.PathTryUnlock, time.Now(), measured); !ok {
			backoff = pause(backoff)
		}
	}
}

func (w *worker) appendBody(dst []byte, key int, tail []byte) []byte {
	dst = append(dst, w.head...)
	dst = strconv.AppendInt(dst, int64(key), 10)
	return append(dst, tail...)
}

// target is where a request goes: an endpoint, and the leader expected to
// serve it there when the request was routed ("" otherwise).
type target struct {
	endpoint int
	leader   string
}

// attempt is one request's outcome: a transport error, or a reply and what
// ScanReply made of it.
type attempt struct {
	resp    Response
	rep     Reply
	scanErr error // from ScanReply
	err     error // transport error; nothing else is set
}

// final reports whether a client that retries would stop here: anything but
// a transport error, a reply without a type or a 101.
func (a *attempt) final() bool {
	return a.err == nil && a.scanErr == nil && a.rep.Type != wire.MustRetry
}

// send makes one attempt at endpoint, bounded by the client's timeout and,
// when not zero, by the operation's deadline by.
func (w *worker) send(endpoint int, path string, by time.Time) attempt {
	var a attempt
	a.resp, a.err = w.clients[endpoint].post(path, w.body, by)
	if a.err == nil {
		a.rep, a.scanErr = ScanReply(a.resp.Body)
	}
	return a
}

// do runs one operation and records it if measured: one request, or with
// Config.Retry as many attempts as it takes to get a final answer within
// the deadline. ok is false when the operation got no reply at all (a
// transport error) or was cut short by a cancelled run; a reply without a
// type comes back with Type -1.
func (w *worker) do(to target, path string, start time.Time, measured bool) (rep Reply, ok bool) {
	var by time.Time
	if w.retry > 0 {
		by = start.Add(w.retry)
	}
	a := w.send(to.endpoint, path, by)
	if w.retry > 0 && !a.final() {
		var done bool
		if to, a, done = w.retryOp(to, path, by, measured, a); !done {
			return Reply{}, false
		}
	}
	return w.record(to, &a, start, measured)
}

// Backoff between rounds of retries over the endpoints. Small: a node that
// is down refuses the connection at once, and a 101 comes only after the
// server held the request for as long as it expected a leader soon.
const (
	retryMinBackoff = 10 * time.Millisecond
	retryMaxBackoff = 200 * time.Millisecond
)

// retryOp retries an operation whose attempt a got no final answer, the way
// the Go client does: each retry goes to the next endpoint, and once every
// endpoint has been tried since the last pause, it pauses for a jittered
// backoff. It returns the last attempt and where it went, final or not
// once the deadline by has passed; done is false when the run was cancelled
// first.
func (w *worker) retryOp(to target, path string, by time.Time, measured bool, a attempt) (target, attempt, bool) {
	backoff := retryMinBackoff
	for tries := 1; ; tries++ {
		if tries%len(w.clients) == 0 {
			if d := min(jitter(backoff), time.Until(by)); d > 0 {
				time.Sleep(d)
			}
			backoff = min(2*backoff, retryMaxBackoff)
		}
		if !time.Now().Before(by) {
			return to, a, true // failed: the last attempt stands
		}
		if w.stop.Load() {
			if measured {
				w.stats.unfinished++
			}
			return to, a, false
		}
		if measured {
			w.stats.retries++
			w.countRetried(&a)
		}
		to = target{endpoint: (to.endpoint + 1) % len(w.clients)}
		if a = w.send(to.endpoint, path, by); a.final() {
			return to, a, true
		}
	}
}

// jitter spreads a backoff over [d/2, d), so that workers that failed
// together do not retry together.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2)
}

// countRetried tallies an attempt that is retried: its transport error or
// its reply without a type still count as such; a 101 counts as the retry.
func (w *worker) countRetried(a *attempt) {
	switch {
	case a.err != nil:
		w.stats.errors++
		if w.stats.firstError == "" {
			w.stats.firstError = a.err.Error()
		}
	case a.scanErr != nil:
		w.stats.badReplies++
		if w.stats.firstError == "" {
			w.stats.firstError = fmt.Sprintf("HTTP %d reply without a type: %.200q", a.resp.Status, a.resp.Body)
		}
	}
}

// record counts an operation's last attempt, a, sent to to, if measured.
func (w *worker) record(to target, a *attempt, start time.Time, measured bool) (rep Reply, ok bool) {
	if a.err != nil {
		if measured {
			w.stats.errors++
			w.stats.failed++
			if w.stats.firstError == "" {
				w.stats.firstError = a.err.Error()
			}
		}
		return Reply{}, false
	}
	us := time.Since(start).Microseconds()
	rep, err := a.rep, a.scanErr
	servedFrom := rep.ServedFrom // still known when only the type is missing
	if err != nil {
		if !errors.Is(err, ErrNoType) {
			servedFrom = nil
		}
		rep = Reply{Type: -1}
	}
	if !measured {
		return rep, true
	}
	w.stats.requests++
	w.stats.perEndpoint[to.endpoint]++
	w.stats.served.count(servedFrom, 1)
	if to.leader != "" {
		w.stats.routed++
		if string(servedFrom) != to.leader { // compiles to a compare, no copy
			w.stats.misrouted++
		}
	}
	w.stats.maxUs = max(w.stats.maxUs, us)
	_ = w.hist.RecordValue(min(max(us, histMinUs), histMaxUs))
	if err != nil {
		w.stats.badReplies++
		w.stats.failed++
		if w.stats.firstError == "" {
			w.stats.firstError = fmt.Sprintf("HTTP %d reply without a type: %.200q", a.resp.Status, a.resp.Body)
		}
	} else {
		w.stats.countType(rep.Type, 1)
		if rep.Type == wire.MustRetry {
			w.stats.failed++
		}
	}
	return rep, true
}

// checkToken verifies that this worker's grants on a key never go back in
// time. Its grants on one key are sequential, so the server must hand out
// strictly increasing tokens — or the same one, when an unlock failed and
// the next try-lock was an idempotent re-grant.
func (w *worker) checkToken(key int, rep Reply, measured bool) {
	if !rep.HasToken || rep.Token < 0 {
		if measured {
			w.stats.badTokens++
		}
		return
	}
	if rep.Token < w.lastToken[key] && measured {
		w.stats.regressions++
	}
	w.lastToken[key] = max(w.lastToken[key], rep.Token)
}

// pause backs off after a transport error so a dead server does not turn
// every worker into a busy dial loop on a machine the server shares.
func pause(prev time.Duration) time.Duration {
	next := min(max(2*prev, time.Millisecond), 100*time.Millisecond)
	time.Sleep(next)
	return next
}
