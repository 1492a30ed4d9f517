package client

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestAttemptEndsAtTheEarlierDeadline: against a node that never answers,
// an attempt ends at the caller's deadline when that comes first, though
// the client then uses the caller's context as is, and at AttemptTimeout
// otherwise, after which the client tries again.
func TestAttemptEndsAtTheEarlierDeadline(t *testing.T) {
	silent := "http://" + silentListener(t)
	var attempts atomic.Int32
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	newClient := func(attempt time.Duration) *Client {
		c, err := New(Config{Endpoints: []string{silent}, AttemptTimeout: attempt,
			MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
			HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				attempts.Add(1)
				return tr.RoundTrip(r)
			})}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	res := "r"
	call := func(c *Client, d, wait time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		start := time.Now()
		_, err := c.call(ctx, wire.PathTryLock, &wire.LockRequest{Resource: &res}, wait)
		return time.Since(start), err
	}

	long := newClient(time.Minute)
	for _, wait := range []time.Duration{0, maxServerWait} {
		attempts.Store(0)
		took, err := call(long, 200*time.Millisecond, wait)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("wait %v: err %v", wait, err)
		}
		if took < 200*time.Millisecond || took > 5*time.Second || attempts.Load() != 1 {
			t.Fatalf("wait %v: %d attempts took %v; the caller's 200 ms deadline must end the one attempt", wait, attempts.Load(), took)
		}
	}

	attempts.Store(0)
	if _, err := call(newClient(50*time.Millisecond), time.Second, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("short attempts: err %v", err)
	}
	if n := attempts.Load(); n < 3 {
		t.Fatalf("%d attempts in a second of 50 ms attempts; AttemptTimeout must end each", n)
	}
}
