package check

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

func TestWriteArtifactsOfAFailedRun(t *testing.T) {
	h := hist(
		lock("a", 1000, 0, 10).on("ok").locked(1),
		lock("a", 1000, 0, 10).on("bad/one").locked(1),
		unlock("a", 20, 30).on("bad/one").unlocked(),
		get(40, 50).on("bad/one").got("a", 1),
	)
	r, err := Run(h, Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() || r.Linearizability.Illegal != 1 {
		t.Fatalf("want one illegal lock: %+v", r.Linearizability)
	}
	dir := filepath.Join(t.TempDir(), "failure")
	files, err := r.WriteArtifacts(dir, h)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.Base(f)
	}
	want := []string{chaos.HistoryFile, "anomalies.txt", "linearizability-00-bad_one.html", "summary.txt"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	html, err := os.ReadFile(filepath.Join(dir, want[2]))
	if err != nil {
		t.Fatal(err)
	}
	// The visualization embeds the model's descriptions of ops and states.
	for _, s := range []string{"#3 get-info() → Got a f1", "free (last f1)"} {
		if !strings.Contains(string(html), s) {
			t.Errorf("visualization lacks %q", s)
		}
	}
	anomalies, _ := os.ReadFile(filepath.Join(dir, "anomalies.txt"))
	if !strings.Contains(string(anomalies), `"bad/one": not linearizable`) {
		t.Errorf("anomalies.txt:\n%s", anomalies)
	}
	summary, _ := os.ReadFile(filepath.Join(dir, "summary.txt"))
	if !strings.Contains(string(summary), "FAIL") {
		t.Errorf("summary.txt:\n%s", summary)
	}

	// The saved history re-checks offline to the same verdict.
	back, err := chaos.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, h) {
		t.Error("saved history differs")
	}
	again := Linearizable(back, Options{})
	if again.Illegal != 1 || Format(again.Anomalies) != Format(r.Linearizability.Anomalies) {
		t.Errorf("re-check: %s", Format(again.Anomalies))
	}
}

func TestFileSafe(t *testing.T) {
	if got := fileSafe("a/b c:ü" + strings.Repeat("x", 100)); got != "a_b_c__"+strings.Repeat("x", 33) {
		t.Errorf("fileSafe: %q", got)
	}
}
