package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Result is the outcome of one load run.
type Result struct {
	Durability string        `json:"durability"`
	Workers    int           `json:"workers"`
	Keys       int           `json:"keys"`
	Duration   time.Duration `json:"-"` // emitted as durationSeconds
	// Requests counts HTTP requests that got a reply (try-lock and
	// try-unlock alike); transport errors are counted in Errors instead.
	// With retries (Retry > 0) it counts operations by their last reply:
	// an operation retried after a 101 or an error counts once, with its
	// latency from the first attempt to the last reply, its outcome and
	// endpoint those of the last reply.
	Requests       uint64            `json:"requests"`
	RequestsPerSec float64           `json:"requestsPerSec"`
	LatencyUs      LatencyUs         `json:"latencyUs"`
	Outcomes       map[string]uint64 `json:"outcomes"` // by reply type name
	// Endpoints counts Requests by the base URL they were sent to; every
	// endpoint of the run is listed, with 0 if it answered nothing.
	Endpoints map[string]uint64 `json:"endpoints"`
	// EndpointOrder lists the endpoints as the run was given them, without
	// repeats, for the text report.
	EndpointOrder []string `json:"-"`
	// ServedFrom counts Requests by the node named in the reply's top-level
	// "servedFrom": with a cluster, the replies not served by the node they
	// were sent to were forwarded. ServedFromMissing counts replies without
	// that field (such as a plain-text 404).
	ServedFrom        map[string]uint64 `json:"servedFrom"`
	ServedFromMissing uint64            `json:"servedFromMissing"`
	// Errors counts transport errors: every attempt's, with retries.
	Errors uint64 `json:"errors"`
	// Retry is the per-operation deadline of the run's retries (zero:
	// none); emitted as retrySeconds.
	Retry time.Duration `json:"-"`
	// Retries counts attempts beyond each operation's first.
	Retries uint64 `json:"retries"`
	// FailedOps counts operations that ended without a final answer: a
	// transport error, a 101 or a reply without a type was all they got
	// (with retries: still, when their deadline passed). A client that
	// retries within that deadline would have seen these fail.
	FailedOps uint64 `json:"failedOps"`
	// UnfinishedOps were still being retried when the run was cancelled:
	// neither answered nor failed.
	UnfinishedOps uint64 `json:"unfinishedOps,omitempty"`
	// BadReplies are HTTP replies whose body had no numeric type (with
	// retries, of every attempt).
	BadReplies uint64 `json:"badReplies"`
	// BadTokens are Locked replies without a non-negative fencingToken.
	BadTokens uint64 `json:"badTokens"`
	// TokenRegressions are grants whose token was lower than one the same
	// worker was granted earlier for the same key: a server bug.
	TokenRegressions uint64 `json:"tokenRegressions"`
	// Routed counts Requests sent to the partition leader named by the
	// run's leader map (Config.RouteToLeader); Misrouted of them were
	// served by another node, so the map was behind.
	Routed      uint64 `json:"routed,omitempty"`
	Misrouted   uint64 `json:"misrouted,omitempty"`
	FirstError  string `json:"firstError,omitempty"`
	Interrupted bool   `json:"interrupted,omitempty"`
	// RaftEntries is how many Raft log entries the cluster committed in
	// the measured period, as node RaftEntriesFrom saw them (the sum of
	// its partitions' commit indexes, read before and after); nil when
	// that could not be read, e.g. from a server that is not Kahuna.
	RaftEntries     *uint64 `json:"raftEntries,omitempty"`
	RaftEntriesFrom string  `json:"raftEntriesFrom,omitempty"`
	// Connections counts the connections the workers opened, warm-up
	// included: one per worker and endpoint used, unless connections
	// broke or the server closed them. TLSHandshakes counts the TLS
	// handshakes on them, TLSResumed those that resumed a cached session
	// instead of exchanging certificates.
	Connections uint64 `json:"connections,omitempty"`
	// ClientCPU is the CPU time (user and system) the load tool's own
	// process used in the measured period, for reading against the
	// server's: on a shared machine every cycle of it is one the server
	// did not get. Emitted as clientCpuSeconds; zero where not measured.
	ClientCPU     time.Duration `json:"-"`
	TLSHandshakes uint64        `json:"tlsHandshakes,omitempty"`
	TLSResumed    uint64        `json:"tlsResumed,omitempty"`
}

// LatencyUs holds request latencies in microseconds.
type LatencyUs struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p99.9"`
	Max  int64 `json:"max"`
}

// MarshalJSON adds durationSeconds, which reads better than nanoseconds.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result // drops this method, avoiding recursion
	return json.Marshal(struct {
		plain
		DurationSeconds float64 `json:"durationSeconds"`
		RetrySeconds    float64 `json:"retrySeconds,omitempty"`
		ClientCPU       float64 `json:"clientCpuSeconds,omitempty"`
	}{plain(r), r.Duration.Seconds(), r.Retry.Seconds(), r.ClientCPU.Seconds()})
}

// Failed reports whether the run saw the server break the lock contract.
func (r *Result) Failed() bool {
	return r.TokenRegressions > 0 || r.BadTokens > 0
}

