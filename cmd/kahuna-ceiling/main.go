// Command kahuna-ceiling is a Kahuna look-alike that does no work: it answers
// every try-lock with a grant and every try-unlock with an unlock, through the
// same HTTP stack as kahunad (net/http and chi, the same server timeouts).
// Loading it with kahuna-bench measures what that stack alone can serve on a
// machine, so a Kahuna benchmark run on the same machine can be read against
// it: no server built on this stack answers more requests per second there.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/kahuna-go/kahuna/pkg/server"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		os.Exit(2) // the flag package has printed the problem and the usage
	default:
		fmt.Fprintf(os.Stderr, "kahuna-ceiling: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a command line the flag package refused.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kahuna-ceiling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:18090", "address to listen on")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kahuna-ceiling [flags]\n\nServes Kahuna-shaped replies without doing any work, to measure the HTTP stack's ceiling.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kahuna-ceiling: unexpected arguments: %v\n", fs.Args())
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	log.Info("serving", "addr", ln.Addr().String())
	return serve(ctx, ln)
}

// serve answers on ln until ctx is done.
func serve(ctx context.Context, ln net.Listener) error {
	// The same timeouts as kahunad's API server: a deadline per connection
	// read is part of what a request costs there.
	srv := &http.Server{
		Handler:           newHandler("ceiling"),
		ReadHeaderTimeout: server.APIReadHeaderTimeout,
		IdleTimeout:       server.APIIdleTimeout,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	}
}

// newHandler routes the paths kahuna-bench uses. It reads each request body
// in full, as kahunad does, and replies with bodies of the size kahunad's
// replies have; the grant's token rises, so the load tool's fencing check
// holds.
func newHandler(servedFrom string) http.Handler {
	var token atomic.Int64
	lockHead := []byte(`{"type":` + strconv.Itoa(int(wire.Locked)) + `,"servedFrom":` + strconv.Quote(servedFrom) + `,"fencingToken":`)
	unlocked := []byte(`{"type":` + strconv.Itoa(int(wire.Unlocked)) + `,"servedFrom":` + strconv.Quote(servedFrom) + `}`)
	reply := func(w http.ResponseWriter, r *http.Request, body []byte) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
	mux := chi.NewRouter()
	mux.Get(wire.PathReadyz, func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, []byte(`{"status":"ready","servedFrom":`+strconv.Quote(servedFrom)+`}`))
	})
	mux.Post(wire.PathTryLock, func(w http.ResponseWriter, r *http.Request) {
		body := make([]byte, 0, len(lockHead)+24)
		body = append(body, lockHead...)
		body = strconv.AppendInt(body, token.Add(1), 10)
		reply(w, r, append(body, '}'))
	})
	mux.Post(wire.PathTryUnlock, func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, unlocked)
	})
	return mux
}
