package main

import (
	"errors"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// Exit codes. A command run under a lock passes its own code through.
const (
	exitOK          = 0  // done
	exitNegative    = 1  // busy, not the owner, not found, node not removed
	exitUsage       = 2  // bad flags, arguments or input
	exitUnavailable = 3  // no node answered, or the server failed
	exitLost        = 75 // the lock was lost while the command ran (EX_TEMPFAIL)
	exitCannotRun   = 126
	exitNotFound    = 127
	exitSignalBase  = 128 // 128+N: ended by signal N
)

// exitCodeOf maps an error to the exit code it stands for.
func exitCodeOf(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage), errors.Is(err, client.ErrInvalidInput):
		return exitUsage
	case errors.Is(err, client.ErrBusy), errors.Is(err, client.ErrNotOwner), errors.Is(err, client.ErrNotFound),
		errors.Is(err, client.ErrUnknownNode), errors.Is(err, client.ErrWouldLoseQuorum):
		return exitNegative
	default: // client.ErrUnavailable, *client.ServerError, anything unexpected
		return exitUnavailable
	}
}

// isUnavailable reports whether err means no node could serve the request.
func isUnavailable(err error) bool { return errors.Is(err, client.ErrUnavailable) }