// WriteJSON writes the results as one indented JSON array.
func WriteJSON(w io.Writer, results ...*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if results == nil {
		results = []*Result{}
	}
	if err := enc.Encode(results); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// WriteText writes the results as a table, one row per run, followed by the
// outcome counts, the load tool's CPU per request, its TLS connections (when
// there were any), the requests per endpoint and the requests per serving
// node of each run.
func WriteText(w io.Writer, results ...*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "durability\tworkers\tkeys\tduration\trequests\treq/s\tp50\tp90\tp99\tp99.9\tmax\terrors\t")
	for _, r := range results {
		l := r.LatencyUs
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t\n",
			r.Durability, r.Workers, r.Keys, r.Duration.Round(time.Millisecond), r.Requests, r.RequestsPerSec,
			us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max), r.Errors)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	for _, r := range results {
		line := r.Durability + " outcomes: " + formatOutcomes(r.Outcomes)
		if r.BadReplies > 0 || r.BadTokens > 0 || r.TokenRegressions > 0 {
			line += fmt.Sprintf("; bad replies %d, bad tokens %d, token regressions %d",
				r.BadReplies, r.BadTokens, r.TokenRegressions)
		}
		if r.Interrupted {
			line += " (interrupted)"
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return fmt.Errorf("write outcomes: %w", err)
		}
		if r.ClientCPU > 0 && r.Requests > 0 {
			if _, err := fmt.Fprintf(w, "%s client: %.1f µs of CPU per request (this process, measured period)\n",
				r.Durability, float64(r.ClientCPU.Microseconds())/float64(r.Requests)); err != nil {
				return fmt.Errorf("write client CPU: %w", err)
			}
		}
		if r.TLSHandshakes > 0 {
			if _, err := fmt.Fprintf(w, "%s tls: %d connections, %d handshakes, %d of them resumed (warm-up included)\n",
				r.Durability, r.Connections, r.TLSHandshakes, r.TLSResumed); err != nil {
				return fmt.Errorf("write tls: %w", err)
			}
		}
		if len(r.Endpoints) > 0 {
			if _, err := fmt.Fprintln(w, r.Durability+" endpoints: "+formatEndpoints(r)); err != nil {
				return fmt.Errorf("write endpoints: %w", err)
			}
		}
		if _, err := fmt.Fprintln(w, r.Durability+" servedFrom: "+formatServedFrom(r)); err != nil {
			return fmt.Errorf("write servedFrom: %w", err)
		}
		if line := formatRaftEntries(r); line != "" {
			if _, err := fmt.Fprintln(w, r.Durability+" raft: "+line); err != nil {
				return fmt.Errorf("write raft entries: %w", err)
			}
		}
		if r.Retry > 0 {
			line := fmt.Sprintf("%s retry: within %s, %d attempts retried, %d operations failed",
				r.Durability, r.Retry, r.Retries, r.FailedOps)
			if r.UnfinishedOps > 0 {
				line += fmt.Sprintf(", %d unfinished", r.UnfinishedOps)
			}
			if _, err := fmt.Fprintln(w, line); err != nil {
				return fmt.Errorf("write retries: %w", err)
			}
		}
		if r.Routed > 0 {
			if _, err := fmt.Fprintf(w, "%s routed: %d to their partition's leader, %d of them served by another node\n",
				r.Durability, r.Routed, r.Misrouted); err != nil {
				return fmt.Errorf("write routed: %w", err)
			}
		}
	}
	return nil
}

// formatEndpoints lists the requests per endpoint in the order the run was
// given them.
func formatEndpoints(r *Result) string {
	order := r.EndpointOrder
	if len(order) == 0 {
		order = sortedKeys(r.Endpoints)
	}
	parts := make([]string, 0, len(order))
	for _, e := range order {
		parts = append(parts, fmt.Sprintf("%s=%d", e, r.Endpoints[e]))
	}
	return strings.Join(parts, " ")
}

// formatServedFrom lists the requests per serving node by name, then those
// whose reply named none.
func formatServedFrom(r *Result) string {
	var parts []string
	for _, name := range sortedKeys(r.ServedFrom) {
		parts = append(parts, fmt.Sprintf("%s=%d", textName(name), r.ServedFrom[name]))
	}
	if r.ServedFromMissing > 0 {
		parts = append(parts, fmt.Sprintf("(missing)=%d", r.ServedFromMissing))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// formatRaftEntries says how many log entries the run's commands took,
// and for persistent locks (the only ones written to the log) how many
// commands each entry carried on average.
func formatRaftEntries(r *Result) string {
	if r.RaftEntries == nil {
		return ""
	}
	n := *r.RaftEntries
	line := fmt.Sprintf("%d entries committed (as %s saw them)", n, textName(r.RaftEntriesFrom))
	if r.Durability == wire.Persistent.String() && n > 0 {
		line += fmt.Sprintf(", %.1f requests per entry", float64(r.Requests)/float64(n))
	}
	return line
}

// textName quotes a node name that would not read as one word.
func textName(s string) string {
	if s == "" || strings.ContainsFunc(s, func(c rune) bool {
		return c == '=' || c == '"' || c == '(' || unicode.IsSpace(c) || !unicode.IsGraphic(c)
	}) {
		return strconv.Quote(s)
	}
	return s
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func us(v int64) string {
	return (time.Duration(v) * time.Microsecond).String()
}

// formatOutcomes lists the contract's codes in numeric order, then any
// others by name.
func formatOutcomes(m map[string]uint64) string {
	order := []wire.Type{
		wire.Locked, wire.Busy, wire.Extended, wire.Unlocked, wire.Got,
		wire.Errored, wire.InvalidInput, wire.MustRetry, wire.LockDoesNotExist, wire.InvalidOwner,
	}
	var parts []string
	seen := make(map[string]bool, len(m))
	for _, t := range order {
		if n, ok := m[t.String()]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", t, n))
			seen[t.String()] = true
		}
	}
	var rest []string
	for name := range m {
		if !seen[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range rest {
		parts = append(parts, fmt.Sprintf("%s=%d", name, m[name]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
