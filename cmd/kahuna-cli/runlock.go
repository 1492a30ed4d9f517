package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// runUnderLock is --lock NAME --expires D [--wait D] -- CMD ARGS…: take the
// lock (or exit 1 without running CMD), keep it alive while CMD runs with
// the lock in its environment, forward SIGINT, SIGTERM, SIGHUP and SIGQUIT
// to CMD, then release the lock and exit with CMD's code. If the lock is lost, CMD
// gets SIGTERM, SIGKILL after the grace period, and kahuna-cli exits 75.
//
// kahuna-cli's own messages go to stderr: stdout belongs to CMD.
func runUnderLock(c *client.Client, o *options, std stdio) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, append(stopSignals(), syscall.SIGQUIT)...)
	defer signal.Stop(sigs)

	t := o.target()
	owner := o.owner
	if owner == "" {
		owner = client.NewOwner()
	}
	lock, code := acquireForRun(c, o, t, owner, sigs, std.err)
	if lock == nil {
		return code
	}
	lock.KeepAlive()

	cmd := exec.Command(o.command[0], o.command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = std.in, std.out, std.err
	cmd.Env = append(os.Environ(),
		"KAHUNA_LOCK_RESOURCE="+t.resource,
		"KAHUNA_LOCK_OWNER="+owner,
		"KAHUNA_FENCING_TOKEN="+strconv.FormatInt(lock.Token(), 10),
	)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(std.err, "%scannot run %s: %v\n", consoleErrorPrefix, o.command[0], err)
		release(lock, o.timeout, std.err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return exitNotFound
		}
		return exitCannotRun
	}
	exited := make(chan *os.ProcessState, 1)
	go func() {
		cmd.Wait() // the outcome is in ProcessState
		exited <- cmd.ProcessState
	}()

	lost := lock.Done()
	var grace <-chan time.Time
	var lostErr error
	for {
		select {
		case st := <-exited:
			if lostErr != nil {
				return exitLost
			}
			if err := release(lock, o.timeout, std.err); errors.Is(err, client.ErrNotOwner) {
				fmt.Fprintf(std.err, "%slost the lock %q while %s ran: another owner holds it now\n", consoleErrorPrefix, t.resource, o.command[0])
				return exitLost
			}
			if lock.Err() != nil {
				fmt.Fprintf(std.err, "%slost the lock %q while %s ran: %s\n", consoleErrorPrefix, t.resource, o.command[0], lossReason(lock.Err()))
				return exitLost
			}
			return exitStatus(st)
		case sig := <-sigs:
			// A Ctrl-C at the terminal already reached CMD, which shares
			// the terminal's foreground process group; do not send it twice.
			if !fromTerminal(sig) {
				cmd.Process.Signal(sig)
			}
		case <-lost:
			lost = nil
			if lostErr = lock.Err(); lostErr == nil {
				continue // released, which only happens after CMD exits
			}
			fmt.Fprintf(std.err, "%slost the lock %q: %s; stopping %s (SIGTERM now, SIGKILL in %v)\n",
				consoleErrorPrefix, t.resource, lossReason(lostErr), o.command[0], o.grace)
			cmd.Process.Signal(syscall.SIGTERM)
			grace = time.After(o.grace)
		case <-grace:
			grace = nil
			fmt.Fprintf(std.err, "%s%s did not stop within %v; sending SIGKILL\n", consoleErrorPrefix, o.command[0], o.grace)
			cmd.Process.Kill()
		}
	}
}

// acquireForRun takes the lock for runUnderLock. On failure it prints why
// and returns a nil lock and the exit code: 1 when another owner holds it,
// 128+N when signal N came first, 2 or 3 for errors.
func acquireForRun(c *client.Client, o *options, t target, owner string, sigs <-chan os.Signal, errOut io.Writer) (*client.Lock, int) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout+o.wait)
	defer cancel()
	type result struct {
		lock *client.Lock
		err  error
	}
	got := make(chan result, 1)
	go func() {
		l, err := acquire(ctx, c, t, owner, o.expires, o.wait)
		got <- result{l, err}
	}()
	var r result
	select {
	case r = <-got:
	case sig := <-sigs:
		cancel()
		if r = <-got; r.lock != nil {
			release(r.lock, o.timeout, errOut)
		}
		fmt.Fprintf(errOut, "%s%v while acquiring %q; %s not run\n", consoleErrorPrefix, sig, t.resource, o.command[0])
		return nil, signalExitCode(sig)
	}
	if r.err != nil {
		rep := lockFailure(t, r.err)
		fmt.Fprintf(errOut, "%s (%s not run)\n", rep.text(), o.command[0])
		return nil, rep.exitCode()
	}
	return r.lock, exitOK
}

// release unlocks a lock held for a command, reporting a failure on errOut.
func release(l *client.Lock, timeout time.Duration, errOut io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := l.Unlock(ctx)
	if err != nil && !errors.Is(err, client.ErrNotOwner) {
		fmt.Fprintf(errOut, "%scould not release the lock %q (it expires on its own): %v\n", consoleErrorPrefix, l.Resource(), err)
	}
	return err
}

// exitStatus is a finished command's exit code, 128+N if signal N ended it.
func exitStatus(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignalBase + int(ws.Signal())
	}
	return st.ExitCode()
}

// lossReason says why a kept-alive lock was lost, in words.
func lossReason(err error) string {
	switch {
	case errors.Is(err, client.ErrNotFound):
		return "the server no longer has it (force-unlocked, or it expired)"
	case errors.Is(err, client.ErrNotOwner):
		return "another owner holds it now"
	}
	return err.Error()
}
