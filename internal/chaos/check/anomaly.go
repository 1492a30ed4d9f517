package check

import (
	"fmt"
	"strings"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// Checker names, as they appear in anomalies and summaries.
const (
	NameLinearizability = "linearizability"
	NameMutex           = "mutex"
	NameFencing         = "fencing"
	NameDurability      = "durability"
	NameReplies         = "replies"
)

// Anomaly is one violation (or, with Unknown, one question a checker could
// not answer in time), with the operations that show it.
type Anomaly struct {
	Checker string
	Lock    chaos.LockKey
	// Unknown marks a check that ran out of time: not a violation, but
	// not a pass either.
	Unknown bool
	Message string
	Ops     []chaos.Op
}

// String renders the anomaly with one op per line.
func (a Anomaly) String() string {
	var b strings.Builder
	tag := a.Checker
	if a.Unknown {
		tag += " (unknown)"
	}
	fmt.Fprintf(&b, "[%s] %s: %s", tag, a.Lock, a.Message)
	for _, o := range a.Ops {
		b.WriteString("\n    ")
		b.WriteString(o.String())
	}
	return b.String()
}

// Format renders a list of anomalies, or "no anomalies".
func Format(as []Anomaly) string {
	if len(as) == 0 {
		return "no anomalies"
	}
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return strings.Join(parts, "\n")
}
