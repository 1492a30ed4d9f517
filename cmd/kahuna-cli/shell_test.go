package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testcluster"
	"github.com/kahuna-go/kahuna/pkg/client"
)

// TestShellPiped drives the shell the way a script would, through a pipe:
// no banner, no prompt, one output line per command, and the session's
// locks released on exit.
func TestShellPiped(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)
	a, b := name(t, "a"), name(t, "b c")
	r := sh(t, fmt.Sprintf(`printf 'lock %s 10s\nget-lock %s\nextend-lock %s 1m\n# a comment\n\nlock "%s" 1m\nunlock %s\nexit\n' | kahuna-cli`, a, a, a, b, a))
	m := regexp.MustCompile(`^f(\d+) acquired (\S+)\nf(\d+) (\S+) expires in \d+(\.\d+)?s\nf(\d+) extended\nf\d+ acquired (\S+)\nunlocked\nreleased '` + regexp.QuoteMeta(b) + `'\n$`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || r.stderr != "" || m[1] != m[3] || m[3] != m[6] || m[2] != m[4] || m[2] != m[7] {
		t.Fatalf("got %v", r)
	}
	for _, res := range []string{a, b} {
		if _, err := c.GetInfo(ctx, res, client.Persistent); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("%s after exit: %v", res, err)
		}
	}

	// End of input does the same as exit; quit too.
	for _, end := range []string{"", "quit\n"} {
		r = cli(t, "lock "+a+" 1m\n"+end)
		expect(t, r, 0, `f\d+ acquired \S+\nreleased `+regexp.QuoteMeta(a)+"\n", "")
		if _, err := c.GetInfo(ctx, a, client.Persistent); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("after %q: %v", end, err)
		}
	}
	// A last line without a newline still runs; CRLF line ends are fine.
	expect(t, cli(t, "get-lock "+a+"\r\nget-lock "+a), 1, "not found\nnot found\n", "")
}

// TestShellOwners: lock, unlock and extend-lock act as the session's owner
// unless given one; unlock, extend-lock and get-lock work on locks held
// elsewhere.
func TestShellOwners(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)
	res := name(t, "x")
	l, err := c.TryLock(ctx, res, client.WithOwner("elsewhere"), client.WithLease(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	tok := fmt.Sprint(l.Token())
	r := cli(t, strings.Join([]string{
		"lock " + res + " 10s",
		"get-lock " + res,
		"extend-lock " + res + " 2m",
		"unlock " + res,
		"extend-lock " + res + " 2m elsewhere",
		"unlock " + res + " elsewhere",
		"get-lock " + res,
		"lock " + res + " 1m",
		"unlock " + res + " elsewhere",
	}, "\n"))
	expect(t, r, 1, "not acquired: held by elsewhere\nf"+tok+" elsewhere expires in .*\nnot extended: held by another owner\nnot unlocked: held by another owner\nf"+tok+" extended\nunlocked\nnot found\n"+
		`f\d+ acquired \S+\nnot unlocked: held by another owner\nreleased `+regexp.QuoteMeta(res)+"\n", "")
}

// TestShellErrors: mistakes get one line on stderr naming the input line,
// and the session carries on; the exit code is the last command's.
func TestShellErrors(t *testing.T) {
	t.Parallel()
	res := name(t, "e")
	r := cli(t, strings.Join([]string{
		"lokc " + res + " 10s",
		"unlcok " + res,
		"--lock " + res,
		"frobnicate",
		"lock " + res,
		"lock " + res + " 10s 5s extra",
		"lock " + res + " soon",
		"lock " + res + " 0",
		"lock " + res + " 1s -5s",
		"extend-lock " + res + " 1x",
		"get-lock '" + res,
		"help nope",
		"exit now",
		"get-lock " + res,
	}, "\n"))
	want := []string{
		`line 1: unknown command "lokc"; did you mean "lock"? (help lists the commands)`,
		`line 2: unknown command "unlcok"; did you mean "unlock"?`,
		`line 3: unknown command "--lock"; did you mean "lock"?`,
		`line 4: unknown command "frobnicate"; help lists the commands`,
		`line 5: usage: lock NAME EXPIRES [WAIT]`,
		`line 6: usage: lock NAME EXPIRES [WAIT]`,
		`line 7: lock: EXPIRES: "soon" is not a duration: write milliseconds (1500) or a Go duration (1.5s, 10m, 1h30m)`,
		`line 8: lock: EXPIRES: 0s is shorter than the minimum lease of 1ms`,
		`line 9: lock: WAIT: "-5s" is negative`,
		`line 10: extend-lock: EXPIRES: "1x" is not a duration`,
		`line 11: unterminated ' quote`,
		`line 12: unknown command "nope"`,
		`line 13: usage: exit`,
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if r.code != 1 || r.stdout != "not found\n" || len(lines) != len(want) {
		t.Fatalf("got %v", r)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], "kahuna-cli: "+w) {
			t.Errorf("stderr line %d: %q, want %q", i+1, lines[i], w)
		}
	}
	// Ending on a usage error: exit 2.
	expect(t, cli(t, "lock\n"), 2, "", "line 1: usage: lock NAME EXPIRES [WAIT]")
	// Server unreachable: exit 3, and the session still ends.
	r = startProc(t, "get-lock "+res+"\nget-lock "+res+"\n", env(t), cliBin, "-c", deadEndpoint(t), "-t", "200ms").wait(10 * time.Second)
	if r.code != 3 || strings.Count(r.stderr, "service unavailable") != 2 {
		t.Fatalf("unreachable: %v", r)
	}
}

