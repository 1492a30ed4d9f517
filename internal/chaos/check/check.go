package check

import (
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// Report is the result of Run.
type Report struct {
	Summary Summary
	// Anomalies of every checker, in the order they ran.
	Anomalies       []Anomaly
	Linearizability LinearizabilityReport
}

// Passed is true when no checker found anything and none left a question
// open.
func (r Report) Passed() bool { return len(r.Anomalies) == 0 }

// Run validates h and runs every checker that needs nothing but the
// history: replies, linearizability, mutual exclusion and fencing tokens.
// (DurableAfterRestart needs the reads made after a restart and is run by
// the caller that did the restart.)
func Run(h chaos.History, opt Options) (Report, error) {
	if err := h.Validate(); err != nil {
		return Report{}, err
	}
	r := Report{Summary: Summarize(h)}
	timed := func(name string, fn func() []Anomaly) {
		start := time.Now()
		found := fn()
		r.Summary.Add(name, found, time.Since(start))
		r.Anomalies = append(r.Anomalies, found...)
	}
	timed(NameReplies, func() []Anomaly { return Replies(h) })
	timed(NameLinearizability, func() []Anomaly {
		r.Linearizability = Linearizable(h, opt)
		return r.Linearizability.Anomalies
	})
	timed(NameMutex, func() []Anomaly { return MutualExclusion(h, opt) })
	timed(NameFencing, func() []Anomaly { return FencingTokens(h, opt) })
	return r, nil
}
