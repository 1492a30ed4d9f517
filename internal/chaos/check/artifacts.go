package check

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// WriteArtifacts writes what is needed to study a failed check offline into
// dir: the whole history (chaos.HistoryFile, re-checkable with
// chaos.Load), porcupine's HTML visualization of every lock that failed or
// was left undecided (linearizability-NN-<resource>.html, open in a
// browser: it shows the longest partial linearizations and the model
// states along them), and anomalies.txt. It returns the files written.
func (r LinearizabilityReport) WriteArtifacts(dir string, h chaos.History) ([]string, error) {
	files, err := writeCommon(dir, h, r.Anomalies)
	if err != nil {
		return files, err
	}
	model := lockModel()
	for i, f := range r.failures {
		path := filepath.Join(dir, fmt.Sprintf("linearizability-%02d-%s.html", i, fileSafe(f.lock.Resource)))
		if err := porcupine.VisualizePath(model, f.info, path); err != nil {
			return files, fmt.Errorf("check: visualize %s: %w", f.lock, err)
		}
		files = append(files, path)
	}
	return files, nil
}

// WriteArtifacts writes the history, the summary, every anomaly and the
// linearizability visualizations into dir (see
// LinearizabilityReport.WriteArtifacts).
func (r Report) WriteArtifacts(dir string, h chaos.History) ([]string, error) {
	lin := r.Linearizability
	lin.Anomalies = r.Anomalies
	files, err := lin.WriteArtifacts(dir, h)
	if err != nil {
		return files, err
	}
	path := filepath.Join(dir, "summary.txt")
	if err := os.WriteFile(path, []byte(r.Summary.String()), 0o644); err != nil {
		return files, fmt.Errorf("check: %w", err)
	}
	return append(files, path), nil
}

func writeCommon(dir string, h chaos.History, found []Anomaly) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	hist, err := h.Save(dir)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	path := filepath.Join(dir, "anomalies.txt")
	if err := os.WriteFile(path, []byte(Format(found)+"\n"), 0o644); err != nil {
		return []string{hist}, fmt.Errorf("check: %w", err)
	}
	return []string{hist, path}, nil
}

// fileSafe keeps a resource name usable in a file name.
func fileSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}
