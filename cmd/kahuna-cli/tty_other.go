//go:build !unix

package main

import "os"

// fromTerminal: without Unix process groups every signal is forwarded.
func fromTerminal(os.Signal) bool { return false }
