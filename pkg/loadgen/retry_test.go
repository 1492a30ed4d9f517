package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// mustRetryFirst answers 101 to the first n attempts of every operation,
// then lets next answer. An operation is known by its body: a worker
// sends the same body again when it retries, and no other worker sends it.
type mustRetryFirst struct {
	next http.Handler
	n    int

	mu   sync.Mutex
	seen map[string]int // attempts of the body's current operation
	sent int            // 101s answered
}

func (m *mustRetryFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.URL.Path + string(body)
	m.mu.Lock()
	k := m.seen[key]
	if k < m.n {
		m.seen[key] = k + 1
		m.sent++
		m.mu.Unlock()
		fmt.Fprint(w, `{"type":101,"servedFrom":"fake","error":"no leader yet"}`)
		return
	}
	delete(m.seen, key) // the next operation with this body starts afresh
	m.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	m.next.ServeHTTP(w, r)
}

// TestRetryUntilAnswered: every operation is answered 101 three times
// before the real answer; with retries on, none fails, each is counted once
// with the latency of all its attempts, and the retries are counted apart.
func TestRetryUntilAnswered(t *testing.T) {
	fake := newFakeLocks()
	flaky := &mustRetryFirst{next: fake, n: 3, seen: map[string]int{}}
	cfg := testConfig(startFake(t, flaky))
	cfg.Workers = 4
	cfg.Retry = 5 * time.Second
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.FailedOps != 0 || res.Errors != 0 || res.BadReplies != 0 || res.UnfinishedOps != 0 || res.Outcomes["MustRetry"] != 0 {
		t.Fatalf("operations failed or 101s counted as outcomes: %+v", res)
	}
	locked, busy, unlocked := res.Outcomes["Locked"], res.Outcomes["Busy"], res.Outcomes["Unlocked"]
	if locked == 0 || locked+busy+unlocked != res.Requests || unlocked != locked {
		t.Fatalf("outcomes %v for %d operations", res.Outcomes, res.Requests)
	}
	if res.Retries != 3*res.Requests {
		t.Fatalf("%d retries for %d operations answered 101 three times each", res.Retries, res.Requests)
	}
	// With one endpoint every retry waits a jittered backoff first:
	// at least 5 + 10 + 20 ms.
	if res.LatencyUs.P50 < 35_000 {
		t.Fatalf("latency %+v leaves out the retries", res.LatencyUs)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.badUnlocks != 0 || len(fake.held) != 0 {
		t.Fatalf("%d bad unlocks, %d locks left behind", fake.badUnlocks, len(fake.held))
	}
}

// alwaysMustRetry answers 101 to everything, like a cluster without a
// leader.
func alwaysMustRetry(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprint(w, `{"type":101,"servedFrom":"fake","error":"no leader"}`)
}

// TestRetryFailsAtTheDeadline: an operation answered 101 forever fails when
// its deadline passes, not before and not much after, and counts as one
// failed operation whose outcome is the last 101.
func TestRetryFailsAtTheDeadline(t *testing.T) {
	cfg := testConfig(startFake(t, http.HandlerFunc(alwaysMustRetry)))
	cfg.Workers = 2
	cfg.Duration = 200 * time.Millisecond
	cfg.Retry = 150 * time.Millisecond
	start := time.Now()
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.FailedOps != res.Requests || res.Outcomes["MustRetry"] != res.Requests || len(res.Outcomes) != 1 {
		t.Fatalf("every operation must fail with its last 101: %+v", res)
	}
	if res.Retries < res.Requests || res.Errors != 0 || res.UnfinishedOps != 0 {
		t.Fatalf("retries %d, errors %d, unfinished %d for %d operations", res.Retries, res.Errors, res.UnfinishedOps, res.Requests)
	}
	if l := res.LatencyUs; l.P50 < 150_000 || l.Max > 400_000 {
		t.Fatalf("latency %+v: operations must end at their 150 ms deadline", l)
	}
	// The last operations started before 200 ms end by 350 ms.
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("run took %v", took)
	}

	// Without retries every 101 is an operation that failed at once.
	cfg.Retry = 0
	res, err = Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.FailedOps != res.Requests || res.Retries != 0 || res.LatencyUs.P50 > 100_000 {
		t.Fatalf("without retries: %+v", res)
	}
}

