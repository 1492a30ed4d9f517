// Package check holds the checkers of the fault-injection suite. Each reads
// a chaos.History and returns the anomalies it found, empty meaning pass:
//
//   - Replies: replies the contract never allows for an operation (99,
//     100, another operation's type) (replies.go);
//   - Linearizable: persistent locks against a sequential model of the
//     contract, with porcupine, one search per resource
//     (model.go, linearizability.go);
//   - MutualExclusion: no two holders inside the windows a client can prove
//     it held a persistent lock (windows.go, mutex.go);
//   - FencingTokens: tokens grow in real-time order, never change hands,
//     and an idempotent re-lock keeps its token (fencing.go);
//   - DurableAfterRestart: acknowledged persistent effects survive a full
//     restart (durability.go).
//
// Run runs the first four and fills a Summary; a failed run's history,
// anomalies and porcupine visualizations go to a folder with
// Report.WriteArtifacts, and chaos.Load reads the history back for an
// offline re-check.
//
// All times are the recorder's monotonic clock. The server's clock is never
// seen; what the checkers use of it is the contract's promise that a lease
// granted or extended by a request lasts at least its TTL from some instant
// inside that request, and may be lengthened but never shortened
// (lease.go). Resources must be fresh when a history starts.
package check
