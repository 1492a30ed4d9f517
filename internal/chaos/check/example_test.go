package check_test

import (
	"fmt"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
	"github.com/kahuna-go/kahuna/internal/chaos/check"
)

// A workload records every call with one Recorder shared by its client
// goroutines, then checks the history.
func Example() {
	rec := chaos.NewRecorder()

	h := rec.Begin(chaos.Op{Client: 0, Kind: chaos.TryLock, Resource: "job-1", Durability: chaos.Persistent, Owner: "w0", TTL: time.Minute})
	// ... POST /v1/locks/try-lock ...
	_ = rec.End(h, chaos.Reply{Type: chaos.TypeLocked, Token: 1, Node: "n1"}, nil)

	h = rec.Begin(chaos.Op{Client: 1, Kind: chaos.TryLock, Resource: "job-1", Durability: chaos.Persistent, Owner: "w1", TTL: time.Minute})
	_ = rec.End(h, chaos.Reply{Type: chaos.TypeBusy, Holder: "w0", Node: "n2"}, nil)

	h = rec.Begin(chaos.Op{Client: 1, Kind: chaos.Unlock, Resource: "job-1", Durability: chaos.Persistent, Owner: "w0"})
	_ = rec.End(h, chaos.Reply{}, fmt.Errorf("POST try-unlock: %w", errTimeout))

	report, err := check.Run(rec.History(), check.Options{LeaseSlack: 5 * time.Millisecond, Timeout: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	// On failure: report.WriteArtifacts("chaos-failures/run-1", rec.History())
	fmt.Println("passed:", report.Passed())
	// Output: passed: true
}

var errTimeout = fmt.Errorf("timeout")