// TestRetryMovesToTheNextEndpoint: a worker whose endpoint is down gets
// its answers from the next one; the refused connections are counted as
// errors and retries, and no operation fails.
func TestRetryMovesToTheNextEndpoint(t *testing.T) {
	fake := newFakeLocks()
	live := startFake(t, fake)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	cfg := testConfig(dead.URL)
	cfg.Endpoints = []string{dead.URL, live}
	cfg.Workers = 2 // worker 0 starts at the dead endpoint, worker 1 at the live one
	cfg.Retry = 2 * time.Second
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.FailedOps != 0 || res.Errors == 0 || res.Retries != res.Errors || res.Requests == 0 {
		t.Fatalf("want every operation answered after retrying the refused ones: %+v", res)
	}
	if res.Endpoints[dead.URL] != 0 || res.Endpoints[live] != res.Requests {
		t.Fatalf("answers by endpoint %v for %d operations", res.Endpoints, res.Requests)
	}
	if res.Outcomes["Locked"] == 0 || res.Outcomes["Locked"] != res.Outcomes["Unlocked"] {
		t.Fatalf("outcomes %v", res.Outcomes)
	}

	// Without retries each refused connection is a failed operation.
	cfg.Retry = 0
	res, err = Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || res.FailedOps != res.Errors || res.Retries != 0 {
		t.Fatalf("without retries: %+v", res)
	}
}

// TestRetryDeadlineBoundsAHangingAttempt: an attempt that gets no reply is
// cut off at the operation's deadline, not at the longer per-request
// timeout.
func TestRetryDeadlineBoundsAHangingAttempt(t *testing.T) {
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost { // the cluster status the run reads
			http.NotFound(w, r)
			return
		}
		// With the body read, the server notices the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	cfg := testConfig(startFake(t, hang))
	cfg.Workers = 1
	cfg.Duration = 50 * time.Millisecond
	cfg.Timeout = 5 * time.Second
	cfg.Retry = 200 * time.Millisecond
	start := time.Now()
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("run took %v: the attempt waited for the request timeout", took)
	}
	if res.FailedOps != 1 || res.Errors != 1 || res.Requests != 0 || !strings.Contains(res.FirstError, "timeout") {
		t.Fatalf("want one operation failed by its deadline: %+v", res)
	}
}

// TestRetryStopsWhenCancelled: cancelling a run ends operations that are
// being retried at once; they are unfinished, not failed.
func TestRetryStopsWhenCancelled(t *testing.T) {
	cfg := testConfig(startFake(t, http.HandlerFunc(alwaysMustRetry)))
	cfg.Duration = time.Minute
	cfg.Retry = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 2*time.Second || !res.Interrupted {
		t.Fatalf("cancel ignored: took %s, %+v", time.Since(start), res)
	}
	if res.UnfinishedOps != uint64(cfg.Workers) || res.FailedOps != 0 || res.Requests != 0 || res.Retries == 0 {
		t.Fatalf("want %d unfinished operations and nothing failed: %+v", cfg.Workers, res)
	}
}

func TestWriteRetries(t *testing.T) {
	res := &Result{
		Durability: "persistent", Workers: 2, Keys: 3, Duration: time.Second, Requests: 30,
		Outcomes: map[string]uint64{"Locked": 15, "Unlocked": 15},
		Retry:    10 * time.Second, Retries: 7, FailedOps: 1, UnfinishedOps: 2,
	}
	var text bytes.Buffer
	if err := WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	if want := "\npersistent retry: within 10s, 7 attempts retried, 1 operations failed, 2 unfinished\n"; !strings.Contains(text.String(), want) {
		t.Errorf("text output lacks %q:\n%s", want, text.String())
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got[0]["retrySeconds"] != 10.0 || got[0]["retries"] != 7.0 || got[0]["failedOps"] != 1.0 || got[0]["unfinishedOps"] != 2.0 {
		t.Fatalf("JSON output %s", js.String())
	}

	// Without retries there is no retry line, and the JSON still says
	// how many operations failed.
	res.Retry, res.Retries, res.UnfinishedOps = 0, 0, 0
	text.Reset()
	js.Reset()
	if err := WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text.String(), "retry") || !strings.Contains(js.String(), `"failedOps": 1`) || strings.Contains(js.String(), "retrySeconds") {
		t.Fatalf("text:\n%s\nJSON:\n%s", text.String(), js.String())
	}
}
