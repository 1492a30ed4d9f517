package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// stubBackend grants everything; it isolates the handler's own cost.
type stubBackend struct{}

func (stubBackend) NodeID() string { return "node-1" }
func (stubBackend) Execute(ctx context.Context, req router.Request) (router.Response, error) {
	return router.Response{Result: fsm.Result{Outcome: fsm.Locked, Token: 12345}, ServedFrom: "node-1"}, nil
}
func (stubBackend) List(ctx context.Context, d partition.Durability, prefix, after string, limit int) ([]router.Entry, bool, error) {
	return nil, false, nil
}

type stubCluster struct{}

func (stubCluster) Status() wire.ClusterStatus { return wire.ClusterStatus{} }
func (stubCluster) Ready() (bool, string)      { return true, "" }
func (stubCluster) RemoveNode(context.Context, string) error {
	return errors.New("stub cluster: no removal")
}

// BenchmarkTryLockHandler measures decoding, validation and encoding of one
// try-lock, with the lock service stubbed out.
func BenchmarkTryLockHandler(b *testing.B) {
	h := New(stubBackend{}, stubCluster{}, Config{Logger: logging.Discard()})
	body := `{"resource":"bench-1234","owner":"kahuna-bench-1-7","expiresMs":10000,"durability":1}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, wire.PathTryLock, strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkHarness is the cost of the benchmark's request and recorder alone.
func BenchmarkHarness(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	body := `{"resource":"bench-1234","owner":"kahuna-bench-1-7","expiresMs":10000,"durability":1}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, wire.PathTryLock, strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
}
