package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// errUsage marks a mistake in how kahuna-cli was called (exit code 2).
var errUsage = errors.New("usage")

// usagef returns a usage error with a message.
func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// defaultEndpoint is where a local kahunad listens by default.
const defaultEndpoint = "http://127.0.0.1:8082"

// defaultTimeout bounds a whole command (a --wait is added to it). Long
// enough to ride out a leader election or two, short enough that a down
// server is reported soon.
const defaultTimeout = 10 * time.Second

// defaultGrace is how long a command that lost its lock gets between
// SIGTERM and SIGKILL.
const defaultGrace = 10 * time.Second

// op is what one invocation does.
type op int

const (
	opShell       op = iota // no one-shot flag: the interactive shell
	opLock                  // --lock
	opRun                   // --lock … -- CMD: run CMD under the lock
	opExtend                // --extend-lock
	opUnlock                // --unlock / --unlock-lock
	opGet                   // --get-lock
	opList                  // --list
	opForceUnlock           // --force-unlock
	opCluster               // --cluster
	opRemoveNode            // --remove-node
)

// options are the parsed command line.
type options struct {
	op         op
	resource   string
	node       string // --remove-node
	endpoints  []string
	token      string
	tls        tlsFiles
	json       bool
	timeout    time.Duration
	owner      string
	expires    time.Duration
	wait       time.Duration
	grace      time.Duration
	durability client.Durability
	prefix     string
	command    []string
	version    bool
}

// tlsFiles are the TLS flags.
type tlsFiles struct{ ca, cert, key string }

// target is the lock the options name.
func (o *options) target() target { return target{resource: o.resource, durability: o.durability} }

