package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// prompt is the interactive shell's prompt.
const prompt = "kahuna-cli> "

// lineSource yields the shell's input, one line at a time; io.EOF at the
// end.
type lineSource interface {
	readLine() (string, error)
	// close restores whatever the source changed (the terminal mode).
	close()
}

// pipedLines reads commands from a pipe or a file: no prompt, no echo.
type pipedLines struct{ r *bufio.Reader }

func (p pipedLines) readLine() (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (pipedLines) close() {}

// keyInterrupt is what a Ctrl-C typed at the prompt reaches the line editor
// as. golang.org/x/term ends ReadLine with io.EOF on Ctrl-C, which would end
// the session; the shell wants Ctrl-C to drop the line being typed instead,
// as shells do, so interruptReader turns the byte into ^\ (FS), a key the
// editor hands to the completion callback.
const keyInterrupt = 0x1c

// interruptReader rewrites Ctrl-C (0x03) to keyInterrupt.
type interruptReader struct{ r io.Reader }

func (ir interruptReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	for i := range p[:n] {
		if p[i] == 0x03 {
			p[i] = keyInterrupt
		}
	}
	return n, err
}

// termLines is the interactive line editor on a terminal: prompt, editing
// keys, history (up/down) and Tab completion. The terminal is in raw mode
// only while a line is being read, so commands run, print and take Ctrl-C
// (SIGINT) as in any program.
type termLines struct {
	in, out *os.File
	saved   *term.State
	t       *term.Terminal
}

// newTermLines sets up the editor. complete is the Tab completion; its
// candidate list, when it returns one, is printed above the prompt.
func newTermLines(in, out *os.File, hist *history, complete func(line string, pos int) (string, int, []string)) (*termLines, error) {
	saved, err := term.GetState(int(in.Fd()))
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	tl := &termLines{in: in, out: out, saved: saved}
	tl.t = term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{interruptReader{in}, out}, prompt)
	hist.warn = tl.t
	tl.t.History = hist
	tl.t.AutoCompleteCallback = func(line string, pos int, key rune) (string, int, bool) {
		switch key {
		case keyInterrupt:
			fmt.Fprintf(tl.t, "%s%s^C\n", prompt, line)
			return "", 0, true
		case '\t':
			newLine, newPos, shown := complete(line, pos)
			if len(shown) > 0 {
				fmt.Fprintln(tl.t, strings.Join(shown, "  "))
			}
			return newLine, newPos, true
		}
		return "", 0, false
	}
	return tl, nil
}

func (tl *termLines) readLine() (string, error) {
	fd := int(tl.in.Fd())
	state, err := term.MakeRaw(fd)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	defer term.Restore(fd, state)
	if w, h, err := term.GetSize(int(tl.out.Fd())); err == nil {
		tl.t.SetSize(w, h)
	}
	line, err := tl.t.ReadLine()
	if errors.Is(err, term.ErrPasteIndicator) {
		err = nil
	}
	return line, err
}

// close puts the terminal back as it was, even while a readLine is blocked
// (the shell leaving on a signal).
func (tl *termLines) close() { term.Restore(int(tl.in.Fd()), tl.saved) }

// isTerminal reports whether r and w are both a terminal, and returns them
// as files if so.
func isTerminal(r io.Reader, w io.Writer) (in, out *os.File, ok bool) {
	in, okIn := r.(*os.File)
	out, okOut := w.(*os.File)
	if !okIn || !okOut || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
		return nil, nil, false
	}
	return in, out, true
}
