package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/client"
)

// expect checks a finished kahuna-cli: its exit code, and that stdout
// matches the regular expression out (anchored, whole output) and stderr
// contains errPart.
func expect(t *testing.T, r result, code int, out, errPart string) {
	t.Helper()
	if r.code != code || !regexp.MustCompile(`^(?s:`+out+`)$`).MatchString(r.stdout) || !strings.Contains(r.stderr, errPart) {
		t.Fatalf("want exit %d, stdout matching %q, stderr containing %q; got %v", code, out, errPart, r)
	}
}

func TestOneShotLifecycle(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)
	res := name(t, "a")

	// Taken with a generated owner, printed with the token.
	r := cli(t, "", "--lock", res, "--expires", "30s")
	expect(t, r, 0, `f\d+ acquired \S+\n`, "")
	var token int64
	var owner string
	fmt.Sscanf(r.stdout, "f%d acquired %s", &token, &owner)
	info, err := c.GetInfo(ctx, res, client.Persistent)
	if err != nil || info.Owner != owner || info.Token != token || info.ExpiresIn < 25*time.Second {
		t.Fatalf("server has %+v, %v; the CLI said %q", info, err, r.stdout)
	}

	// Another owner: busy, naming the holder.
	expect(t, cli(t, "", "--lock", res, "--expires", "30s", "--owner", "other"), 1, "not acquired: held by "+regexp.QuoteMeta(owner)+"\n", "")
	// The same owner again: the same grant.
	expect(t, cli(t, "", "-lock", res, "-expires", "30000", "-owner", owner), 0, fmt.Sprintf("f%d acquired %s\n", token, regexp.QuoteMeta(owner)), "")

	expect(t, cli(t, "", "--get-lock", res), 0, fmt.Sprintf(`f%d %s expires in \d+(\.\d+)?s\n`, token, regexp.QuoteMeta(owner)), "")
	expect(t, cli(t, "", "--get-lock", name(t, "never")), 1, "not found\n", "")

	expect(t, cli(t, "", "--extend-lock", res, "--owner", owner, "--expires", "10m"), 0, fmt.Sprintf("f%d extended\n", token), "")
	if info, err := c.GetInfo(ctx, res, client.Persistent); err != nil || info.ExpiresIn < 9*time.Minute {
		t.Fatalf("after extend: %+v %v", info, err)
	}
	expect(t, cli(t, "", "--extend-lock", res, "--owner", "other", "--expires", "1m"), 1, "not extended: held by another owner\n", "")
	expect(t, cli(t, "", "--extend-lock", name(t, "never"), "--owner", "other", "--expires", "1m"), 1, "not extended: not found\n", "")

	expect(t, cli(t, "", "--unlock", res, "--owner", "other"), 1, "not unlocked: held by another owner\n", "")
	expect(t, cli(t, "", "--unlock-lock", res, "--owner", owner), 0, "unlocked\n", "")
	expect(t, cli(t, "", "--unlock", res, "--owner", owner), 1, "not unlocked: not found\n", "")
	if _, err := c.GetInfo(ctx, res, client.Persistent); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("after unlock: %v", err)
	}

	// Force-unlock takes anyone's lock.
	if _, err := c.TryLock(ctx, res, client.WithOwner("stuck")); err != nil {
		t.Fatal(err)
	}
	expect(t, cli(t, "", "--force-unlock", res), 0, "unlocked\n", "")
	expect(t, cli(t, "", "--force-unlock", res), 1, "not found\n", "")

	// Input the server refuses is a usage error.
	expect(t, cli(t, "", "--get-lock", strings.Repeat("x", 1025)), 2, "", "resource is 1025 bytes; the limit is 1024")
}

