package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// runUnder starts kahuna-cli --lock res --expires lease [flags] -- sh -c script.
func runUnder(t *testing.T, res, lease, script string, flags ...string) *proc {
	t.Helper()
	args := append([]string{cliBin, "--lock", res, "--expires", lease}, flags...)
	args = append(args, "--", "sh", "-c", script)
	return startProc(t, "", env(t), args...)
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	waitFor(t, 10*time.Second, path+" exists", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

func released(t *testing.T, c *client.Client, res string) {
	t.Helper()
	if info, err := c.GetInfo(ctxFor(t, 10*time.Second), res, client.Persistent); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("lock %s not released: %+v %v", res, info, err)
	}
}

// TestRunExitCodes: CMD's exit code passes through, 128+N when signal N
// ended it, 127 when it does not exist; the lock is released every time.
func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	res := name(t, "job")
	for script, code := range map[string]int{
		"exit 0":        0,
		"exit 7":        7,
		"exit 255":      255,
		"kill -TERM $$": 128 + int(syscall.SIGTERM),
		"kill -KILL $$": 128 + int(syscall.SIGKILL),
	} {
		r := runUnder(t, res, "10s", script).wait(20 * time.Second)
		if r.code != code || r.stdout != "" || r.stderr != "" {
			t.Fatalf("%q: want exit %d, got %v", script, code, r)
		}
		released(t, c, res)
	}
	r := startProc(t, "", env(t), cliBin, "--lock", res, "--expires", "10s", "--", "/no/such/command").wait(20 * time.Second)
	expect(t, r, 127, "", "kahuna-cli: cannot run /no/such/command")
	released(t, c, res)
}

// TestRunEnvAndHolding: CMD sees the lock in its environment, the lock is
// held (and kept alive past its lease) while CMD runs, and released after.
// CMD checks for itself, with kahuna-cli.
func TestRunEnvAndHolding(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	res := name(t, "job")
	script := `
echo "resource=$KAHUNA_LOCK_RESOURCE owner=$KAHUNA_LOCK_OWNER token=$KAHUNA_FENCING_TOKEN"
kahuna-cli --get-lock "$KAHUNA_LOCK_RESOURCE"
sleep 1.5
kahuna-cli --get-lock "$KAHUNA_LOCK_RESOURCE"
read line; echo "stdin: $line"
echo "to stderr" >&2`
	p := startProc(t, "hello\n", env(t), cliBin, "--lock", res, "--expires", "600ms", "--owner", "runner", "--", "sh", "-c", script)
	r := p.wait(20 * time.Second)
	m := regexp.MustCompile(`^resource=(\S+) owner=runner token=(\d+)\nf(\d+) runner expires in \S+\nf(\d+) runner expires in \S+\nstdin: hello\n$`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || m[1] != res || m[2] != m[3] || m[3] != m[4] || r.stderr != "to stderr\n" {
		t.Fatalf("got %v", r)
	}
	released(t, c, res)

	// A generated owner when none is given.
	r = runUnder(t, res, "10s", `echo "$KAHUNA_LOCK_OWNER"`).wait(20 * time.Second)
	if r.code != 0 || len(strings.TrimSpace(r.stdout)) < 16 {
		t.Fatalf("generated owner: %v", r)
	}
}

// TestRunNotAcquired: a lock held elsewhere means CMD never runs, exit 1;
// with --wait CMD runs once the holder lets go.
func TestRunNotAcquired(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)
	res := name(t, "job")
	marker := filepath.Join(t.TempDir(), "ran")
	holder, err := c.TryLock(ctx, res, client.WithOwner("holder"))
	if err != nil {
		t.Fatal(err)
	}
	r := runUnder(t, res, "10s", "touch "+marker).wait(20 * time.Second)
	expect(t, r, 1, "", "not acquired: held by holder (sh not run)")
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("CMD ran without the lock")
	}
	r = runUnder(t, res, "10s", "touch "+marker, "--wait", "300ms").wait(20 * time.Second)
	expect(t, r, 1, "", "not acquired: held by holder")
	time.AfterFunc(300*time.Millisecond, func() { holder.Unlock(ctx) })
	r = runUnder(t, res, "10s", "touch "+marker, "--wait", "10s").wait(20 * time.Second)
	expect(t, r, 0, "", "")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("CMD did not run after the wait: %v", err)
	}
	// Unreachable: exit 3, CMD not run.
	r = startProc(t, "", env(t), cliBin, "-c", deadEndpoint(t), "-t", "300ms", "--lock", res, "--expires", "1s", "--", "true").wait(10 * time.Second)
	expect(t, r, 3, "", "(true not run)")
}

