package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "json", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	h := HCLog(l, "raft", true).With("partition", 3).Named("snapshots")
	h.Info("chatter", "x", 1) // demoted to debug: dropped at info
	h.Warn("disk slow", "servers", hclog.Fmt("%d of %d", 2, 3))
	if h.IsDebug() || !h.IsWarn() || h.GetLevel() != hclog.Warn {
		t.Fatalf("levels: debug=%v warn=%v level=%v", h.IsDebug(), h.IsWarn(), h.GetLevel())
	}
	got := lines(t, &buf)
	if len(got) != 1 {
		t.Fatalf("got %d lines: %v", len(got), got)
	}
	m := got[0]
	if m["msg"] != "disk slow" || m["level"] != "WARN" || m["servers"] != "2 of 3" || m["partition"] != 3.0 || m["component"] != "raft.snapshots" {
		t.Fatalf("line %v", m)
	}

	buf.Reset()
	loud := HCLog(l, "raft", false)
	loud.Info("election won")
	if got := lines(t, &buf); len(got) != 1 || got[0]["level"] != "INFO" {
		t.Fatalf("info without quieting: %v", got)
	}
}

func TestOptions(t *testing.T) {
	if _, err := ParseLevel("loud"); !errors.Is(err, ErrBadOption) {
		t.Fatalf("bad level: %v", err)
	}
	if lv, err := ParseLevel("warn"); err != nil || lv != slog.LevelWarn {
		t.Fatalf("warn: %v %v", lv, err)
	}
	if _, err := New(&bytes.Buffer{}, "xml", slog.LevelInfo); !errors.Is(err, ErrBadOption) {
		t.Fatalf("bad format: %v", err)
	}
	var buf bytes.Buffer
	l, _ := New(&buf, "text", slog.LevelDebug)
	l.Debug("hello", "k", "v")
	if !strings.Contains(buf.String(), "msg=hello k=v") {
		t.Fatalf("text line %q", buf.String())
	}
}

func TestStdLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	l, _ := New(&buf, "json", slog.LevelInfo)
	std := StdLogger(l.With("component", "memberlist"))
	std.Printf("[DEBUG] memberlist: probing %s", "n2")
	std.Printf("[WARN] memberlist: was able to connect to %s but other probes failed", "n3")
	std.Printf("[ERR] memberlist: failed to receive: %v", "EOF")
	std.Printf("no prefix at all")
	got := lines(t, &buf)
	if len(got) != 3 {
		t.Fatalf("want 3 lines (debug dropped), got %v", got)
	}
	if got[0]["level"] != "WARN" || got[0]["msg"] != "memberlist: was able to connect to n3 but other probes failed" || got[0]["component"] != "memberlist" {
		t.Fatalf("warn line %v", got[0])
	}
	if got[1]["level"] != "ERROR" || got[2]["level"] != "INFO" || got[2]["msg"] != "no prefix at all" {
		t.Fatalf("lines %v", got)
	}
}