func TestOneShotJSON(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)
	res := name(t, "a")
	obj := func(r result, code int) map[string]any {
		t.Helper()
		var m map[string]any
		if r.code != code || strings.Count(r.stdout, "\n") != 1 || json.Unmarshal([]byte(r.stdout), &m) != nil || r.stderr != "" {
			t.Fatalf("want exit %d and one JSON object; got %v", code, r)
		}
		return m
	}
	same := func(m map[string]any, want string) {
		t.Helper()
		var w map[string]any
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatal(err)
		}
		for k := range m {
			if _, ok := w[k]; !ok {
				t.Fatalf("unexpected field %q in %v; want %s", k, m, want)
			}
		}
		for k, v := range w {
			if v == "*" && m[k] != nil {
				continue
			}
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				t.Fatalf("%s = %v, want %v (in %v)", k, m[k], v, m)
			}
		}
	}
	j := func(args ...string) []string { return append(args, "--format", "json") }

	m := obj(cli(t, "", j("--lock", res, "--expires", "1m", "--owner", "me")...), 0)
	same(m, `{"result":"acquired","resource":"`+res+`","durability":"persistent","owner":"me","fencingToken":"*"}`)
	token := m["fencingToken"]
	same(obj(cli(t, "", j("--lock", res, "--expires", "1m", "--owner", "you")...), 1),
		`{"result":"busy","resource":"`+res+`","durability":"persistent","holder":"me"}`)
	same(obj(cli(t, "", j("--get-lock", res)...), 0),
		`{"result":"found","resource":"`+res+`","durability":"persistent","owner":"me","fencingToken":`+fmt.Sprint(token)+`,"expiresInMs":"*","acquiredAt":"*","expiresAt":"*"}`)
	same(obj(cli(t, "", j("--extend-lock", res, "--owner", "me", "--expires", "2m")...), 0),
		`{"result":"extended","resource":"`+res+`","durability":"persistent","owner":"me","fencingToken":`+fmt.Sprint(token)+`}`)
	same(obj(cli(t, "", j("--extend-lock", res, "--owner", "you", "--expires", "2m")...), 1),
		`{"result":"not-owner","resource":"`+res+`","durability":"persistent"}`)
	same(obj(cli(t, "", j("--list", "--prefix", res)...), 0),
		`{"result":"listed","durability":"persistent","prefix":"`+res+`","locks":"*"}`)
	same(obj(cli(t, "", j("--unlock", res, "--owner", "me")...), 0),
		`{"result":"unlocked","resource":"`+res+`","durability":"persistent","owner":"me"}`)
	same(obj(cli(t, "", j("--get-lock", res)...), 1),
		`{"result":"not-found","resource":"`+res+`","durability":"persistent"}`)
	same(obj(cli(t, "", j("--list", "--prefix", res, "--ephemeral")...), 0),
		`{"result":"listed","durability":"ephemeral","prefix":"`+res+`","locks":[]}`)
	if _, err := c.TryLock(ctx, res, client.WithOwner("x"), client.WithDurability(client.Ephemeral)); err != nil {
		t.Fatal(err)
	}
	same(obj(cli(t, "", j("--force-unlock", res, "--ephemeral")...), 0),
		`{"result":"unlocked","resource":"`+res+`","durability":"ephemeral"}`)
	same(obj(cli(t, "", j("-t", "300ms", "-c", deadEndpoint(t), "--get-lock", res)...), 3),
		`{"result":"unavailable","resource":"`+res+`","durability":"persistent","error":"*"}`)
	same(obj(cli(t, "", j("--get-lock", "")...), 2),
		`{"result":"invalid-input","durability":"persistent","error":"*"}`)

	// A listed lock has every field.
	if _, err := c.TryLock(ctx, res, client.WithOwner("lister"), client.WithLease(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Locks []map[string]any `json:"locks"`
	}
	if r := cli(t, "", j("--list", "--prefix", res)...); json.Unmarshal([]byte(r.stdout), &list) != nil || len(list.Locks) != 1 {
		t.Fatalf("list: %v", r)
	}
	same(list.Locks[0], `{"resource":"`+res+`","owner":"lister","fencingToken":"*","expiresInMs":"*","acquiredAt":"*","expiresAt":"*"}`)
}

