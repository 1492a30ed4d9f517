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
	lastToken  []int64 // per key: the highest token this worker was granted, -1 if none
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

// do sends one request and records it if measured. ok is false only on a
// transport error; a reply without a type comes back with Type -1.
func (w *worker) do(to target, path string, start time.Time, measured bool) (rep Reply, ok bool) {
	resp, err := w.clients[to.endpoint].Post(path, w.body)
	if err != nil {
		if measured {
			w.stats.errors++
			if w.stats.firstError == "" {
				w.stats.firstError = err.Error()
			}
		}
		return Reply{}, false
	}
	us := time.Since(start).Microseconds()
	rep, err = ScanReply(resp.Body)
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
		if w.stats.firstError == "" {
			w.stats.firstError = fmt.Sprintf("HTTP %d reply without a type: %.200q", resp.Status, resp.Body)
		}
	} else {
		w.stats.countType(rep.Type, 1)
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