// flagSet declares every flag into o and returns the set with, for each
// flag name, its canonical name (aliases map to the flag they stand for).
func flagSet(o *options, raw *rawFlags) (*flag.FlagSet, map[string]string) {
	fs := flag.NewFlagSet("kahuna-cli", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	canon := map[string]string{}
	str := func(p *string, def string, names ...string) {
		for _, n := range names {
			fs.StringVar(p, n, def, "")
			canon[n] = names[0]
		}
	}
	dur := func(p *time.Duration, def time.Duration, names ...string) {
		*p = def
		for _, n := range names {
			fs.Var(durationFlag{p}, n, "")
			canon[n] = names[0]
		}
	}
	boolean := func(p *bool, name string) {
		fs.BoolVar(p, name, false, "")
		canon[name] = name
	}
	str(&raw.endpoints, "", "connection-source", "c", "endpoints")
	str(&raw.format, "console", "format")
	str(&raw.token, "", "token")
	str(&o.tls.ca, "", "cacert")
	str(&o.tls.cert, "", "cert")
	str(&o.tls.key, "", "key")
	dur(&o.timeout, defaultTimeout, "timeout", "t")
	str(&raw.lock, "", "lock")
	str(&raw.extend, "", "extend-lock")
	str(&raw.unlock, "", "unlock", "unlock-lock")
	str(&raw.get, "", "get-lock")
	boolean(&raw.list, "list")
	str(&raw.force, "", "force-unlock")
	boolean(&raw.cluster, "cluster")
	str(&o.node, "", "remove-node")
	str(&o.owner, "", "owner")
	dur(&o.expires, 0, "expires")
	dur(&o.wait, 0, "wait")
	dur(&o.grace, defaultGrace, "grace")
	boolean(&raw.ephemeral, "ephemeral")
	str(&o.prefix, "", "prefix")
	boolean(&o.version, "version")
	return fs, canon
}

// rawFlags hold flag values that need interpreting after parsing.
type rawFlags struct {
	endpoints, format, token         string
	lock, extend, unlock, get, force string
	list, ephemeral, cluster         bool
}

// opFlag is a one-shot operation flag.
type opFlag struct {
	name string
	op   op
}

// opFlags are the one-shot operation flags.
func opFlags() []opFlag {
	return []opFlag{
		{"lock", opLock},
		{"extend-lock", opExtend},
		{"unlock", opUnlock},
		{"get-lock", opGet},
		{"list", opList},
		{"force-unlock", opForceUnlock},
		{"cluster", opCluster},
		{"remove-node", opRemoveNode},
	}
}

// flags lists the flags an operation takes beyond the global ones (-c,
// --format, -t, which every operation takes), and those it needs.
func (o op) flags() (allowed, required []string) {
	switch o {
	case opLock:
		return []string{"owner", "expires", "wait", "ephemeral"}, []string{"expires"}
	case opRun:
		return []string{"owner", "expires", "wait", "ephemeral", "grace"}, []string{"expires"}
	case opExtend:
		return []string{"owner", "expires", "ephemeral"}, []string{"owner", "expires"}
	case opUnlock:
		return []string{"owner", "ephemeral"}, []string{"owner"}
	case opGet, opForceUnlock:
		return []string{"ephemeral"}, nil
	case opList:
		return []string{"prefix", "ephemeral"}, nil
	}
	return nil, nil
}

// parseArgs parses the command line. getenv supplies KAHUNA_ENDPOINTS. A
// usage mistake is an error matching errUsage; --help is flag.ErrHelp.
func parseArgs(args []string, getenv func(string) string) (*options, error) {
	o := &options{}
	raw := &rawFlags{}
	fs, canon := flagSet(o, raw)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[canon[f.Name]] = true })

	// The operation: at most one one-shot flag.
	var ops []string
	for _, f := range opFlags() {
		if set[f.name] {
			ops = append(ops, "--"+f.name)
			o.op = f.op
		}
	}
	if len(ops) > 1 {
		return nil, usagef("%s cannot be combined; give one operation", strings.Join(ops, " and "))
	}
	o.resource = map[op]string{opLock: raw.lock, opExtend: raw.extend, opUnlock: raw.unlock, opGet: raw.get, opForceUnlock: raw.force}[o.op]
	// Checked before the other arguments: "--remove-node --format json"
	// takes --format as the ID and would otherwise be reported as a stray
	// "json".
	if o.op == opRemoveNode {
		if o.node == "" {
			return nil, usagef("--remove-node needs a node ID (--remove-node ID)")
		}
		if strings.HasPrefix(o.node, "-") {
			return nil, usagef("--remove-node needs a node ID, not the flag %q", o.node)
		}
	}

	// A command after "--" runs under the lock.
	rest := fs.Args()
	dashdash := len(rest) < len(args) && args[len(args)-len(rest)-1] == "--"
	switch {
	case len(rest) > 0 && !dashdash:
		switch o.op {
		case opShell:
			return nil, usagef("unexpected argument %q: one-shot operations are flags (--lock NAME …); with no flags kahuna-cli starts its shell", rest[0])
		case opCluster, opRemoveNode:
			return nil, usagef("unexpected argument %q: %s takes no other argument", rest[0], opName(o.op))
		}
		return nil, usagef("unexpected argument %q: put the command to run under the lock after --", rest[0])
	case dashdash && o.op != opLock:
		return nil, usagef("a command after -- runs under a lock, so it needs --lock NAME --expires D")
	case dashdash && len(rest) == 0:
		return nil, usagef("no command after --")
	case dashdash:
		o.op, o.command = opRun, rest
	}

	// Flags the operation does not take, and flags it needs.
	allowed, required := o.op.flags()
	ok := map[string]bool{"connection-source": true, "format": true, "timeout": true, "version": true, "token": true, "cacert": true, "cert": true, "key": true}
	for _, n := range allowed {
		ok[n] = true
	}
	var stray []string
	fs.VisitAll(func(f *flag.Flag) {
		if n := canon[f.Name]; n == f.Name && set[n] && !ok[n] && !isOpFlag(n) {
			stray = append(stray, "--"+n)
		}
	})
	if len(stray) > 0 {
		return nil, usagef("%s %s not apply to %s", strings.Join(stray, ", "), plural(len(stray), "does", "do"), opName(o.op))
	}
	for _, n := range required {
		if !set[n] {
			return nil, usagef("%s needs --%s", opName(o.op), n)
		}
	}

	// Values.
	if set["expires"] {
		if err := checkLease(o.expires); err != nil {
			return nil, usagef("--expires: %w", err)
		}
	}
	// An empty --owner (say, an unset $HOSTNAME) is no owner: --lock makes
	// one up, the operations that need one refuse.
	if o.owner == "" && slices.Contains(required, "owner") {
		return nil, usagef("%s needs a non-empty --owner", opName(o.op))
	}
	if o.timeout <= 0 {
		return nil, usagef("--timeout must be longer than 0")
	}
	switch raw.format {
	case "console":
	case "json":
		o.json = true
	default:
		return nil, usagef("--format is %q; use console or json", raw.format)
	}
	if raw.ephemeral {
		o.durability = client.Ephemeral
	}
	o.token = raw.token
	if !set["token"] {
		o.token = getenv("KAHUNA_TOKEN")
	}
	list := raw.endpoints
	if !set["connection-source"] {
		list = getenv("KAHUNA_ENDPOINTS")
	}
	o.endpoints = client.ParseEndpoints(list)
	if len(o.endpoints) == 0 {
		if set["connection-source"] {
			return nil, usagef("--connection-source lists no endpoint")
		}
		o.endpoints = []string{defaultEndpoint}
	}
	return o, nil
}

