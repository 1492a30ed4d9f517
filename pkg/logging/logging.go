// Package logging builds the process's slog logger and adapts it for the
// libraries that bring their own logging interfaces (hashicorp/raft's hclog,
// memberlist's *log.Logger).
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// ErrBadOption reports an unknown level or format name.
var ErrBadOption = errors.New("logging: bad option")

// ParseLevel reads debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w: log level %q (want debug, info, warn or error)", ErrBadOption, s)
	}
	return l, nil
}

// New returns a logger writing text or JSON lines to w.
func New(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("%w: log format %q (want text or json)", ErrBadOption, format)
	}
}

// Discard is a logger that drops everything, for tests.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
