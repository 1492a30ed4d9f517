package logging

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// HCLog adapts an slog.Logger to hclog.Logger for hashicorp/raft. With
// quietInfo, the library's Info messages are logged at Debug: with many Raft
// groups per node, per-group election chatter would drown everything else,
// and the caller logs the transitions that matter itself.
func HCLog(l *slog.Logger, name string, quietInfo bool) hclog.Logger {
	return &hcAdapter{l: l, name: name, quietInfo: quietInfo}
}

type hcAdapter struct {
	l         *slog.Logger
	name      string
	implied   []any
	quietInfo bool
}

func (a *hcAdapter) toSlog(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Info, hclog.NoLevel, hclog.DefaultLevel:
		if a.quietInfo {
			return slog.LevelDebug
		}
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (a *hcAdapter) Log(level hclog.Level, msg string, args ...any) {
	lv := a.toSlog(level)
	ctx := context.Background()
	if !a.l.Enabled(ctx, lv) {
		return
	}
	all := make([]any, 0, len(a.implied)+len(args))
	all = append(all, a.implied...)
	all = append(all, args...)
	for i, v := range all {
		// hclog.Fmt defers formatting to the logger.
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				all[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	a.l.Log(ctx, lv, msg, all...)
}

func (a *hcAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hcAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hcAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hcAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hcAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hcAdapter) enabled(l hclog.Level) bool {
	return a.l.Enabled(context.Background(), a.toSlog(l))
}

func (a *hcAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hcAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hcAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hcAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hcAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hcAdapter) ImpliedArgs() []any { return a.implied }

func (a *hcAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.implied = append(append([]any(nil), a.implied...), args...)
	return &c
}

func (a *hcAdapter) Name() string { return a.name }

func (a *hcAdapter) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	c.l = a.l.With("component", name)
	return &c
}

func (a *hcAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	c.l = a.l.With("component", name)
	return &c
}

// SetLevel is ignored: the slog handler owns the level.
func (a *hcAdapter) SetLevel(hclog.Level) {}

func (a *hcAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Error
}

func (a *hcAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelInfo)
}

func (a *hcAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(nil).Writer()
}
