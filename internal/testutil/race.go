//go:build race

package testutil

// raceEnabled is true when the tests run under the race detector; the
// binaries they build then get it too, so a race inside the server fails the
// process tests as well.
const raceEnabled = true
