package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// outcome is the answer to one operation: printed as text (console) or as
// one JSON object (--format json), and mapped to an exit code.
type outcome interface {
	exitCode() int
	// text is the console form, without a trailing newline.
	text() string
}

// printer writes outcomes. In console form, answers (exit code 0 or 1) go
// to out and failures (usage, unreachable, interrupted) to errOut; in JSON form every outcome is one
// line of JSON on out.
type printer struct {
	out, errOut io.Writer
	json        bool
}

func (p printer) print(o outcome) {
	if p.json {
		b, err := json.Marshal(o)
		if err != nil { // every outcome type marshals; never expected
			fmt.Fprintf(p.errOut, "kahuna-cli: encoding the result: %v\n", err)
			return
		}
		fmt.Fprintf(p.out, "%s\n", b)
		return
	}
	w := p.out
	if c := o.exitCode(); c != exitOK && c != exitNegative {
		w = p.errOut
	}
	fmt.Fprintln(w, o.text())
}

// report is the outcome of an operation on one lock.
//
// JSON: {"result": …, "resource": …, "durability": …} and, depending on the
// result, owner, fencingToken, holder, expiresInMs, acquiredAt, expiresAt,
// error. See docs/cli.md.
type report struct {
	Result       string `json:"result"`
	Resource     string `json:"resource,omitempty"`
	Durability   string `json:"durability,omitempty"`
	Owner        string `json:"owner,omitempty"`
	FencingToken *int64 `json:"fencingToken,omitempty"`
	Holder       string `json:"holder,omitempty"`
	ExpiresInMs  *int64 `json:"expiresInMs,omitempty"`
	AcquiredAt   string `json:"acquiredAt,omitempty"`
	ExpiresAt    string `json:"expiresAt,omitempty"`
	Error        string `json:"error,omitempty"`

	line string
	code int
}

func (r report) exitCode() int { return r.code }
func (r report) text() string  { return r.line }

// Results: the "result" field of the JSON form.
const (
	resultAcquired    = "acquired"
	resultBusy        = "busy"
	resultExtended    = "extended"
	resultUnlocked    = "unlocked"
	resultReleased    = "released"
	resultFound       = "found"
	resultNotFound    = "not-found"
	resultNotOwner    = "not-owner"
	resultListed      = "listed"
	resultCluster     = "cluster"
	resultInvalid     = "invalid-input"
	resultUnavailable = "unavailable"
	resultError       = "error"
	resultInterrupted = "interrupted"
)

// Console wording of negative outcomes.
const (
	notAcquired        = "not acquired"
	notExtended        = "not extended"
	notUnlocked        = "not unlocked"
	reasonNotFound     = "not found"
	reasonNotTheOwner  = "held by another owner"
	consoleErrorPrefix = "kahuna-cli: "
)

func newReport(t target, result string) report {
	return report{Result: result, Resource: t.resource, Durability: t.durability.String()}
}

func int64p(v int64) *int64 { return &v }

func acquiredReport(l *client.Lock) report {
	r := newReport(target{l.Resource(), l.Durability()}, resultAcquired)
	r.Owner, r.FencingToken = l.Owner(), int64p(l.Token())
	r.line = fmt.Sprintf("f%d acquired %s", l.Token(), l.Owner())
	return r
}

func busyReport(t target, holder string) report {
	r := newReport(t, resultBusy)
	r.Holder, r.code = holder, exitNegative
	r.line = fmt.Sprintf("%s: held by %s", notAcquired, holder)
	return r
}

func extendedReport(t target, owner string, token int64) report {
	r := newReport(t, resultExtended)
	r.Owner, r.FencingToken = owner, int64p(token)
	r.line = fmt.Sprintf("f%d extended", token)
	return r
}

func unlockedReport(t target, owner string) report {
	r := newReport(t, resultUnlocked)
	r.Owner, r.line = owner, "unlocked"
	return r
}

func infoReport(t target, in *client.Info) report {
	r := newReport(t, resultFound)
	r.Owner, r.FencingToken = in.Owner, int64p(in.Token)
	r.ExpiresInMs = int64p(in.ExpiresIn.Milliseconds())
	r.AcquiredAt, r.ExpiresAt = stamp(in.AcquiredAt), stamp(in.ExpiresAt)
	r.line = fmt.Sprintf("f%d %s expires in %s", in.Token, in.Owner, formatDuration(in.ExpiresIn))
	return r
}

// negativeReport is a not-found or not-owner answer to an operation whose
// console form starts with prefix ("not extended", "not unlocked"), or
// with nothing but the reason when prefix is empty.
func negativeReport(t target, prefix string, notOwner bool) report {
	result, reason := resultNotFound, reasonNotFound
	if notOwner {
		result, reason = resultNotOwner, reasonNotTheOwner
	}
	r := newReport(t, result)
	r.code = exitNegative
	r.line = reason
	if prefix != "" {
		r.line = prefix + ": " + reason
	}
	return r
}

// errorReport is an operation that failed: the server was unreachable or
// broken (exit 3), or refused the request's input (exit 2).
func errorReport(t target, err error) report {
	r := newReport(t, resultError)
	r.code = exitCodeOf(err)
	switch r.code {
	case exitUsage:
		r.Result = resultInvalid
	case exitUnavailable:
		if isUnavailable(err) {
			r.Result = resultUnavailable
		}
	}
	r.Error = err.Error()
	r.line = consoleErrorPrefix + err.Error()
	return r
}

