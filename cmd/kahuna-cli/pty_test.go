//go:build linux || darwin

package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/client"
)

// ptySession is kahuna-cli on a pseudo-terminal, typed at like a person.
type ptySession struct {
	t    *testing.T
	tty  *os.File
	out  *testutil.SyncBuffer
	seen int // output before this offset has been matched
	cmd  *exec.Cmd
	done chan error
}

func startPTY(t *testing.T, history string, args ...string) *ptySession {
	t.Helper()
	cmd := exec.Command(cliBin, args...)
	cmd.Env = env(t, "KAHUNA_CLI_HISTORY="+history)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	s := &ptySession{t: t, tty: tty, out: &testutil.SyncBuffer{}, cmd: cmd, done: make(chan error, 1)}
	copied := make(chan struct{})
	go func() {
		io.Copy(s.out, tty) // ends with EIO when the process exits
		close(copied)
	}()
	go func() {
		err := cmd.Wait()
		<-copied
		s.done <- err
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		tty.Close()
		if t.Failed() {
			t.Logf("terminal output:\n%q", s.out.String())
		}
	})
	return s
}

// expect waits for output matching re after what earlier expects matched,
// and returns the match.
func (s *ptySession) expect(re string) string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := s.out.String()
		if loc := rx.FindStringIndex(out[s.seen:]); loc != nil {
			m := out[s.seen+loc[0] : s.seen+loc[1]]
			s.seen += loc[1]
			return m
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q in the terminal output after %q", re, out[:s.seen])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *ptySession) prompt() { s.t.Helper(); s.expect(regexp.QuoteMeta(prompt)) }

func (s *ptySession) typ(keys string) {
	s.t.Helper()
	if _, err := s.tty.Write([]byte(keys)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *ptySession) exit() int {
	s.t.Helper()
	select {
	case <-s.done:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		s.t.Fatal("kahuna-cli did not exit")
		return -1
	}
}

const (
	keyLeft = "\x1b[D"
	keyUp   = "\x1b[A"
)

// TestShellTerminal types at the shell in a pseudo-terminal: the banner and
// prompt, an arrow-key edit, Tab completion of a command and of a held
// lock, the candidate list, Ctrl-C dropping a line, and the history file,
// written in one session and walked with the up arrow in the next.
func TestShellTerminal(t *testing.T) {
	t.Parallel()
	hist := filepath.Join(t.TempDir(), "history")
	one, two := name(t, "held-one"), name(t, "held-two")

	s := startPTY(t, hist)
	s.expect(`kahuna-cli \S+.*endpoints ` + regexp.QuoteMeta(endpoint))
	s.expect(`This session's owner is \S+`)
	s.expect(`Type "help" for the commands`)
	s.prompt()

	s.typ("lock " + one + " 1m\r")
	s.expect(`f\d+ acquired \S+\r\n`)
	s.prompt()

	// An edit in the middle of the line: "get-lk NAME", ten steps left
	// (past " NAME" and the k), type "oc": "get-lock NAME".
	s.typ("get-lk " + one + strings.Repeat(keyLeft, len(one)+2) + "oc\r")
	s.expect(`f\d+ \S+ expires in \S+\r\n`)
	s.prompt()

	// Tab completes a command, then the lock this session holds.
	s.typ("get-l\t")
	s.expect(`get-lock `)
	s.typ(one[:5] + "\t")
	s.expect(regexp.QuoteMeta(one + " "))
	s.typ("\r")
	s.expect(`f\d+ \S+ expires in \S+\r\n`)
	s.prompt()
	s.typ("unl\t" + one[:5] + "\t\r")
	s.expect("unlocked\r\n")
	s.prompt()

	// Several candidates: listed.
	s.typ("e\t")
	s.expect(`eextend-lock  eget-lock  elist  elock  eunlock  exit`)
	// Ctrl-C drops the line instead of leaving.
	s.typ("garbage\x03")
	s.expect(`\^C`)
	s.prompt()

	// Ctrl-C while a command waits for a lock cancels the command, not
	// the session.
	busy := name(t, "busy")
	if _, err := newClient(t).TryLock(ctxFor(t, 10*time.Second), busy, client.WithOwner("holder")); err != nil {
		t.Fatal(err)
	}
	s.typ("lock " + busy + " 1m 30s\r")
	s.expect(regexp.QuoteMeta(busy + " 1m 30s\r\n"))
	time.Sleep(300 * time.Millisecond)
	s.typ("\x03")
	s.expect(`kahuna-cli: interrupted\r\n`)
	s.prompt()

	s.typ("lock " + two + " 1m\r")
	s.expect(`f\d+ acquired`)
	s.prompt()
	s.typ("exit\r")
	s.expect("released " + regexp.QuoteMeta(two))
	if code := s.exit(); code != 0 || strings.Contains(s.out.String(), "unknown command") {
		t.Fatalf("exit code %d", code)
	}
	b, err := os.ReadFile(hist)
	want := strings.Join([]string{"lock " + one + " 1m", "get-lock " + one, "unlock " + one, "lock " + busy + " 1m 30s", "lock " + two + " 1m", "exit"}, "\n") + "\n"
	if err != nil || string(b) != want {
		t.Fatalf("history file %q (%v), want %q", b, err, want)
	}

	// A second session walks the first one's history: up twice is
	// "lock held-two 1m". Ctrl-D leaves, releasing it.
	s = startPTY(t, hist)
	s.prompt()
	s.typ(keyUp)
	s.expect("exit")
	s.typ(keyUp + "\r")
	s.expect(`f\d+ acquired`)
	s.prompt()
	s.typ("\x04")
	s.expect("released " + regexp.QuoteMeta(two))
	if code := s.exit(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestRunTerminalCtrlC: a Ctrl-C typed at the terminal reaches CMD once,
// from the terminal itself; kahuna-cli does not forward it a second time.
// A SIGTERM sent to kahuna-cli alone is forwarded.
func TestRunTerminalCtrlC(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	started, got := filepath.Join(dir, "started"), filepath.Join(dir, "got")
	s := startPTY(t, filepath.Join(dir, "history"), "--lock", name(t, "job"), "--expires", "10s", "--",
		"sh", "-c", `trap 'echo INT >> `+got+`' INT; touch `+started+`; while :; do sleep 0.05; done`)
	waitFile(t, started)
	s.typ("\x03")
	waitFile(t, got)
	time.Sleep(500 * time.Millisecond) // a forwarded second SIGINT would show by now
	if b, _ := os.ReadFile(got); string(b) != "INT\n" {
		t.Fatalf("CMD saw %q", b)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.exit(); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit code %d", code)
	}
}
