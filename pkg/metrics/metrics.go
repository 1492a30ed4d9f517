// Package metrics owns a node's Prometheus registry: the counters the
// request path feeds, a collector that reads each partition's state at
// scrape time, and the Go and process collectors. Nothing else in Kahuna
// imports Prometheus; the packages that own the numbers expose them through
// plain methods and small interfaces.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Ops are the request kinds counted by op.
var ops = []string{"try-lock", "try-extend", "try-unlock", "get-info", "force-unlock", "list"}

// outcomes are the label values of a request's outcome: the reply's type,
// plus the refusals that end a request before it has one.
var outcomes = map[wire.Type]string{
	wire.Locked:           "locked",
	wire.Busy:             "busy",
	wire.Extended:         "extended",
	wire.Unlocked:         "unlocked",
	wire.Got:              "got",
	wire.Errored:          "errored",
	wire.InvalidInput:     "invalid_input",
	wire.MustRetry:        "must_retry",
	wire.LockDoesNotExist: "lock_does_not_exist",
	wire.InvalidOwner:     "invalid_owner",
}

// OutcomeForbidden labels a request whose token may not touch its resource.
const OutcomeForbidden = "forbidden"

// PartitionStats is one partition as this node sees it at a scrape.
type PartitionStats struct {
	ID                      int
	Leader                  bool
	Term                    uint64
	CommitIndex             uint64
	AppliedIndex            uint64
	PersistentLocks         int
	EphemeralLocks, Waiters int // known on the partition's leader only
}

// Source reads every partition's state; the partition set is the
// production one.
type Source interface {
	PartitionStats() []PartitionStats
}

// Metrics is one node's registry and instruments.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// byOp holds each op's duration histogram and outcome counters,
	// resolved once: a label lookup per request would hash the label
	// values on the hot path.
	byOp      map[string]*opInstruments
	forwarded prometheus.Counter
	batch     prometheus.Histogram
	logWrite  prometheus.Histogram
}

type opInstruments struct {
	duration prometheus.Observer
	outcome  map[string]prometheus.Counter
}

// New returns a node's metrics, reading partitions from src (nil: none).
func New(src Source) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kahuna_requests_total",
			Help: "Lock requests this node answered, by operation and outcome (the reply's type).",
		}, []string{"op", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kahuna_request_duration_seconds",
			Help: "Time from a lock request's arrival to its reply, forwarding and waiting included.",
			// 250 µs to about 8 s: a local commit takes a few ms, a
			// blocking acquire or a leader election seconds.
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 16),
		}, []string{"op"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kahuna_forwarded_requests_total",
			Help: "Lock requests this node passed to another node, the partition's leader, that the leader answered.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kahuna_batch_commands",
			Help:    "Commands per Raft entry this node proposed as a partition leader (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 … 1024
		}),
		logWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kahuna_raft_log_write_seconds",
			Help: "Time to write entries to a partition's Raft log on this node, fsync included.",
			// 50 µs to about 3 s: an SSD syncs in well under a
			// millisecond, a struggling disk takes seconds.
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		byOp: map[string]*opInstruments{},
	}
	for _, op := range ops {
		in := &opInstruments{duration: m.duration.WithLabelValues(op), outcome: map[string]prometheus.Counter{}}
		for _, o := range outcomes {
			in.outcome[o] = m.requests.WithLabelValues(op, o)
		}
		in.outcome[OutcomeForbidden] = m.requests.WithLabelValues(op, OutcomeForbidden)
		m.byOp[op] = in
	}
	m.reg.MustRegister(m.requests, m.duration, m.forwarded, m.batch, m.logWrite,
		&partitionCollector{src: src},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the node's registry, for tests that gather it directly.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Request counts one answered request of op (one of try-lock, try-extend,
// try-unlock, get-info, force-unlock, list) with its reply's type.
func (m *Metrics) Request(op string, outcome wire.Type, forwarded bool, took time.Duration) {
	name, ok := outcomes[outcome]
	if !ok {
		name = "unknown_" + strconv.Itoa(int(outcome))
	}
	m.request(op, name, forwarded, took)
}

// Refused counts a request of op refused for its token.
func (m *Metrics) Refused(op string, took time.Duration) {
	m.request(op, OutcomeForbidden, false, took)
}

func (m *Metrics) request(op, outcome string, forwarded bool, took time.Duration) {
	in := m.byOp[op]
	if in == nil {
		m.requests.WithLabelValues(op, outcome).Inc()
		m.duration.WithLabelValues(op).Observe(took.Seconds())
	} else {
		c := in.outcome[outcome]
		if c == nil {
			c = m.requests.WithLabelValues(op, outcome)
		}
		c.Inc()
		in.duration.Observe(took.Seconds())
	}
	if forwarded {
		m.forwarded.Inc()
	}
}

// Batch observes one Raft entry of n commands proposed by a leader.
func (m *Metrics) Batch(n int) { m.batch.Observe(float64(n)) }

// LogWrite observes one write to a partition's Raft log.
func (m *Metrics) LogWrite(took time.Duration) { m.logWrite.Observe(took.Seconds()) }

// partitionCollector reads the partitions at scrape time: their state
// lives in Raft and the lock tables, and copying it into gauges on every
// change would put Prometheus on the commit path.
type partitionCollector struct {
	src Source
}

var (
	descLocks = prometheus.NewDesc("kahuna_locks",
		"Live locks in a partition. Persistent counts are known on every member; ephemeral ones only on the partition's leader.",
		[]string{"partition", "durability"}, nil)
	descLeader = prometheus.NewDesc("kahuna_partition_leader",
		"1 when this node is the partition's serving leader, else 0.", []string{"partition"}, nil)
	descTerm = prometheus.NewDesc("kahuna_raft_term",
		"The partition's current Raft term on this node.", []string{"partition"}, nil)
	descCommit = prometheus.NewDesc("kahuna_raft_commit_index",
		"The partition's Raft commit index as this node knows it.", []string{"partition"}, nil)
	descApplied = prometheus.NewDesc("kahuna_raft_applied_index",
		"The last Raft index this node applied to the partition's lock table.", []string{"partition"}, nil)
	descWaiters = prometheus.NewDesc("kahuna_waiters",
		"Blocking try-lock requests (waitMs) waiting in a partition; known on its leader only.",
		[]string{"partition"}, nil)
)

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLocks, descLeader, descTerm, descCommit, descApplied, descWaiters} {
		ch <- d
	}
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src == nil {
		return
	}
	for _, p := range c.src.PartitionStats() {
		id := strconv.Itoa(p.ID)
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{id}, labels...)...)
		}
		leader := 0.0
		if p.Leader {
			leader = 1
		}
		gauge(descLeader, leader)
		gauge(descTerm, float64(p.Term))
		gauge(descCommit, float64(p.CommitIndex))
		gauge(descApplied, float64(p.AppliedIndex))
		gauge(descLocks, float64(p.PersistentLocks), "persistent")
		gauge(descLocks, float64(p.EphemeralLocks), "ephemeral")
		gauge(descWaiters, float64(p.Waiters))
	}
}
