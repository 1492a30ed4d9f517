package loadgen

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSplitEndpoints(t *testing.T) {
	good := []struct {
		in   string
		want []string
	}{
		{"http://127.0.0.1:8082", []string{"http://127.0.0.1:8082"}},
		{"http://127.0.0.1:8082/", []string{"http://127.0.0.1:8082"}},
		{"http://a:1,http://b:2/, http://c:3 ", []string{"http://a:1", "http://b:2", "http://c:3"}},
		{"http://a:1,http://a:1,http://b:2", []string{"http://a:1", "http://a:1", "http://b:2"}}, // duplicates weight a node
		{"http://localhost", []string{"http://localhost"}},
		{"https://a:1/,http://b:2", []string{"https://a:1", "http://b:2"}},
	}
	for _, tt := range good {
		got, err := SplitEndpoints(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("SplitEndpoints(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	bad := []struct {
		in   string
		want string // the error must name the culprit
	}{
		{"", "no endpoint given"},
		{" ", "no endpoint given"},
		{"ftp://a:1", `endpoint "ftp://a:1": only http:// and https:// are supported`},
		{"http://a:1,ftp://b:2,http://c:3", `endpoint "ftp://b:2": only http:// and https:// are supported (entry 2 of 3)`},
		{"http://a:1,,http://c:3", "empty endpoint (entry 2 of 3)"},
		{"http://a:1,", "empty endpoint (entry 2 of 2)"},
		{"http://a:1,http://", `endpoint "http://": no host (entry 2 of 2)`},
		{"http://a:1,http://b:2/v1", `endpoint "http://b:2/v1": a path is not supported (entry 2 of 2)`},
		{"http://a:1;http://b:2", `endpoint "http://a:1;http://b:2"`},
	}
	for _, tt := range bad {
		got, err := SplitEndpoints(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SplitEndpoints(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.want)
		}
	}
}

func TestConfigValidateNamesBadEndpoint(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Endpoints = []string{"http://a:1", "ftp://b:2"}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `"ftp://b:2"`) || !strings.Contains(err.Error(), "entry 2 of 2") {
		t.Fatalf("got %v", err)
	}
	cfg.Endpoints = []string{"http://a:1", "http://b:2", "http://c:3"}
	cfg.Workers = 2
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "number of endpoints (3)") {
		t.Fatalf("2 workers for 3 endpoints: got %v", err)
	}
}

// TestRunSpreadsWorkersOverEndpoints runs against three fakes standing in
// for a cluster where b forwards everything to a, and checks that worker i
// talks to endpoint i mod 3 only and that both tallies match what the fakes
// did.
func TestRunSpreadsWorkersOverEndpoints(t *testing.T) {
	a, b, c := newFakeLocks(), newFakeLocks(), newFakeLocks()
	a.served = `,"servedFrom":"node-a"`
	b.served = `,"servedFrom":"node-a"` // forwarded to a
	c.served = `,"servedFrom":"node-\"c\""`
	fakes := []*fakeLocks{a, b, c}
	cfg := testConfig(startFake(t, a))
	cfg.Endpoints = append(cfg.Endpoints, startFake(t, b), startFake(t, c))
	cfg.Workers = 6
	cfg.Keys = 1000 // little contention, so the workers run at a similar pace
	cfg.Owner = "w"
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.BadReplies != 0 || res.Failed() {
		t.Fatalf("unexpected failures: %+v", res)
	}

	var sum uint64
	for e, f := range fakes {
		f.mu.Lock()
		requests, owners := f.requests, f.owners
		f.mu.Unlock()
		url := cfg.Endpoints[e]
		if res.Endpoints[url] != uint64(requests) {
			t.Errorf("endpoint %d (%s): result counts %d requests, the fake saw %d", e, url, res.Endpoints[url], requests)
		}
		sum += uint64(requests)
		// Exactly workers e and e+3 talked to endpoint e.
		want := map[string]bool{"w" + strconv.Itoa(e): true, "w" + strconv.Itoa(e+3): true}
		if fmt.Sprint(owners) != fmt.Sprint(want) {
			t.Errorf("endpoint %d served owners %v, want %v", e, owners, want)
		}
	}
	if len(res.Endpoints) != 3 || sum != res.Requests || !slices.Equal(res.EndpointOrder, cfg.Endpoints) {
		t.Fatalf("endpoints %v (order %v) do not add up to %d requests", res.Endpoints, res.EndpointOrder, res.Requests)
	}
	// Two workers each: roughly a third of the load per endpoint.
	fair := float64(res.Requests) / 3
	for url, n := range res.Endpoints {
		if float64(n) < fair/2 || float64(n) > fair*3/2 {
			t.Errorf("%s got %d of %d requests, far from its share", url, n, res.Requests)
		}
	}

	a.mu.Lock()
	b.mu.Lock()
	c.mu.Lock()
	wantA, wantC := uint64(a.requests+b.requests), uint64(c.requests)
	a.mu.Unlock()
	b.mu.Unlock()
	c.mu.Unlock()
	if len(res.ServedFrom) != 2 || res.ServedFrom["node-a"] != wantA || res.ServedFrom[`node-"c"`] != wantC || res.ServedFromMissing != 0 {
		t.Fatalf("servedFrom %q (missing %d), want node-a=%d node-\"c\"=%d", res.ServedFrom, res.ServedFromMissing, wantA, wantC)
	}
}

