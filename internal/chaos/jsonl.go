package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// HistoryFile is the name a history gets inside a run's folder.
const HistoryFile = "history.jsonl"

// maxLine bounds one JSON line: a resource is at most 1 KiB and an owner
// 256 bytes, so anything near this is not a history.
const maxLine = 1 << 20

// WriteJSONL writes one op per line (JSON Lines), in order.
func (h History) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, o := range h.Ops {
		if err := enc.Encode(o); err != nil {
			return fmt.Errorf("chaos: encode op %d: %w", o.ID, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("chaos: write history: %w", err)
	}
	return nil
}

// ReadJSONL reads a history written by WriteJSONL. Blank lines are skipped;
// unknown fields are rejected, so a file of some other format is not
// mistaken for an empty history. The result is validated.
func ReadJSONL(r io.Reader) (History, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var h History
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var o Op
		if err := dec.Decode(&o); err != nil {
			return History{}, fmt.Errorf("chaos: history line %d: %w", line, err)
		}
		if dec.More() {
			return History{}, fmt.Errorf("chaos: history line %d: more than one value", line)
		}
		h.Ops = append(h.Ops, o)
	}
	if err := sc.Err(); err != nil {
		return History{}, fmt.Errorf("chaos: read history: %w", err)
	}
	if err := h.Validate(); err != nil {
		return History{}, err
	}
	return h, nil
}

// WriteFile writes the history to path, creating its folder. It writes a
// temporary file first, so a crash never leaves half a history behind.
func (h History) WriteFile(path string) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".history-*")
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		_ = f.Close()
		return fmt.Errorf("chaos: %w", err)
	}
	if err := h.WriteJSONL(f); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	return nil
}

// ReadFile loads a history written by WriteFile.
func ReadFile(path string) (History, error) {
	f, err := os.Open(path)
	if err != nil {
		return History{}, fmt.Errorf("chaos: %w", err)
	}
	defer f.Close()
	h, err := ReadJSONL(f)
	if err != nil {
		return History{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// Save writes the history into dir as HistoryFile and returns its path.
func (h History) Save(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("chaos: save: empty folder name")
	}
	path := filepath.Join(dir, HistoryFile)
	return path, h.WriteFile(path)
}

// Load reads HistoryFile from dir.
func Load(dir string) (History, error) {
	return ReadFile(filepath.Join(dir, HistoryFile))
}
