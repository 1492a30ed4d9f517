package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// Row is one measured run.
type Row struct {
	Name   string
	Result *Result
}

// comparisons are the ratios the report gives: Kahuna against etcd at the
// same size and durability guarantee.
var comparisons = []struct{ kahuna, peer string }{
	{"kahuna 1 node persistent", "etcd 1 node"},
	{"kahuna 3 nodes persistent", "etcd 3 nodes"},
	{"kahuna 3 nodes persistent, forwarded", "etcd 3 nodes"},
	{"kahuna 1 node ephemeral", "redis no fsync"},
}

// Report collects rows by round.
type Report struct {
	rounds [][]Row
}

// Add appends rows to round (1-based).
func (r *Report) Add(round int, rows []Row) {
	for len(r.rounds) < round {
		r.rounds = append(r.rounds, nil)
	}
	r.rounds[round-1] = append(r.rounds[round-1], rows...)
}

func (r *Report) find(round int, name string) *Result {
	for _, row := range r.rounds[round] {
		if row.Name == name {
			return row.Result
		}
	}
	return nil
}

// Ratio is kahuna's request rate over peer's in round, or 0.
func (r *Report) Ratio(round int, kahuna, peer string) float64 {
	k, p := r.find(round, kahuna), r.find(round, peer)
	if k == nil || p == nil || p.PerSecond() == 0 {
		return 0
	}
	return k.PerSecond() / p.PerSecond()
}

// Write prints one table per round, then the ratios of every round.
func (r *Report) Write(w io.Writer) {
	for i, rows := range r.rounds {
		fmt.Fprintf(w, "\nround %d\n", i+1)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "system\treq/s\tp50\tp99\tp99.9\tgranted\tbusy\terrors\t")
		for _, row := range rows {
			res := row.Result
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%d\t%d\t%d\t\n", row.Name, res.PerSecond(),
				ms(res.Quantile(50)), ms(res.Quantile(99)), ms(res.Quantile(99.9)), res.Granted, res.Busy, res.Errors)
		}
		tw.Flush()
		for _, row := range rows {
			if row.Result.FirstError != "" {
				fmt.Fprintf(w, "  %s: first error: %s\n", row.Name, row.Result.FirstError)
			}
		}
	}
	fmt.Fprintln(w, "\nratios of requests per second")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "comparison\t")
	for i := range r.rounds {
		fmt.Fprintf(tw, "round %d\t", i+1)
	}
	fmt.Fprintln(tw, "lowest\t")
	for _, c := range comparisons {
		var all []float64
		for i := range r.rounds {
			if v := r.Ratio(i, c.kahuna, c.peer); v > 0 {
				all = append(all, v)
			}
		}
		if len(all) < len(r.rounds) {
			continue // a system of the pair was not measured (-only)
		}
		fmt.Fprintf(tw, "%s / %s\t", c.kahuna, c.peer)
		for _, v := range all {
			fmt.Fprintf(tw, "%.2f×\t", v)
		}
		fmt.Fprintf(tw, "%.2f×\t\n", slices.Min(all))
	}
	tw.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
