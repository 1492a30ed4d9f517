package main

import (
	"bytes"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
)

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseArgs(t *testing.T) {
	noEnv := getenv(nil)
	for _, tc := range []struct {
		args  []string
		env   map[string]string
		check func(o *options) bool
	}{
		{args: nil, check: func(o *options) bool {
			return o.op == opShell && slices.Equal(o.endpoints, []string{defaultEndpoint}) && o.timeout == defaultTimeout && !o.json
		}},
		{args: []string{"--lock", "a", "--expires", "1500"}, check: func(o *options) bool {
			return o.op == opLock && o.resource == "a" && o.expires == 1500*time.Millisecond && o.owner == "" && o.durability == client.Persistent
		}},
		// One dash or two, value after = or as the next word.
		{args: []string{"-lock=a", "-expires=10m", "-owner", "me", "-wait", "30s", "-ephemeral"}, check: func(o *options) bool {
			return o.op == opLock && o.resource == "a" && o.expires == 10*time.Minute && o.owner == "me" && o.wait == 30*time.Second && o.durability == client.Ephemeral
		}},
		{args: []string{"--lock", "a", "--expires", "1m", "--", "sh", "-c", "echo --lock"}, check: func(o *options) bool {
			return o.op == opRun && slices.Equal(o.command, []string{"sh", "-c", "echo --lock"}) && o.grace == defaultGrace
		}},
		{args: []string{"--lock", "a", "--expires", "1m", "--grace", "2s", "--", "true"}, check: func(o *options) bool {
			return o.op == opRun && o.grace == 2*time.Second
		}},
		{args: []string{"--unlock-lock", "a", "--owner", "me"}, check: func(o *options) bool { return o.op == opUnlock && o.resource == "a" }},
		{args: []string{"--unlock", "a", "--owner", "me"}, check: func(o *options) bool { return o.op == opUnlock && o.resource == "a" }},
		{args: []string{"--extend-lock", "a", "--owner", "me", "--expires", "5s"}, check: func(o *options) bool { return o.op == opExtend }},
		{args: []string{"--get-lock", "a", "--format", "json"}, check: func(o *options) bool { return o.op == opGet && o.json }},
		{args: []string{"--list", "--prefix", "jobs/"}, check: func(o *options) bool { return o.op == opList && o.prefix == "jobs/" }},
		{args: []string{"--force-unlock", "a", "--ephemeral"}, check: func(o *options) bool {
			return o.op == opForceUnlock && o.durability == client.Ephemeral
		}},
		{args: []string{"--cluster"}, check: func(o *options) bool { return o.op == opCluster && !o.json }},
		{args: []string{"-remove-node=n4", "--format", "json"}, check: func(o *options) bool { return o.op == opRemoveNode && o.node == "n4" && o.json }},
		// An empty owner (an unset variable) is no owner for --lock.
		{args: []string{"--lock", "a", "--owner", "", "--expires", "1s"}, check: func(o *options) bool { return o.op == opLock && o.owner == "" }},
		// Endpoints: flag, aliases, environment, default.
		{args: []string{"-c", "http://a:1,b:2"}, env: map[string]string{"KAHUNA_ENDPOINTS": "http://env:1"}, check: func(o *options) bool {
			return slices.Equal(o.endpoints, []string{"http://a:1", "b:2"})
		}},
		{args: []string{"--connection-source", "http://a:1"}, check: func(o *options) bool { return slices.Equal(o.endpoints, []string{"http://a:1"}) }},
		{args: []string{"--endpoints", " http://a:1 , "}, check: func(o *options) bool { return slices.Equal(o.endpoints, []string{"http://a:1"}) }},
		{env: map[string]string{"KAHUNA_ENDPOINTS": "http://env:1,http://env:2"}, check: func(o *options) bool {
			return slices.Equal(o.endpoints, []string{"http://env:1", "http://env:2"})
		}},
		{args: []string{"-t", "2500"}, check: func(o *options) bool { return o.timeout == 2500*time.Millisecond }},
		{args: []string{"--timeout", "1m"}, check: func(o *options) bool { return o.timeout == time.Minute }},
	} {
		o, err := parseArgs(tc.args, getenv(tc.env))
		if tc.env == nil {
			o, err = parseArgs(tc.args, noEnv)
		}
		if err != nil || !tc.check(o) {
			t.Errorf("parseArgs(%q) = %+v, %v", tc.args, o, err)
		}
	}
}