func TestRunDuplicateEndpoints(t *testing.T) {
	a, b := newFakeLocks(), newFakeLocks()
	urlA, urlB := startFake(t, a), startFake(t, b)
	cfg := testConfig(urlA)
	cfg.Endpoints = []string{urlA, urlB, urlA} // a gets workers 0, 2, 3 and 5
	cfg.Workers = 6
	cfg.Duration = 100 * time.Millisecond
	cfg.Owner = "w"
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(a.owners) != 4 || len(b.owners) != 2 || !b.owners["w1"] || !b.owners["w4"] {
		t.Fatalf("a served %v, b served %v", a.owners, b.owners)
	}
	if len(res.Endpoints) != 2 || res.Endpoints[urlA] != uint64(a.requests) || res.Endpoints[urlB] != uint64(b.requests) ||
		!slices.Equal(res.EndpointOrder, []string{urlA, urlB}) {
		t.Fatalf("endpoints %v (order %v), fakes saw %d and %d", res.Endpoints, res.EndpointOrder, a.requests, b.requests)
	}
}

func TestServedTally(t *testing.T) {
	var w1, w2 servedTally
	for range 3 {
		w1.count([]byte("n1"), 1)
	}
	w1.count([]byte(`n\u0031`), 1) // another spelling of n1
	w1.count([]byte(`q\"x`), 2)
	w1.count([]byte{}, 1) // an empty name is a name
	w1.count(nil, 4)      // no servedFrom
	w2.count([]byte("n2"), 5)
	w2.count([]byte("n1"), 1)
	w2.count(nil, 1)

	var total servedTally
	total.add(&w1)
	total.add(&w2)
	got := total.byNode()
	want := map[string]uint64{"n1": 5, "n2": 5, `q"x`: 2, "": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) || total.missing != 5 {
		t.Fatalf("got %q missing %d, want %q missing 5", got, total.missing, want)
	}

	// Past maxInternedNodes names still count, in the overflow map.
	var many servedTally
	for i := range maxInternedNodes + 5 {
		for range i + 1 {
			many.count([]byte("node-"+strconv.Itoa(i)), 1)
		}
	}
	if len(many.nodes) != maxInternedNodes || len(many.overflow) != 5 {
		t.Fatalf("%d interned, %d overflowing", len(many.nodes), len(many.overflow))
	}
	byNode := many.byNode()
	for i := range maxInternedNodes + 5 {
		if n := byNode["node-"+strconv.Itoa(i)]; n != uint64(i+1) {
			t.Fatalf("node-%d counted %d times, want %d", i, n, i+1)
		}
	}
}

// TestServedTallyDoesNotAllocate covers the common case: replies from the
// few nodes already seen, whatever their order.
func TestServedTallyDoesNotAllocate(t *testing.T) {
	bodies := [][]byte{
		[]byte(`{"type":0,"servedFrom":"node-1","fencingToken":42}`),
		[]byte(`{"type":3,"servedFrom":"node-2"}`),
		[]byte(`{"type":0,"servedFrom":"node-3","fencingToken":43}`),
		[]byte(`{"type":3}`),
	}
	var tally servedTally
	for _, b := range bodies { // first sightings copy the name once
		r, _ := ScanReply(b)
		tally.count(r.ServedFrom, 1)
	}
	i := 0
	if n := testing.AllocsPerRun(200, func() {
		r, _ := ScanReply(bodies[i%len(bodies)])
		tally.count(r.ServedFrom, 1)
		i++
	}); n != 0 {
		t.Fatalf("counting a known node allocates %.0f times per reply", n)
	}
}