// TestShellEphemeralTwins: the e-commands work on the ephemeral namespace,
// the plain ones on the persistent one.
func TestShellEphemeralTwins(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)
	res := name(t, "t")
	r := cli(t, strings.Join([]string{
		"elock " + res + " 1m",
		"get-lock " + res,
		"eget-lock " + res,
		"eextend-lock " + res + " 2m",
		"list " + res,
		"elist " + res,
		"unlock " + res,
		"eunlock " + res,
		"eget-lock " + res,
		"elock " + res + " 1m",
		"lock " + res + " 1m",
	}, "\n"))
	expect(t, r, 0, `f\d+ acquired \S+\nnot found\nf\d+ \S+ expires in .*\nf\d+ extended\nno locks\nRESOURCE +OWNER +TOKEN +EXPIRES IN\n`+regexp.QuoteMeta(res)+` .*\nnot unlocked: not found\nunlocked\nnot found\n`+
		`f\d+ acquired \S+\nf\d+ acquired \S+\nreleased `+regexp.QuoteMeta(res)+`\nreleased `+regexp.QuoteMeta(res)+` \(ephemeral\)\n`, "")
	for _, d := range []client.Durability{client.Persistent, client.Ephemeral} {
		if _, err := c.GetInfo(ctx, res, d); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("%v lock after exit: %v", d, err)
		}
	}
}

func TestShellJSON(t *testing.T) {
	t.Parallel()
	res := name(t, "j")
	r := cli(t, "lock "+res+" 1m\nget-lock "+res+"\nget-lock "+res+"/none\nlist "+res+"\ncluster\n", "--format", "json")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	want := []string{"acquired", "found", "not-found", "listed", "cluster", "released"}
	if r.code != 0 || len(lines) != len(want) {
		t.Fatalf("got %v", r)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["result"] != want[i] {
			t.Fatalf("line %d: %q (%v), want result %q", i+1, l, err, want[i])
		}
	}
}

func TestShellHelp(t *testing.T) {
	t.Parallel()
	r := cli(t, "help\n")
	for _, c := range commands() {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(c.usage()) + ` +` + regexp.QuoteMeta(c.brief) + `$`).MatchString(r.stdout) {
			t.Errorf("help does not list %q with its description:\n%s", c.usage(), r.stdout)
		}
	}
	expect(t, cli(t, "help extend-lock\n"), 0, `usage: extend-lock NAME EXPIRES \[OWNER\]\n  make the persistent lock .*\n`, "")
	expect(t, cli(t, "help eget-lock\n"), 0, `usage: eget-lock NAME\n  show who holds the ephemeral lock .*\n`, "")
}

// TestShellInterrupted: SIGTERM while a command waits for a lock ends the
// session at once, releasing the locks it holds; exit 143.
func TestShellInterrupted(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)
	mine, busy := name(t, "mine"), name(t, "busy")
	if _, err := c.TryLock(ctx, busy, client.WithOwner("holder"), client.WithLease(time.Minute)); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "lock "+mine+" 1m\nlock "+busy+" 1m 30s\n", env(t), cliBin)
	waitFor(t, 10*time.Second, "the first lock is taken", func() bool { return strings.Contains(p.stdout.String(), "acquired") })
	time.Sleep(200 * time.Millisecond) // now waiting for the second
	p.signal(syscall.SIGTERM)
	r := p.wait(5 * time.Second)
	expect(t, r, 128+int(syscall.SIGTERM), `f\d+ acquired \S+\nreleased `+regexp.QuoteMeta(mine)+"\n", "kahuna-cli: interrupted")
	if _, err := c.GetInfo(ctx, mine, client.Persistent); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("the session's lock after SIGTERM: %v", err)
	}
}

// TestShellCluster runs the shell against a real three-node cluster, given
// every node and a dead one first: cluster shows the nodes and leaders, and
// locks work through any node.
func TestShellCluster(t *testing.T) {
	t.Parallel()
	tc := testcluster.Start(t, testcluster.Options{Nodes: 3})
	endpoints := []string{deadEndpoint(t)}
	for _, n := range tc.Nodes {
		endpoints = append(endpoints, "http://"+n.HTTP)
	}
	res := name(t, "c")
	r := startProc(t, "cluster\nlock "+res+" 1m\nget-lock "+res+"\n", env(t), cliBin, "-c", strings.Join(endpoints, ",")).wait(20 * time.Second)
	if r.code != 0 {
		t.Fatalf("got %v", r)
	}
	for _, want := range []string{`3 nodes, 3 partitions, as n\d sees it`, `(?m)^NODE +STATE +ROLE +HTTP +RAFT$`, `(?m)^PARTITION +LEADER +TERM +COMMIT +APPLIED +LOCKS +VOTERS +NON-VOTERS$`, `acquired`, `released`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Fatalf("no %q in\n%s", want, r.stdout)
		}
	}
	for i, n := range tc.Nodes {
		if !regexp.MustCompile(`(?m)^` + n.ID + ` +alive +voter +` + regexp.QuoteMeta(n.HTTP)).MatchString(r.stdout) {
			t.Errorf("node %s missing:\n%s", n.ID, r.stdout)
		}
		if leader := tc.Leaders()[i]; !regexp.MustCompile(fmt.Sprintf(`(?m)^%d +%s +\d+ +\d+ +\d+ +\d+ +(n\d,){2}n\d +-$`, i, leader)).MatchString(r.stdout) {
			t.Errorf("partition %d with leader %s missing:\n%s", i, leader, r.stdout)
		}
	}
}
