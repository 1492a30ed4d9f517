//go:build race

package check

// raceBuild is true under the race detector, which slows porcupine's
// search about twentyfold.
const raceBuild = true
