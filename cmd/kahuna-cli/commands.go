package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// command is one shell command.
type command struct {
	name     string
	args     string // the arguments, for usage lines: "NAME EXPIRES [WAIT]"
	min, max int    // how many arguments it takes
	brief    string
	// lockArg: the first argument names a lock of namespace durability,
	// which Tab completes from the locks the session holds.
	lockArg    bool
	durability client.Durability
	// bind checks the arguments and returns the call to make; nil for
	// commands the shell handles itself (help, exit, quit).
	bind func(s *shell, cmd command, args []string) (call, error)
}

// call is a bound command: the work and how long beyond the timeout it may
// wait for a lock.
type call struct {
	wait time.Duration
	do   func(ctx context.Context) outcome
}

func (c command) usage() string {
	if c.args == "" {
		return c.name
	}
	return c.name + " " + c.args
}

// commands is the shell's command set. The lock commands come twice: as
// written for persistent locks, and with an "e" in front for ephemeral ones.
func commands() []command {
	var cmds []command
	for _, d := range []client.Durability{client.Persistent, client.Ephemeral} {
		e, kind := "", "persistent"
		if d == client.Ephemeral {
			e, kind = "e", "ephemeral"
		}
		cmds = append(cmds,
			command{name: e + "lock", args: "NAME EXPIRES [WAIT]", min: 2, max: 3, lockArg: true, durability: d,
				brief: "take the " + kind + " lock NAME for EXPIRES as this session's owner; wait up to WAIT if it is held",
				bind:  bindLock},
			command{name: e + "unlock", args: "NAME [OWNER]", min: 1, max: 2, lockArg: true, durability: d,
				brief: "release the " + kind + " lock NAME held by this session (or by OWNER)",
				bind:  bindUnlock},
			command{name: e + "extend-lock", args: "NAME EXPIRES [OWNER]", min: 2, max: 3, lockArg: true, durability: d,
				brief: "make the " + kind + " lock NAME expire EXPIRES from now (held by this session, or by OWNER)",
				bind:  bindExtend},
			command{name: e + "get-lock", args: "NAME", min: 1, max: 1, lockArg: true, durability: d,
				brief: "show who holds the " + kind + " lock NAME, its fencing token and the time left",
				bind:  bindGet},
			command{name: e + "list", args: "[PREFIX]", min: 0, max: 1, durability: d,
				brief: "list the live " + kind + " locks (those whose name starts with PREFIX)",
				bind:  bindList},
		)
	}
	return append(cmds,
		command{name: "cluster", min: 0, max: 0, brief: "show the nodes (state, role) and each partition's leader, indexes, voters and non-voters", bind: bindCluster},
		command{name: "remove-node", args: "ID", min: 1, max: 1, brief: "take node ID out of the cluster (its leaderships move first)", bind: bindRemoveNode},
		command{name: "help", args: "[COMMAND]", min: 0, max: 1, brief: "list the commands, or explain one"},
		command{name: "exit", min: 0, max: 0, brief: "release the locks this session holds and leave (also quit, Ctrl-D)"},
		command{name: "quit", min: 0, max: 0, brief: "the same as exit"},
	)
}

func bindLock(s *shell, cmd command, args []string) (call, error) {
	t := target{args[0], cmd.durability}
	lease, err := parseLease(args[1])
	if err != nil {
		return call{}, fmt.Errorf("EXPIRES: %w", err)
	}
	var wait time.Duration
	if len(args) > 2 {
		if wait, err = parseDuration(args[2]); err != nil {
			return call{}, fmt.Errorf("WAIT: %w", err)
		}
	}
	return call{wait: wait, do: func(ctx context.Context) outcome {
		r, l := doLock(ctx, s.c, t, s.owner, lease, wait)
		if l != nil {
			s.hold(t, true)
		}
		return r
	}}, nil
}

func bindUnlock(s *shell, cmd command, args []string) (call, error) {
	t := target{args[0], cmd.durability}
	owner := s.owner
	if len(args) > 1 {
		owner = args[1]
	}
	return call{do: func(ctx context.Context) outcome {
		r := doUnlock(ctx, s.c, t, owner)
		if owner == s.owner && (r.Result == resultUnlocked || r.Result == resultNotFound) {
			s.hold(t, false)
		}
		return r
	}}, nil
}

func bindExtend(s *shell, cmd command, args []string) (call, error) {
	t := target{args[0], cmd.durability}
	lease, err := parseLease(args[1])
	if err != nil {
		return call{}, fmt.Errorf("EXPIRES: %w", err)
	}
	owner := s.owner
	if len(args) > 2 {
		owner = args[2]
	}
	return call{do: func(ctx context.Context) outcome {
		return doExtend(ctx, s.c, t, owner, lease)
	}}, nil
}

func bindGet(s *shell, cmd command, args []string) (call, error) {
	t := target{args[0], cmd.durability}
	return call{do: func(ctx context.Context) outcome { return doGet(ctx, s.c, t) }}, nil
}

func bindList(s *shell, cmd command, args []string) (call, error) {
	prefix, d := "", cmd.durability
	if len(args) > 0 {
		prefix = args[0]
	}
	return call{do: func(ctx context.Context) outcome { return doList(ctx, s.c, prefix, d) }}, nil
}

func bindCluster(s *shell, _ command, _ []string) (call, error) {
	return call{do: func(ctx context.Context) outcome { return doCluster(ctx, s.c) }}, nil
}

func bindRemoveNode(s *shell, _ command, args []string) (call, error) {
	id := args[0]
	if id == "" {
		return call{}, errors.New("ID is empty")
	}
	return call{do: func(ctx context.Context) outcome { return doRemoveNode(ctx, s.c, id) }}, nil
}

// writeHelp lists every command, or explains the one named.
func writeHelp(w io.Writer, cmds []command, name string) error {
	if name != "" {
		for _, c := range cmds {
			if c.name == name {
				fmt.Fprintf(w, "usage: %s\n  %s\n", c.usage(), c.brief)
				return nil
			}
		}
		return unknownCommand(name, cmds)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", c.usage(), c.brief)
	}
	tw.Flush()
	fmt.Fprint(w, `
EXPIRES and WAIT: milliseconds (1500) or a Go duration (1.5s, 10m, 1h30m).
Without OWNER, lock, unlock and extend-lock act as this session's owner.
Quote names with blanks: lock 'nightly report' 10m. Lines starting with # are ignored.
Tab completes command names and the names of locks this session holds.
`)
	return nil
}

// unknownCommand is the error for a command name that does not exist,
// suggesting the nearest one.
func unknownCommand(name string, cmds []command) error {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.name
	}
	if best, ok := closest(strings.TrimLeft(name, "-"), names); ok {
		return usagef("unknown command %q; did you mean %q? (help lists the commands)", name, best)
	}
	return usagef("unknown command %q; help lists the commands", name)
}
