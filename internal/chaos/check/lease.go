package check

import (
	"math"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// What a client can know about a lease, and why.
//
// The partition leader stamps each command with its own clock when it forms
// the batch, which is after the request arrived, so the server-side start s
// of a lease granted or extended by an op lies in [Invoke, Complete] of that
// op on the client's clock. The lease then runs TTL on the lease clock. The
// lease clock never runs faster than real time: within a term it is the
// leader's monotonic clock, and a new leader resumes it from the last time
// the log recorded (possibly in the past), which only lengthens leases.
// Hence:
//
//   - the lease surely lasts until Invoke+TTL: any op that completed before
//     that instant saw it live (its linearization point is no later than its
//     Complete, and the server could not have reached the end yet);
//   - after Invoke+TTL the lease may or may not have ended: the grant may
//     have been stamped late in its interval, and leader changes may have
//     lengthened it without bound.
//
// Two things blur the first bound in a real run: the leader truncates its
// stamps to milliseconds, and client and server clocks tick at slightly
// different rates. Options.LeaseSlack is subtracted from every such bound so
// a checker never relies on more than the run can promise.

// infinity stands for "never completed": an indefinite op may take effect
// at any time after its invocation.
const infinity = time.Duration(math.MaxInt64)

// leaseFloor is the instant until which the lease set by op surely lasts.
func leaseFloor(op chaos.Op, slack time.Duration) time.Duration {
	return op.Invoke + op.TTL - slack
}

// end is the latest instant the op may have taken effect: its Complete if
// the outcome is known, infinity otherwise.
func end(op chaos.Op) time.Duration {
	if op.Definite {
		return op.Complete
	}
	return infinity
}

// Options tune the checkers.
type Options struct {
	// LeaseSlack is taken off every "the lease surely lasts until" bound
	// to absorb the leader's millisecond truncation (1ms) and the
	// clock-rate difference between the client and the servers over the
	// longest TTL used. A few milliseconds suit a local cluster; zero
	// holds the server to the exact contract (hand-written tests).
	LeaseSlack time.Duration
	// Timeout bounds the linearizability search over all locks together;
	// zero means no bound. Locks not decided in time are reported as
	// unknown, never as passing.
	Timeout time.Duration
}
