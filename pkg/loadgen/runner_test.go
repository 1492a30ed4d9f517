package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// fakeLocks is an in-memory lock server with the contract's try-lock and
// try-unlock semantics, recording what the load tool sent.
type fakeLocks struct {
	mu         sync.Mutex
	served     string              // servedFrom member of every reply, e.g. `,"servedFrom":"fake"`
	held       map[string]fakeLock // by durability/resource
	lastToken  int64
	regress    bool // hand out decreasing tokens, to prove the check works
	requests   int
	grants     int
	badUnlocks int // unlocks of locks the caller did not hold
	owners     map[string]bool
	durability map[int]int
	resources  []string // try-lock resources in arrival order
}

type fakeLock struct {
	owner   string
	token   int64
	expires time.Time
}

func newFakeLocks() *fakeLocks {
	return &fakeLocks{
		served:     `,"servedFrom":"fake"`,
		held:       make(map[string]fakeLock),
		lastToken:  1_000_000,
		owners:     make(map[string]bool),
		durability: make(map[int]int),
	}
}

func (f *fakeLocks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req wire.LockRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Resource == nil || req.Owner == nil || req.Durability == nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"type":100,"error":"bad request"}`)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.owners[*req.Owner] = true
	f.durability[*req.Durability]++
	key := fmt.Sprint(*req.Durability, "/", *req.Resource)
	now := time.Now()
	l, ok := f.held[key]
	live := ok && now.Before(l.expires)
	switch r.URL.Path {
	case wire.PathTryLock:
		f.resources = append(f.resources, *req.Resource)
		if live && l.owner != *req.Owner {
			fmt.Fprintf(w, `{"type":1%s,"owner":%q}`, f.served, l.owner)
			return
		}
		if !live {
			if f.regress {
				f.lastToken--
			} else {
				f.lastToken++
			}
			l = fakeLock{owner: *req.Owner, token: f.lastToken, expires: now.Add(time.Duration(*req.ExpiresMs) * time.Millisecond)}
			f.held[key] = l
			f.grants++
		}
		fmt.Fprintf(w, `{"type":0%s,"fencingToken":%d}`, f.served, l.token)
	case wire.PathTryUnlock:
		switch {
		case !ok:
			f.badUnlocks++
			fmt.Fprintf(w, `{"type":102%s}`, f.served)
		case l.owner != *req.Owner:
			f.badUnlocks++
			fmt.Fprintf(w, `{"type":103%s}`, f.served)
		default:
			delete(f.held, key)
			fmt.Fprintf(w, `{"type":3%s}`, f.served)
		}
	default:
		http.NotFound(w, r)
	}
}

func startFake(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func testConfig(endpoint string) Config {
	cfg := DefaultConfig()
	cfg.Endpoints = []string{endpoint}
	cfg.Workers = 8
	cfg.Keys = 4 // few keys so workers collide and see Busy
	cfg.Duration = 300 * time.Millisecond
	cfg.Warmup = 0
	cfg.Timeout = 2 * time.Second
	return cfg
}

func TestRunCountsAddUp(t *testing.T) {
	fake := newFakeLocks()
	cfg := testConfig(startFake(t, fake))
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()

	locked, busy, unlocked := res.Outcomes["Locked"], res.Outcomes["Busy"], res.Outcomes["Unlocked"]
	if res.Errors != 0 || res.BadReplies != 0 || res.BadTokens != 0 || res.TokenRegressions != 0 {
		t.Fatalf("unexpected failures: %+v", res)
	}
	if locked == 0 || busy == 0 {
		t.Fatalf("want both grants and contention on 4 keys, got %v", res.Outcomes)
	}
	if locked+busy+unlocked != res.Requests || len(res.Outcomes) != 3 {
		t.Fatalf("outcomes %v do not add up to %d requests", res.Outcomes, res.Requests)
	}
	// Every grant is followed by exactly one unlock, by the lock's owner.
	if unlocked != locked || fake.badUnlocks != 0 {
		t.Fatalf("locked %d, unlocked %d, unlocks of locks not held %d", locked, unlocked, fake.badUnlocks)
	}
	if len(fake.held) != 0 {
		t.Fatalf("%d locks left behind", len(fake.held))
	}
	if uint64(fake.requests) != res.Requests || uint64(fake.grants) != locked {
		t.Fatalf("server saw %d requests and %d grants, result says %d and %d", fake.requests, fake.grants, res.Requests, locked)
	}
	if len(fake.owners) != cfg.Workers || fake.durability[int(wire.Persistent)] != fake.requests {
		t.Fatalf("owners %v, durabilities %v", fake.owners, fake.durability)
	}
	for _, r := range fake.resources {
		if !strings.HasPrefix(r, cfg.KeyPrefix) {
			t.Fatalf("resource %q lacks prefix %q", r, cfg.KeyPrefix)
		}
	}
	l := res.LatencyUs
	if l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max+l.Max/100 {
		t.Fatalf("implausible latencies %+v", l)
	}
	if res.Duration < cfg.Duration || res.RequestsPerSec <= 0 {
		t.Fatalf("duration %s, rate %f", res.Duration, res.RequestsPerSec)
	}
	if len(res.Endpoints) != 1 || res.Endpoints[cfg.Endpoints[0]] != res.Requests {
		t.Fatalf("endpoints %v for %d requests", res.Endpoints, res.Requests)
	}
	if len(res.ServedFrom) != 1 || res.ServedFrom["fake"] != res.Requests || res.ServedFromMissing != 0 {
		t.Fatalf("servedFrom %v, missing %d for %d requests", res.ServedFrom, res.ServedFromMissing, res.Requests)
	}
}

func TestRunExcludesWarmup(t *testing.T) {
	fake := newFakeLocks()
	cfg := testConfig(startFake(t, fake))
	cfg.Warmup = 150 * time.Millisecond
	cfg.Duration = 150 * time.Millisecond
	cfg.Durability = wire.Ephemeral
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if res.Requests == 0 || uint64(fake.requests) <= res.Requests {
		t.Fatalf("server saw %d requests, result counts %d: warm-up not excluded", fake.requests, res.Requests)
	}
	if res.Outcomes["Locked"] != res.Outcomes["Unlocked"] {
		t.Fatalf("grants and unlocks do not pair up across the warm-up edge: %v", res.Outcomes)
	}
	if fake.durability[int(wire.Ephemeral)] != fake.requests || res.Durability != "ephemeral" {
		t.Fatalf("durabilities sent %v, result %q", fake.durability, res.Durability)
	}
	if res.Duration < cfg.Duration || res.Duration > cfg.Duration+time.Second {
		t.Fatalf("measured duration %s for a %s period", res.Duration, cfg.Duration)
	}
}

func TestRunDetectsTokenRegressions(t *testing.T) {
	fake := newFakeLocks()
	fake.regress = true
	cfg := testConfig(startFake(t, fake))
	cfg.Workers, cfg.Keys = 1, 1
	cfg.Duration = 100 * time.Millisecond
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	locked := res.Outcomes["Locked"]
	if locked < 2 || res.TokenRegressions != locked-1 || !res.Failed() {
		t.Fatalf("%d grants with falling tokens gave %d regressions", locked, res.TokenRegressions)
	}
}

func TestRunIsSeeded(t *testing.T) {
	sequence := func(seed uint64) []string {
		fake := newFakeLocks()
		cfg := testConfig(startFake(t, fake))
		cfg.Workers, cfg.Keys, cfg.Seed = 1, 1000, seed
		cfg.Duration = 50 * time.Millisecond
		if _, err := Run(context.Background(), cfg, nil); err != nil {
			t.Fatal(err)
		}
		fake.mu.Lock()
		defer fake.mu.Unlock()
		if len(fake.resources) < 10 {
			t.Fatalf("only %d requests in 50ms", len(fake.resources))
		}
		return fake.resources[:10]
	}
	a, b, c := sequence(1), sequence(1), sequence(2)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("same seed, different keys: %v vs %v", a, b)
	}
	if strings.Join(a, ",") == strings.Join(c, ",") {
		t.Fatalf("different seeds, same keys: %v", a)
	}
}

func TestRunCountsErrorsAndBadReplies(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	cfg := testConfig(srv.URL)
	cfg.Workers, cfg.Duration = 2, 50*time.Millisecond
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.BadReplies != res.Requests || len(res.Outcomes) != 0 || !strings.Contains(res.FirstError, "404") {
		t.Fatalf("404s not counted as bad replies: %+v", res)
	}
	if len(res.ServedFrom) != 0 || res.ServedFromMissing != res.Requests {
		t.Fatalf("plain-text 404s counted as served by %v (missing %d of %d)", res.ServedFrom, res.ServedFromMissing, res.Requests)
	}

	srv.Close() // now nothing listens: every request is a transport error
	res, err = Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || res.Requests != 0 || res.FirstError == "" {
		t.Fatalf("dial failures not counted as errors: %+v", res)
	}
	if got := res.Endpoints[srv.URL]; len(res.Endpoints) != 1 || got != 0 {
		t.Fatalf("a dead endpoint must show with 0 requests: %v", res.Endpoints)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	cfg := testConfig(startFake(t, newFakeLocks()))
	cfg.Duration = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 2*time.Second || !res.Interrupted || res.Requests == 0 {
		t.Fatalf("cancel ignored: took %s, %+v", time.Since(start), res)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, mutate := range []func(*Config){
		func(c *Config) { c.Workers = 0 },
		func(c *Config) { c.Keys = 0 },
		func(c *Config) { c.Duration = 0 },
		func(c *Config) { c.ExpiresMs = 0 },
		func(c *Config) { c.Durability = 2 },
		func(c *Config) { c.Endpoints = []string{"ftp://x"} },
		func(c *Config) { c.Token = "a\nb" },
		func(c *Config) { c.Endpoints = nil },
		func(c *Config) { c.Endpoints = []string{"http://a:1", "http://b:1"}; c.Workers = 1 },
	} {
		cfg := DefaultConfig()
		mutate(&cfg)
		if _, err := Run(context.Background(), cfg, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestWriteOutputs(t *testing.T) {
	res := &Result{
		Durability: "persistent", Workers: 2, Keys: 3, Duration: 1500 * time.Millisecond,
		Requests: 30, RequestsPerSec: 20,
		LatencyUs: LatencyUs{P50: 100, P90: 200, P99: 300, P999: 400, Max: 1500},
		Outcomes:  map[string]uint64{"Unlocked": 10, "Locked": 10, "Busy": 10, "type7": 1},
		Endpoints: map[string]uint64{"http://a:1": 10, "http://b:2": 20, "http://c:3": 0},
		// Given out of order, to show the text keeps the run's order.
		EndpointOrder:     []string{"http://b:2", "http://a:1", "http://c:3"},
		ServedFrom:        map[string]uint64{"n2": 20, "n1": 7, `odd "name"`: 2},
		ServedFromMissing: 1,
	}
	var text bytes.Buffer
	if err := WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"persistent", "1.5s", "100µs", "1.5ms", "Locked=10 Busy=10 Unlocked=10 type7=1",
		"\npersistent endpoints: http://b:2=20 http://a:1=10 http://c:3=0\n",
		"\npersistent servedFrom: n1=7 n2=20 \"odd \\\"name\\\"\"=2 (missing)=1\n"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, res, res); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, js.String())
	}
	if len(got) != 2 || got[0]["durationSeconds"] != 1.5 || got[0]["requests"] != 30.0 ||
		got[0]["latencyUs"].(map[string]any)["p99.9"] != 400.0 {
		t.Fatalf("JSON output %s", js.String())
	}
	endpoints, _ := got[0]["endpoints"].(map[string]any)
	served, _ := got[0]["servedFrom"].(map[string]any)
	if len(endpoints) != 3 || endpoints["http://b:2"] != 20.0 || endpoints["http://c:3"] != 0.0 ||
		len(served) != 3 || served[`odd "name"`] != 2.0 || got[0]["servedFromMissing"] != 1.0 || got[0]["EndpointOrder"] != nil {
		t.Fatalf("JSON endpoints %v, servedFrom %v in %s", endpoints, served, js.String())
	}
	// Only the table's header and rows are aligned; the new lines follow it.
	lines := strings.Split(text.String(), "\n")
	if !strings.HasPrefix(strings.TrimSpace(lines[0]), "durability  ") || !strings.HasPrefix(strings.TrimSpace(lines[1]), "persistent  ") ||
		!strings.HasPrefix(lines[2], "persistent outcomes: ") {
		t.Fatalf("table changed:\n%s", text.String())
	}
}
