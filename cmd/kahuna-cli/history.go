package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// historySize bounds the history file and the lines kept in memory.
const historySize = 1000

// historyPath is the history file: $KAHUNA_CLI_HISTORY, else
// ~/.kahuna_cli_history; empty when there is no home directory.
func historyPath(getenv func(string) string) string {
	if p := getenv("KAHUNA_CLI_HISTORY"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".kahuna_cli_history")
}

// history is the shell's command history, kept across runs in a file: one
// line per command, oldest first, at most max lines. It implements
// golang.org/x/term's History, so the arrow keys walk it.
type history struct {
	path  string
	max   int
	lines []string // oldest first
	// warn reports the first failure to write the file; later ones are
	// silent.
	warn   io.Writer
	warned bool
}

// loadHistory reads the file at path (a missing file is an empty history)
// and trims it to its last max lines.
func loadHistory(path string, max int, warn io.Writer) *history {
	h := &history{path: path, max: max, warn: warn}
	if path == "" {
		return h
	}
	f, err := os.Open(path)
	if err != nil {
		if !os.IsNotExist(err) {
			h.fail(err)
		}
		return h
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.TrimSpace(line) != "" {
			h.lines = append(h.lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		h.fail(err)
	}
	if len(h.lines) > max {
		h.lines = append([]string(nil), h.lines[len(h.lines)-max:]...)
		h.rewrite()
	}
	return h
}

// Add records a line the user entered, trimmed: blank lines and a repeat of
// the previous line are skipped. The line is appended to the file at once, so a
// session that dies keeps its history.
func (h *history) Add(line string) {
	line = strings.TrimSpace(line)
	if line == "" || (len(h.lines) > 0 && h.lines[len(h.lines)-1] == line) {
		return
	}
	h.lines = append(h.lines, line)
	if len(h.lines) > h.max {
		h.lines = h.lines[1:]
	}
	if h.path == "" {
		return
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		h.fail(err)
		return
	}
	if _, err := fmt.Fprintln(f, line); err != nil {
		h.fail(err)
	}
	if err := f.Close(); err != nil {
		h.fail(err)
	}
}

// Len is the number of lines.
func (h *history) Len() int { return len(h.lines) }

// At is the line idx steps back: 0 is the most recent.
func (h *history) At(idx int) string { return h.lines[len(h.lines)-1-idx] }

// rewrite replaces the file with the lines in memory.
func (h *history) rewrite() {
	tmp := h.path + ".tmp"
	data := strings.Join(h.lines, "\n") + "\n"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		h.fail(err)
		return
	}
	if err := os.Rename(tmp, h.path); err != nil {
		os.Remove(tmp)
		h.fail(err)
	}
}

func (h *history) fail(err error) {
	if h.warned || h.warn == nil {
		return
	}
	h.warned = true
	fmt.Fprintf(h.warn, "%shistory %s: %v\n", consoleErrorPrefix, h.path, err)
}
