package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// shell is one session of the interactive shell (or of commands read from
// a pipe). It has one owner ID, used by lock, unlock and extend-lock unless
// a command names another, and it remembers the locks it took so that Tab
// can complete them and leaving can release them.
type shell struct {
	c         *client.Client
	endpoints []string
	owner     string
	timeout   time.Duration
	p         printer
	errOut    io.Writer
	cmds      []command

	// interactive: a person at a terminal; otherwise commands come from a
	// pipe or file, and messages name the line they are about.
	interactive bool
	lineNo      int

	mu   sync.Mutex
	held map[target]bool

	// last is the exit code of the last command, the session's exit code
	// when it ends.
	last int
}

// runShell runs the shell until exit, quit, end of input or a signal, and
// returns its exit code: that of the last command, or 128+N after signal N.
func runShell(c *client.Client, o *options, std stdio, getenv func(string) string) int {
	s := &shell{
		c:         c,
		endpoints: o.endpoints,
		owner:     client.NewOwner(),
		timeout:   o.timeout,
		p:         printer{out: std.out, errOut: std.err, json: o.json},
		errOut:    std.err,
		cmds:      commands(),
		held:      map[target]bool{},
	}
	var src lineSource = pipedLines{bufio.NewReader(std.in)}
	in, out, interactive := isTerminal(std.in, std.out)
	s.interactive = interactive
	if interactive {
		hist := loadHistory(historyPath(getenv), historySize, std.err)
		tl, err := newTermLines(in, out, hist, s.complete)
		if err != nil {
			fmt.Fprintf(std.err, "%s%v\n", consoleErrorPrefix, err)
			return exitUsage
		}
		src = tl
		s.banner(std.out)
	}
	defer src.close()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, stopSignals()...)
	defer signal.Stop(sigs)

	// Lines are read in their own goroutine, one when asked for, so that a
	// signal can end the session while it waits for input.
	type lineResult struct {
		line string
		err  error
	}
	want := make(chan struct{})
	lines := make(chan lineResult, 1)
	defer close(want)
	go func() {
		for range want {
			l, err := src.readLine()
			lines <- lineResult{l, err}
		}
	}()
	asked := false
	for {
		if !asked {
			want <- struct{}{}
			asked = true
		}
		select {
		case lr := <-lines:
			asked = false
			if lr.err != nil {
				if interactive {
					fmt.Fprintln(std.out) // the prompt line Ctrl-D left open
				}
				if !errors.Is(lr.err, io.EOF) {
					fmt.Fprintf(std.err, "%sreading commands: %v\n", consoleErrorPrefix, lr.err)
				}
				return s.leave(nil)
			}
			s.lineNo++
			if quit, sig := s.execute(lr.line, sigs); quit {
				return s.leave(sig)
			}
		case sig := <-sigs:
			if interactive && sig == syscall.SIGINT {
				continue // at the prompt, Ctrl-C only drops the line
			}
			return s.leave(sig)
		}
	}
}

func (s *shell) banner(w io.Writer) {
	fmt.Fprintf(w, "kahuna-cli %s, the Kahuna lock server's shell; endpoints %s\n", version(), strings.Join(s.endpoints, ", "))
	fmt.Fprintf(w, "This session's owner is %s: lock, unlock and extend-lock use it unless given an OWNER.\n", s.owner)
	fmt.Fprintf(w, "Type \"help\" for the commands, Tab to complete; \"exit\" or Ctrl-D releases this session's locks and leaves.\n")
}

