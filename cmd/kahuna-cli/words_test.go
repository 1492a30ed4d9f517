package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "", want: nil},
		{in: "   ", want: nil},
		{in: "lock a 10s", want: []string{"lock", "a", "10s"}},
		{in: "  lock\ta   10s  ", want: []string{"lock", "a", "10s"}},
		{in: `lock 'nightly report' 10m`, want: []string{"lock", "nightly report", "10m"}},
		{in: `lock "say \"hi\"" 1s`, want: []string{"lock", `say "hi"`, "1s"}},
		{in: `lock a\ b 1s`, want: []string{"lock", "a b", "1s"}},
		{in: `get-lock ''`, want: []string{"get-lock", ""}},
		{in: `get-lock 'a'"b"c`, want: []string{"get-lock", "abc"}},
		{in: `get-lock 'open`, err: "unterminated ' quote"},
		{in: `get-lock "open`, err: `unterminated " quote`},
	} {
		got, err := splitWords(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("splitWords(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	// quoteWord makes any name one word again.
	for _, s := range []string{"plain", "with space", "it's", `say "hi"`, `back\slash`, "", "tab\there"} {
		got, err := splitWords("x " + quoteWord(s))
		if err != nil || len(got) != 2 || got[1] != s {
			t.Errorf("quoteWord(%q) = %s reads back as %q, %v", s, quoteWord(s), got, err)
		}
	}
}

func TestCompleteLine(t *testing.T) {
	cmds := []string{"lock", "list", "unlock", "extend-lock", "elock", "exit", "help"}
	held := []string{"jobs/a", "jobs/b", "report", "with space"}
	cands := func(prev []string) []string {
		switch {
		case len(prev) == 0:
			return cmds
		case len(prev) == 1 && prev[0] != "help":
			return held
		}
		return nil
	}
	for _, tc := range []struct {
		line    string
		pos     int // -1: end of line
		want    string
		wantPos int // -1: end of the wanted line
		shown   []string
	}{
		{line: "unl", pos: -1, want: "unlock ", wantPos: -1},
		{line: "ext", pos: -1, want: "extend-lock ", wantPos: -1},
		{line: "l", pos: -1, want: "l", wantPos: -1, shown: []string{"list", "lock"}},
		{line: "e", pos: -1, want: "e", wantPos: -1, shown: []string{"elock", "exit", "extend-lock"}},
		{line: "lo", pos: -1, want: "lock ", wantPos: -1},
		{line: "zzz", pos: -1, want: "zzz", wantPos: -1},
		{line: "unlock r", pos: -1, want: "unlock report ", wantPos: -1},
		{line: "unlock j", pos: -1, want: "unlock jobs/", wantPos: -1},
		{line: "unlock jobs/", pos: -1, want: "unlock jobs/", wantPos: -1, shown: []string{"jobs/a", "jobs/b"}},
		{line: "unlock w", pos: -1, want: "unlock 'with space' ", wantPos: -1},
		{line: "get-lock jobs/a 1s", pos: -1, want: "get-lock jobs/a 1s", wantPos: -1},
		// In the middle of a line: complete the word before the cursor.
		{line: "unl report", pos: 3, want: "unlock report", wantPos: 6},
	} {
		pos := tc.pos
		if pos < 0 {
			pos = len(tc.line)
		}
		wantPos := tc.wantPos
		if wantPos < 0 {
			wantPos = len(tc.want)
		}
		got, gotPos, shown := completeLine(tc.line, pos, cands)
		if got != tc.want || gotPos != wantPos || !slices.Equal(shown, tc.shown) {
			t.Errorf("complete(%q, %d) = %q, %d, %q; want %q, %d, %q", tc.line, pos, got, gotPos, shown, tc.want, wantPos, tc.shown)
		}
	}
}

func TestClosest(t *testing.T) {
	cmds := []string{"lock", "unlock", "extend-lock", "get-lock", "list", "elock", "eunlock", "cluster", "help", "exit", "quit"}
	for in, want := range map[string]string{
		"lokc":       "lock",
		"unlcok":     "unlock",
		"get-lokc":   "get-lock",
		"getlock":    "get-lock",
		"extend":     "extend-lock",
		"clsuter":    "cluster",
		"exti":       "exit",
		"lsit":       "list",
		"banana":     "",
		"x":          "",
		"force-lock": "",
	} {
		got, ok := closest(in, cmds)
		if (want == "") == ok || (ok && got != want) {
			t.Errorf("closest(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestHistoryFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hist")
	h := loadHistory(path, 3, nil)
	if h.Len() != 0 {
		t.Fatalf("new history has %d lines", h.Len())
	}
	for _, l := range []string{"lock a 1s", "lock a 1s", "  ", "get-lock a", "list", "exit"} {
		h.Add(l)
	}
	// Blank lines and immediate repeats are skipped; memory keeps 3.
	if h.Len() != 3 || h.At(0) != "exit" || h.At(2) != "get-lock a" {
		t.Fatalf("history %q", h.lines)
	}
	raw, _ := os.ReadFile(path)
	if string(raw) != "lock a 1s\nget-lock a\nlist\nexit\n" {
		t.Fatalf("file %q", raw)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	// Loading trims the file to the bound.
	h2 := loadHistory(path, 3, nil)
	raw, _ = os.ReadFile(path)
	if h2.Len() != 3 || h2.At(0) != "exit" || string(raw) != "get-lock a\nlist\nexit\n" {
		t.Fatalf("reloaded %q, file %q", h2.lines, raw)
	}
	// No path: in memory only. Unwritable: one warning, no failure.
	h3 := loadHistory("", 3, nil)
	h3.Add("x")
	var warn strings.Builder
	h4 := loadHistory(filepath.Join(t.TempDir(), "missing-dir", "hist"), 3, &warn)
	h4.Add("a")
	h4.Add("b")
	if h3.Len() != 1 || h4.Len() != 2 || strings.Count(warn.String(), "history") != 1 {
		t.Fatalf("h3 %d, h4 %d, warnings %q", h3.Len(), h4.Len(), warn.String())
	}
	if got := historyPath(getenv(map[string]string{"KAHUNA_CLI_HISTORY": "/x/h"})); got != "/x/h" {
		t.Fatalf("historyPath with env: %q", got)
	}
	if got := historyPath(getenv(nil)); !strings.HasSuffix(got, ".kahuna_cli_history") {
		t.Fatalf("historyPath: %q", got)
	}
}