func TestOneShotEphemeral(t *testing.T) {
	t.Parallel()
	res := name(t, "e")
	r := cli(t, "", "--lock", res, "--expires", "1m", "--ephemeral", "--owner", "eph")
	expect(t, r, 0, `f\d+ acquired eph\n`, "")
	// The namespaces are separate.
	expect(t, cli(t, "", "--get-lock", res), 1, "not found\n", "")
	expect(t, cli(t, "", "--get-lock", res, "--ephemeral"), 0, `f\d+ eph expires in .*\n`, "")
	expect(t, cli(t, "", "--extend-lock", res, "--ephemeral", "--owner", "eph", "--expires", "2m"), 0, `f\d+ extended\n`, "")
	expect(t, cli(t, "", "--list", "--prefix", res), 0, "no locks\n", "")
	expect(t, cli(t, "", "--list", "--prefix", res, "--ephemeral"), 0, `RESOURCE +OWNER +TOKEN +EXPIRES IN\n`+regexp.QuoteMeta(res)+` +eph +f\d+ +(1m\d+s|2m)\n`, "")
	expect(t, cli(t, "", "--unlock", res, "--owner", "eph"), 1, "not unlocked: not found\n", "")
	expect(t, cli(t, "", "--unlock", res, "--owner", "eph", "--ephemeral"), 0, "unlocked\n", "")
}

func TestOneShotWait(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)
	res := name(t, "w")
	holder, err := c.TryLock(ctx, res, client.WithOwner("holder"))
	if err != nil {
		t.Fatal(err)
	}
	// A wait that runs out: busy, after the wait.
	r := cli(t, "", "--lock", res, "--expires", "1m", "--wait", "400ms", "--owner", "waiter")
	expect(t, r, 1, "not acquired: held by holder\n", "")
	if r.took < 350*time.Millisecond {
		t.Fatalf("gave up after %v, before the wait ran out", r.took)
	}
	// The holder lets go while we wait: acquired.
	time.AfterFunc(500*time.Millisecond, func() { holder.Unlock(ctx) })
	r = cli(t, "", "--lock", res, "--expires", "1m", "--wait", "10s", "--owner", "waiter", "-t", "1s")
	expect(t, r, 0, `f\d+ acquired waiter\n`, "")
	if r.took < 400*time.Millisecond || r.took > 5*time.Second {
		t.Fatalf("acquired after %v", r.took)
	}
	// The wait is added to the timeout: a 1 s timeout does not cut a 2 s wait short.
	r = cli(t, "", "--lock", res, "--expires", "1m", "--wait", "2s", "--owner", "third", "-t", "1s")
	expect(t, r, 1, "not acquired: held by waiter\n", "")
	if r.took < 1900*time.Millisecond {
		t.Fatalf("gave up after %v", r.took)
	}
}