// TestUsageErrors runs kahuna-cli in-process with bad command lines: each
// must exit 2 with a one-line reason and a pointer to --help, before it
// contacts any server.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
		{[]string{"lock", "a"}, `unexpected argument "lock": one-shot operations are flags`},
		{[]string{"--lock", "a"}, "--lock needs --expires"},
		{[]string{"--lock", "a", "--expires"}, "flag needs an argument: -expires"},
		{[]string{"--lock", "a", "--expires", "soon"}, `invalid value "soon" for flag -expires: "soon" is not a duration`},
		{[]string{"--lock", "a", "--expires", "0"}, "--expires: 0s is shorter than the minimum lease of 1ms"},
		{[]string{"--lock", "a", "--expires", "1s", "--wait", "-1"}, `invalid value "-1" for flag -wait: "-1" is negative`},
		{[]string{"--lock", "a", "--expires", "1s", "--prefix", "x"}, "--prefix does not apply to --lock"},
		{[]string{"--lock", "a", "--expires", "1s", "./job.sh"}, `unexpected argument "./job.sh": put the command to run under the lock after --`},
		{[]string{"--lock", "a", "--expires", "1s", "--"}, "no command after --"},
		{[]string{"--lock", "a", "--expires", "1s", "--grace", "1s"}, "--grace does not apply to --lock"},
		{[]string{"--get-lock", "a", "--", "true"}, "a command after -- runs under a lock"},
		{[]string{"--lock", "a", "--unlock", "a"}, "--lock and --unlock cannot be combined"},
		{[]string{"--extend-lock", "a", "--expires", "1s"}, "--extend-lock needs --owner"},
		{[]string{"--extend-lock", "a", "--owner", "me"}, "--extend-lock needs --expires"},
		{[]string{"--unlock", "a"}, "--unlock needs --owner"},
		{[]string{"--unlock-lock", "a", "--owner", ""}, "--unlock needs a non-empty --owner"},
		{[]string{"--unlock", "a", "--owner", "me", "--expires", "1s", "--wait", "1s"}, "--expires, --wait do not apply to --unlock"},
		{[]string{"--get-lock", "a", "--owner", "me"}, "--owner does not apply to --get-lock"},
		{[]string{"--list", "--ephemeral", "--expires", "1s"}, "--expires does not apply to --list"},
		{[]string{"--ephemeral"}, "--ephemeral does not apply to the shell"},
		{[]string{"--format", "yaml"}, `--format is "yaml"; use console or json`},
		{[]string{"--remove-node"}, "flag needs an argument: -remove-node"},
		{[]string{"--remove-node", ""}, "--remove-node needs a node ID (--remove-node ID)"},
		{[]string{"--remove-node", "-t", "1s"}, `--remove-node needs a node ID, not the flag "-t"`},
		{[]string{"--remove-node", "n1", "n2"}, `unexpected argument "n2": --remove-node takes no other argument`},
		{[]string{"--remove-node", "n1", "--owner", "me"}, "--owner does not apply to --remove-node"},
		{[]string{"--cluster", "--remove-node", "n1"}, "--cluster and --remove-node cannot be combined"},
		{[]string{"--cluster", "--ephemeral"}, "--ephemeral does not apply to --cluster"},
		{[]string{"--cluster", "n1"}, `unexpected argument "n1": --cluster takes no other argument`},
		{[]string{"--cluster", "--", "true"}, "a command after -- runs under a lock"},
		{[]string{"-t", "0"}, "--timeout must be longer than 0"},
		{[]string{"-c", " , "}, "--connection-source lists no endpoint"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, getenv(nil), stdio{in: strings.NewReader(""), out: &out, err: &errOut})
		want := "kahuna-cli: " + tc.msg
		if code != exitUsage || !strings.HasPrefix(errOut.String(), want) || !strings.HasSuffix(errOut.String(), "Run 'kahuna-cli --help' for usage.\n") || out.Len() > 0 {
			t.Errorf("kahuna-cli %q: exit %d\nstdout %q\nstderr %q\nwant exit 2 and stderr starting %q", tc.args, code, out.String(), errOut.String(), want)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}} {
		var out, errOut bytes.Buffer
		if code := run(args, getenv(nil), stdio{out: &out, err: &errOut}); code != 0 || !strings.Contains(out.String(), "--lock NAME --expires D") || !strings.Contains(out.String(), "--cluster ") ||
			!strings.Contains(out.String(), "--remove-node ID ") || !strings.Contains(out.String(), "Exit codes") {
			t.Errorf("%q: exit %d, stdout %q stderr %q", args, code, out.String(), errOut.String())
		}
	}
	var out bytes.Buffer
	if code := run([]string{"--version"}, getenv(nil), stdio{out: &out, err: &out}); code != 0 || !strings.HasPrefix(out.String(), "kahuna-cli ") {
		t.Errorf("--version: exit %d, %q", code, out.String())
	}
	if _, err := parseArgs([]string{"--help"}, getenv(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}
