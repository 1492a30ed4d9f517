package check

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// KindCount counts one kind of operation.
type KindCount struct {
	Kind                 chaos.Kind
	Definite, Indefinite int
}

// CheckCount is what one checker found and how long it took.
type CheckCount struct {
	Name string
	// Anomalies counts violations; Unknown the questions left open.
	Anomalies, Unknown int
	Duration           time.Duration
}

// Summary is the one-screen account of a run: its operations and what
// each checker made of them.
type Summary struct {
	Ops, Definite, Indefinite int
	Kinds                     []KindCount
	Checks                    []CheckCount
}

// Summarize counts the operations of h.
func Summarize(h chaos.History) Summary {
	s := Summary{Ops: len(h.Ops)}
	idx := make(map[chaos.Kind]int)
	for _, k := range chaos.Kinds() {
		idx[k] = len(s.Kinds)
		s.Kinds = append(s.Kinds, KindCount{Kind: k})
	}
	for _, o := range h.Ops {
		i, ok := idx[o.Kind]
		if !ok {
			continue
		}
		if o.Definite {
			s.Definite++
			s.Kinds[i].Definite++
		} else {
			s.Indefinite++
			s.Kinds[i].Indefinite++
		}
	}
	return s
}

// Add records one checker's findings.
func (s *Summary) Add(name string, found []Anomaly, took time.Duration) {
	c := CheckCount{Name: name, Duration: took}
	for _, a := range found {
		if a.Unknown {
			c.Unknown++
		} else {
			c.Anomalies++
		}
	}
	s.Checks = append(s.Checks, c)
}

// Passed is true when no checker found an anomaly or left a question open.
func (s Summary) Passed() bool {
	for _, c := range s.Checks {
		if c.Anomalies > 0 || c.Unknown > 0 {
			return false
		}
	}
	return true
}

// String renders the summary as two aligned text tables.
func (s Summary) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tdefinite\tindefinite\t")
	for _, k := range s.Kinds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", k.Kind, k.Definite, k.Indefinite)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t\n", s.Definite, s.Indefinite)
	_ = tw.Flush()
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "check\tanomalies\tunknown\ttime\tverdict\t")
	for _, c := range s.Checks {
		verdict := "pass"
		switch {
		case c.Anomalies > 0:
			verdict = "FAIL"
		case c.Unknown > 0:
			verdict = "UNKNOWN"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%v\t%s\t\n", c.Name, c.Anomalies, c.Unknown, c.Duration.Round(time.Millisecond), verdict)
	}
	_ = tw.Flush()
	return b.String()
}
