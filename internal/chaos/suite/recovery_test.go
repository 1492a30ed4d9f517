package suite

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// unknownOutcomeLocks grants every lock on its first try-lock but answers
// that try 101, as a leader that lost its leadership while the grant
// committed does; later try-locks see the grant: the same owner gets it
// back, anybody else finds the lock busy.
type unknownOutcomeLocks struct {
	mu      sync.Mutex
	holders map[string]string // by durability/resource
}

func (u *unknownOutcomeLocks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Resource   string `json:"resource"`
		Owner      string `json:"owner"`
		Durability int    `json:"durability"`
	}
	if r.URL.Path != wire.PathTryLock || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, `{"type":100,"error":"unexpected request"}`, http.StatusBadRequest)
		return
	}
	key := fmt.Sprint(req.Durability, "/", req.Resource)
	u.mu.Lock()
	holder, held := u.holders[key]
	if !held {
		u.holders[key] = req.Owner
	}
	u.mu.Unlock()
	switch {
	case !held:
		fmt.Fprint(w, `{"type":101,"error":"outcome unknown, leadership lost during commit","servedFrom":"f"}`)
	case holder == req.Owner:
		fmt.Fprint(w, `{"type":0,"fencingToken":1,"servedFrom":"f"}`)
	default:
		fmt.Fprintf(w, `{"type":1,"owner":%q,"servedFrom":"f"}`, holder)
	}
}

// TestRecoveryRetriesWithTheSameOwner: a probe answered "outcome unknown"
// must get its own grant back on the next try instead of waiting out a
// lease it holds itself.
func TestRecoveryRetriesWithTheSameOwner(t *testing.T) {
	srv := httptest.NewServer(&unknownOutcomeLocks{holders: map[string]string{}})
	defer srv.Close()
	cfg := Config{RecoveryBound: 3 * time.Second}.withDefaults()
	cfg.Workload.Endpoints = []string{srv.URL, srv.URL}
	rec := chaos.NewRecorder()
	got := probeRecovery(cfg, rec)
	want := 2 * len(cfg.Workload.Resources(rec.Now()))
	if got.Locks != want || len(got.Failed) != 0 {
		t.Fatalf("%d of %d locks probed, not lockable: %v", got.Locks, want, got.Failed)
	}
	if got.Max >= cfg.RecoveryBound {
		t.Fatalf("slowest lock took %v", got.Max)
	}
}