// execute runs one line. It returns quit when the session should end, with
// the signal that ended it, if any.
func (s *shell) execute(line string, sigs <-chan os.Signal) (quit bool, sig os.Signal) {
	words, err := splitWords(line)
	if err != nil {
		s.usageError(err)
		return false, nil
	}
	if len(words) == 0 || strings.HasPrefix(words[0], "#") {
		return false, nil
	}
	cmd, ok := s.lookup(words[0])
	if !ok {
		s.usageError(unknownCommand(words[0], s.cmds))
		return false, nil
	}
	args := words[1:]
	if len(args) < cmd.min || len(args) > cmd.max {
		s.usageError(usagef("usage: %s", cmd.usage()))
		return false, nil
	}
	switch cmd.name {
	case "exit", "quit":
		return true, nil
	case "help":
		if err := writeHelp(s.p.out, s.cmds, strings.Join(args, "")); err != nil {
			s.usageError(err)
			return false, nil
		}
		s.last = exitOK
		return false, nil
	}
	c, err := cmd.bind(s, cmd, args)
	if err != nil {
		s.usageError(fmt.Errorf("%s: %w", cmd.name, err))
		return false, nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.timeout+c.wait)
	defer cancel()
	done := make(chan outcome, 1)
	go func() { done <- c.do(ctx) }()
	select {
	case out := <-done:
		s.show(out)
		return false, nil
	case sig = <-sigs:
		cancel()
		out := <-done
		if out.exitCode() == exitUnavailable {
			// The cancellation ended it; say so rather than "unavailable".
			out = interruptedReport(target{}, signalExitCode(sig))
		}
		s.show(out)
		if s.interactive && sig == syscall.SIGINT {
			return false, nil // Ctrl-C cancels the command, not the session
		}
		return true, sig
	}
}

func (s *shell) show(out outcome) {
	s.p.print(out)
	s.last = out.exitCode()
}

func (s *shell) usageError(err error) {
	where := ""
	if !s.interactive {
		where = fmt.Sprintf("line %d: ", s.lineNo)
	}
	fmt.Fprintf(s.errOut, "%s%s%s\n", consoleErrorPrefix, where, unwrapUsage(err))
	s.last = exitUsage
}

func (s *shell) lookup(name string) (command, bool) {
	for _, c := range s.cmds {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// hold records that the session holds (or no longer holds) a lock.
func (s *shell) hold(t target, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if held {
		s.held[t] = true
	} else {
		delete(s.held, t)
	}
}

// heldLocks are the locks the session holds, sorted by name.
func (s *shell) heldLocks() []target {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []target
	for t := range s.held {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b target) int {
		if c := strings.Compare(a.resource, b.resource); c != 0 {
			return c
		}
		return int(a.durability) - int(b.durability)
	})
	return out
}

// complete is Tab: command names first, then help's command or the name of
// a lock the session holds.
func (s *shell) complete(line string, pos int) (string, int, []string) {
	return completeLine(line, pos, func(prev []string) []string {
		var out []string
		switch len(prev) {
		case 0:
			for _, c := range s.cmds {
				out = append(out, c.name)
			}
		case 1:
			cmd, ok := s.lookup(prev[0])
			switch {
			case ok && cmd.name == "help":
				for _, c := range s.cmds {
					out = append(out, c.name)
				}
			case ok && cmd.lockArg:
				for _, t := range s.heldLocks() {
					if t.durability == cmd.durability {
						out = append(out, t.resource)
					}
				}
			}
		}
		return out
	})
}

// leave releases the locks the session holds and returns the session's
// exit code: 128+N if signal N ended it, else that of the last command, or
// 3 if a lock could not be released.
func (s *shell) leave(sig os.Signal) int {
	code := s.last
	if sig != nil {
		code = signalExitCode(sig)
	}
	for _, t := range s.heldLocks() {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		err := s.c.Unlock(ctx, t.resource, s.owner, t.durability)
		cancel()
		r := newReport(t, resultReleased)
		r.Owner = s.owner
		r.line = "released " + describe(t)
		switch {
		case errors.Is(err, client.ErrNotFound):
			r.Result, r.line = resultNotFound, describe(t)+" had already expired"
		case errors.Is(err, client.ErrNotOwner):
			r.Result, r.line = resultNotOwner, describe(t)+" had expired and is held by another owner now"
		case err != nil:
			r = errorReport(t, fmt.Errorf("releasing %s: %w", describe(t), err))
			if code == exitOK {
				code = r.code
			}
		}
		s.p.print(r)
		s.hold(t, false)
	}
	return code
}

// describe names a lock in messages: its name, quoted if need be, and
// "(ephemeral)" for ephemeral ones.
func describe(t target) string {
	if t.durability == client.Ephemeral {
		return quoteWord(t.resource) + " (ephemeral)"
	}
	return quoteWord(t.resource)
}
