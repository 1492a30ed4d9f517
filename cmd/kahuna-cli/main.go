// Command kahuna-cli is the command-line client of Kahuna, the distributed
// lock server: one-shot operations for scripts (--lock, --unlock, …), running
// a command while holding a lock (--lock NAME --expires D -- CMD), and an
// interactive shell with line editing, history and completion. Every server
// interaction goes through the Go client, pkg/client. See docs/cli.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kahuna-go/kahuna/pkg/client"
	"github.com/kahuna-go/kahuna/pkg/tlsconfig"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}

// stdio are the standard streams of one run.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// run is kahuna-cli with its arguments, environment and streams; it returns
// the exit code.
func run(args []string, getenv func(string) string, std stdio) int {
	o, err := parseArgs(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(std.out, usageText)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(std.err, "%s%v\nRun 'kahuna-cli --help' for usage.\n", consoleErrorPrefix, unwrapUsage(err))
		return exitUsage
	}
	if o.version {
		fmt.Fprintf(std.out, "kahuna-cli %s\n", version())
		return exitOK
	}
	cfg := client.Config{Endpoints: o.endpoints, Token: o.token}
	if o.tls != (tlsFiles{}) {
		if cfg.TLS, err = tlsconfig.Client(o.tls.ca, o.tls.cert, o.tls.key); err != nil {
			fmt.Fprintf(std.err, "%s%v\n", consoleErrorPrefix, err)
			return exitUsage
		}
	}
	c, err := client.New(cfg)
	if err != nil {
		fmt.Fprintf(std.err, "%s%v\n", consoleErrorPrefix, err)
		return exitUsage
	}
	defer c.Close()
	switch o.op {
	case opShell:
		return runShell(c, o, std, getenv)
	case opRun:
		return runUnderLock(c, o, std)
	default:
		return oneShot(c, o, std)
	}
}

// unwrapUsage drops the "usage: " prefix errUsage adds, for messages.
func unwrapUsage(err error) string {
	msg := err.Error()
	if p := errUsage.Error() + ": "; len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}