func TestOneShotList(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)
	prefix := name(t, "")
	for _, s := range []string{"b", "a", "c/1"} {
		if _, err := c.TryLock(ctx, prefix+s, client.WithOwner("o-"+s), client.WithLease(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	p := regexp.QuoteMeta(prefix)
	expect(t, cli(t, "", "--list", "--prefix", prefix), 0,
		`RESOURCE +OWNER +TOKEN +EXPIRES IN\n`+p+`a +o-a +f\d+ +(59m\d+s|1h)\n`+p+`b +o-b +f\d+ +(59m\d+s|1h)\n`+p+`c/1 +o-c/1 +f\d+ +(59m\d+s|1h)\n`, "")
	expect(t, cli(t, "", "--list", "--prefix", prefix+"c/"), 0, `RESOURCE .*\n`+p+`c/1 .*\n`, "")
	expect(t, cli(t, "", "--list", "--prefix", prefix+"zzz"), 0, "no locks\n", "")
	// Without a prefix: everything, including ours.
	if r := cli(t, "", "--list"); r.code != 0 || !strings.Contains(r.stdout, prefix+"c/1") {
		t.Fatalf("list: %v", r)
	}
}

// deadEndpoint is a URL nobody listens on.
func deadEndpoint(t *testing.T) string {
	return "http://" + testutil.FreeAddr(t)
}

func TestUnreachableAndEndpoints(t *testing.T) {
	t.Parallel()
	dead := deadEndpoint(t)
	res := name(t, "a")
	r := cli(t, "", "-c", dead, "-t", "500ms", "--get-lock", res)
	expect(t, r, 3, "", "kahuna-cli: kahuna: service unavailable")
	if !strings.Contains(r.stderr, "connection refused") || r.took > 5*time.Second {
		t.Fatalf("unreachable: %v", r)
	}
	// KAHUNA_ENDPOINTS is used without -c, and -c beats it.
	// The error names the endpoint it tried (refused, or cut by the 300 ms
	// timeout on a busy machine): the one from the environment.
	r = startProc(t, "", env(t, "KAHUNA_ENDPOINTS="+dead), cliBin, "-t", "300ms", "--get-lock", res).wait(10 * time.Second)
	expect(t, r, 3, "", strings.TrimPrefix(dead, "http://"))
	r = startProc(t, "", env(t, "KAHUNA_ENDPOINTS="+dead), cliBin, "--endpoints", endpoint, "--get-lock", res).wait(10 * time.Second)
	expect(t, r, 1, "not found\n", "")
	// A dead node first in the list: the next one answers.
	expect(t, cli(t, "", "--connection-source", dead+","+endpoint, "--lock", res, "--expires", "1m"), 0, `f\d+ acquired .*\n`, "")
	// Without scheme, as host:port.
	expect(t, cli(t, "", "-c", strings.TrimPrefix(endpoint, "http://"), "--get-lock", res), 0, `f\d+ .*\n`, "")
}

// TestScriptRecipes runs the shell scripts the docs show, as written.
func TestScriptRecipes(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)
	dir := t.TempDir()
	migration := name(t, "db-migration")
	script := func(wait string) string {
		return `
if kahuna-cli --lock ` + migration + ` --owner "$HOSTNAME" --expires 15m --wait ` + wait + `; then
	echo "migrating as $HOSTNAME"
	kahuna-cli --unlock ` + migration + ` --owner "$HOSTNAME"
else
	echo "no lock: $?"
fi`
	}
	expect(t, sh(t, script("30s"), "HOSTNAME=host-a"), 0, `f\d+ acquired host-a\nmigrating as host-a\nunlocked\n`, "")
	// Held elsewhere, and the wait runs out: the else branch, exit 1.
	if _, err := c.TryLock(ctx, migration, client.WithOwner("host-b"), client.WithLease(time.Minute)); err != nil {
		t.Fatal(err)
	}
	expect(t, sh(t, script("200ms"), "HOSTNAME=host-a"), 0, "not acquired: held by host-b\nno lock: 1\n", "")
	// HOSTNAME unset (as in dash): the empty owner counts as none, so the
	// lock is taken with a generated one (and --unlock then refuses).
	r := sh(t, `kahuna-cli --lock `+name(t, "unset")+` --owner "$HOSTNAME" --expires 1m && kahuna-cli --unlock `+name(t, "unset")+` --owner "$HOSTNAME"`, "HOSTNAME=")
	expect(t, r, 2, `f\d+ acquired \S+\n`, "--unlock needs a non-empty --owner")

	report := name(t, "nightly-report")
	gen := filepath.Join(dir, "generate-report.sh")
	os.WriteFile(gen, []byte("#!/bin/sh\necho \"report under $KAHUNA_LOCK_RESOURCE, token $KAHUNA_FENCING_TOKEN\"\n"), 0o755)
	r = sh(t, "cd "+dir+" && kahuna-cli --lock "+report+" --expires 1m -- ./generate-report.sh")
	expect(t, r, 0, "report under "+regexp.QuoteMeta(report)+`, token \d+\n`, "")
	if _, err := c.GetInfo(ctx, report, client.Persistent); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("the lock outlived the report: %v", err)
	}

	// Token capture with --format json and a JSON tool-free parse.
	r = sh(t, `out=$(kahuna-cli --lock `+name(t, "j")+` --expires 1m --format json) && echo "$out" | grep -q '"result":"acquired"' && echo ok`)
	expect(t, r, 0, "ok\n", "")
}