func isOpFlag(name string) bool {
	for _, f := range opFlags() {
		if f.name == name {
			return true
		}
	}
	return false
}

// opName names an operation in messages.
func opName(o op) string {
	switch o {
	case opRun:
		return "--lock … -- CMD"
	case opShell:
		return "the shell (no operation flag)"
	}
	for _, f := range opFlags() {
		if f.op == o {
			return "--" + f.name
		}
	}
	return "?"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// usageText is the --help page.
const usageText = `kahuna-cli: the command-line client of the Kahuna lock server

Usage:
  kahuna-cli [global flags]                              interactive shell (or commands from stdin)
  kahuna-cli [global flags] --lock NAME --expires D [--owner O] [--wait D] [--ephemeral]
  kahuna-cli [global flags] --lock NAME --expires D [--owner O] [--wait D] [--ephemeral] [--grace D] -- CMD [ARGS...]
  kahuna-cli [global flags] --extend-lock NAME --owner O --expires D [--ephemeral]
  kahuna-cli [global flags] --unlock NAME --owner O [--ephemeral]          (alias --unlock-lock)
  kahuna-cli [global flags] --get-lock NAME [--ephemeral]
  kahuna-cli [global flags] --list [--prefix P] [--ephemeral]
  kahuna-cli [global flags] --force-unlock NAME [--ephemeral]
  kahuna-cli [global flags] --cluster                    the nodes and partitions, as a node sees them
  kahuna-cli [global flags] --remove-node ID             take node ID out of the cluster

Global flags:
  -c, --connection-source URLS   comma-separated node URLs (alias --endpoints; env KAHUNA_ENDPOINTS;
                                 default http://127.0.0.1:8082)
      --format console|json      output: a line of text (default) or one JSON object
      --token T                  bearer token for a cluster with --auth-file (env KAHUNA_TOKEN)
      --cacert F                 CA certificate (PEM) to trust for https:// endpoints (default: the system's)
      --cert F, --key F          client certificate and key, for a cluster with --tls-client-ca-file
  -t, --timeout D                give up on the server after D (default 10s); a --wait is added to it
      --version                  print the version and exit

Operation flags:
      --owner O        owner ID (--lock: default a random one, printed)
      --expires D      lease: the lock expires D after it is taken or extended
      --wait D         if the lock is held, wait up to D for it (first come, first served)
      --ephemeral      use the ephemeral namespace (in-memory on the partition leader)
      --prefix P       --list: only resources starting with P
      --grace D        -- CMD: time between SIGTERM and SIGKILL when the lock is lost (default 10s)

Durations: a bare integer is milliseconds (1500), or a Go duration (1.5s, 10m, 1h30m).
Flags take one or two dashes (-lock or --lock) and a value as the next word or after = (--lock=NAME).

Run under a lock (-- CMD): CMD runs while the lock is held and kept alive, with KAHUNA_LOCK_RESOURCE,
KAHUNA_LOCK_OWNER and KAHUNA_FENCING_TOKEN in its environment; the lock is released when it exits.

Cluster: --cluster shows every node (gossip state, role, addresses) and every partition (leader,
term, commit and applied index, locks, voters, non-voters). --remove-node ID moves the node's
leaderships away and takes it out of every partition; an unknown node, or a removal that would
leave a partition without a quorum, is refused (exit 1) and changes nothing.

Exit codes: 0 done; 1 negative outcome (busy, not the owner, not found, node not removed);
2 usage error; 3 server unreachable or server error; 75 lost the lock while CMD ran; with -- CMD
otherwise CMD's own exit code (128+N if a signal N ended it).

See docs/cli.md for the shell, the JSON output and scripting recipes.
`