// TestRunForwardsSignals: SIGTERM and SIGINT sent to kahuna-cli reach CMD,
// whose exit code comes back; the lock is released.
func TestRunForwardsSignals(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		res := name(t, sig.String())
		dir := t.TempDir()
		started, got := filepath.Join(dir, "started"), filepath.Join(dir, "got")
		script := `trap 'echo "$SIG" > ` + got + `; exit 42' ` + strings.TrimPrefix(sigName(sig), "SIG") + `
touch ` + started + `
while :; do sleep 0.05; done`
		p := startProc(t, "", env(t, "SIG="+sigName(sig)), cliBin, "--lock", res, "--expires", "10s", "--", "sh", "-c", script)
		waitFile(t, started)
		p.signal(sig)
		r := p.wait(10 * time.Second)
		b, _ := os.ReadFile(got)
		if r.code != 42 || strings.TrimSpace(string(b)) != sigName(sig) {
			t.Fatalf("%v: CMD wrote %q; kahuna-cli %v", sig, b, r)
		}
		released(t, c, res)
	}
	// A CMD that dies of the forwarded signal: 128+N.
	res := name(t, "dies")
	started := filepath.Join(t.TempDir(), "started")
	p := runUnder(t, res, "10s", "touch "+started+"; exec sleep 30")
	waitFile(t, started)
	p.signal(syscall.SIGTERM)
	if r := p.wait(10 * time.Second); r.code != 128+int(syscall.SIGTERM) {
		t.Fatalf("got %v", r)
	}
	released(t, c, res)
}

func sigName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT", syscall.SIGHUP: "SIGHUP"}[s]
}

// TestRunLost: force-unlocking the lock while CMD runs stops CMD with
// SIGTERM and exits 75; a CMD that ignores SIGTERM gets SIGKILL after
// --grace.
func TestRunLost(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := ctxFor(t, 20*time.Second)

	res := name(t, "polite")
	started := filepath.Join(t.TempDir(), "started")
	p := runUnder(t, res, "900ms", "touch "+started+"; exec sleep 30")
	waitFile(t, started)
	lostAt := time.Now()
	if err := c.ForceUnlock(ctx, res, client.Persistent); err != nil {
		t.Fatal(err)
	}
	r := p.wait(10 * time.Second)
	expect(t, r, 75, "", `kahuna-cli: lost the lock "`+res+`": the server no longer has it`)
	if took := time.Since(lostAt); took > 3*time.Second || strings.Contains(r.stderr, "SIGKILL\n") {
		t.Fatalf("stopped %v after the loss: %v", took, r)
	}

	res = name(t, "stubborn")
	started = filepath.Join(t.TempDir(), "started")
	p = runUnder(t, res, "900ms", `trap "" TERM; touch `+started+`; while :; do sleep 0.05; done`, "--grace", "700ms")
	waitFile(t, started)
	lostAt = time.Now()
	if err := c.ForceUnlock(ctx, res, client.Persistent); err != nil {
		t.Fatal(err)
	}
	r = p.wait(10 * time.Second)
	expect(t, r, 75, "", "sh did not stop within 700ms; sending SIGKILL")
	if took := time.Since(lostAt); took < 700*time.Millisecond || took > 4*time.Second {
		t.Fatalf("killed %v after the loss: %v", took, r)
	}

	// Taken over by another owner (after a force-unlock): also 75.
	res = name(t, "taken")
	started = filepath.Join(t.TempDir(), "started")
	p = runUnder(t, res, "900ms", "touch "+started+"; exec sleep 30")
	waitFile(t, started)
	if err := c.ForceUnlock(ctx, res, client.Persistent); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryLock(ctx, res, client.WithOwner("usurper")); err != nil {
		t.Fatal(err)
	}
	expect(t, p.wait(10*time.Second), 75, "", "lost the lock")
	if info, err := c.GetInfo(ctx, res, client.Persistent); err != nil || info.Owner != "usurper" {
		t.Fatalf("the usurper's lock: %+v %v", info, err)
	}
}