// interruptedReport is an operation cut short by SIGINT or SIGTERM.
func interruptedReport(t target, code int) report {
	r := newReport(t, resultInterrupted)
	r.code = code
	r.Error = "interrupted"
	r.line = consoleErrorPrefix + "interrupted"
	return r
}

// stamp formats a server time as RFC 3339 with milliseconds, UTC.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// listReport is the outcome of a listing.
//
// JSON: {"result":"listed","durability":…,"prefix":…,"locks":[{resource,
// owner, fencingToken, expiresInMs, acquiredAt, expiresAt}, …]}.
type listReport struct {
	Result     string      `json:"result"`
	Durability string      `json:"durability"`
	Prefix     string      `json:"prefix,omitempty"`
	Locks      []listEntry `json:"locks"`
}

type listEntry struct {
	Resource     string `json:"resource"`
	Owner        string `json:"owner"`
	FencingToken int64  `json:"fencingToken"`
	ExpiresInMs  int64  `json:"expiresInMs"`
	AcquiredAt   string `json:"acquiredAt"`
	ExpiresAt    string `json:"expiresAt"`
}

func (r listReport) exitCode() int { return exitOK }

func (r listReport) text() string {
	if len(r.Locks) == 0 {
		return "no locks"
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tOWNER\tTOKEN\tEXPIRES IN")
	for _, l := range r.Locks {
		fmt.Fprintf(tw, "%s\t%s\tf%d\t%s\n", l.Resource, l.Owner, l.FencingToken, formatDuration(time.Duration(l.ExpiresInMs)*time.Millisecond))
	}
	tw.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// clusterReport is the cluster as one node sees it: the answer of the
// shell's cluster command and of --cluster alike.
//
// JSON: GET /v1/cluster/status's reply as the server sent it (type,
// servedFrom, node, nodes, partitions), with "result":"cluster" added,
// and that node's GET /readyz reply as "readiness" when it gave one.
type clusterReport struct {
	Result string `json:"result"`
	*client.Status
	Readiness *client.Health `json:"readiness,omitempty"`
}

func newClusterReport(st *client.Status, h *client.Health) clusterReport {
	return clusterReport{Result: resultCluster, Status: st, Readiness: h}
}

func (r clusterReport) exitCode() int { return exitOK }

// text is two tables: the nodes, then the partitions.
func (r clusterReport) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s, %d %s, as %s sees it\n", len(r.Nodes), plural(len(r.Nodes), "node", "nodes"),
		len(r.Partitions), plural(len(r.Partitions), "partition", "partitions"), r.ServedFrom)
	if h := r.Readiness; h != nil {
		if h.Status == "ready" {
			fmt.Fprintf(&b, "%s is ready\n", h.ServedFrom)
		} else {
			fmt.Fprintf(&b, "%s is NOT READY: %s\n", h.ServedFrom, h.Reason)
		}
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tROLE\tHTTP\tRAFT")
	for _, n := range r.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.ID, orDash(n.State), orDash(n.Role), orDash(n.HTTPAddr), orDash(n.RaftAddr))
	}
	tw.Flush()
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tTERM\tCOMMIT\tAPPLIED\tLOCKS\tVOTERS\tNON-VOTERS")
	for _, p := range r.Partitions {
		leader := p.Leader
		if leader == "" {
			leader = "(none)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", p.ID, leader, p.Term, p.CommitIndex, p.AppliedIndex, p.Locks,
			orDash(strings.Join(p.Voters, ",")), orDash(strings.Join(p.NonVoters, ",")))
	}
	tw.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// orDash keeps an empty table cell visible, so that the columns after it
// stay in place for a reader and for awk.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// removeReport is the outcome of --remove-node and the shell's remove-node.
//
// JSON: {"result":"removed","removed":ID}, or {"result":…,"node":ID,
// "error":…} with result unknown-node, would-lose-quorum, invalid-input
// (exit 1 here: the server refused the removal), unavailable or error.
type removeReport struct {
	Result  string `json:"result"`
	Removed string `json:"removed,omitempty"`
	Node    string `json:"node,omitempty"`
	Error   string `json:"error,omitempty"`

	line string
	code int
}

func (r removeReport) exitCode() int { return r.code }
func (r removeReport) text() string  { return r.line }

// Results of a removal beyond those a lock operation has.
const (
	resultRemoved         = "removed"
	resultUnknownNode     = "unknown-node"
	resultWouldLoseQuorum = "would-lose-quorum"
	notRemoved            = "not removed"
)

func removedReport(id string) removeReport {
	return removeReport{Result: resultRemoved, Removed: id, line: "removed " + id}
}

// notRemovedReport is a removal the server refused: exit 1, the reason on
// stdout, as for a lock that is busy.
func notRemovedReport(id, result, reason string) removeReport {
	return removeReport{Result: result, Node: id, Error: reason, code: exitNegative, line: notRemoved + ": " + reason}
}

// removeErrorReport is a removal that no node answered, or that failed on
// the server: exit 3, on stderr.
func removeErrorReport(id string, err error) removeReport {
	r := removeReport{Result: resultError, Node: id, Error: err.Error(), code: exitUnavailable, line: consoleErrorPrefix + err.Error()}
	if isUnavailable(err) {
		r.Result = resultUnavailable
	}
	return r
}
