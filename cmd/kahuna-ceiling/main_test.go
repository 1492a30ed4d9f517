package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/loadgen"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// The load tool must read the ceiling server's replies as it reads
// kahunad's: every try-lock granted with a rising token and every unlock
// answered, so a ceiling run counts the same requests a Kahuna run does.
func TestLoadToolReadsCeilingReplies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, ln) }()

	cfg := loadgen.DefaultConfig()
	cfg.Endpoints = []string{"http://" + ln.Addr().String()}
	cfg.Workers = 4
	cfg.Keys = 50
	cfg.Warmup = 0
	cfg.Duration = 300 * time.Millisecond
	res, err := loadgen.Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("load run: %v", err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.BadReplies != 0 || res.Failed() {
		t.Fatalf("requests %d, errors %d (first %q), bad replies %d, token regressions %d, bad tokens %d",
			res.Requests, res.Errors, res.FirstError, res.BadReplies, res.TokenRegressions, res.BadTokens)
	}
	locked, unlocked := res.Outcomes[wire.Locked.String()], res.Outcomes[wire.Unlocked.String()]
	if locked == 0 || locked != unlocked || locked+unlocked != res.Requests {
		t.Fatalf("outcomes %v for %d requests: want every try-lock granted and unlocked", res.Outcomes, res.Requests)
	}
	if res.ServedFrom["ceiling"] != res.Requests {
		t.Fatalf("servedFrom %v, want all %d from ceiling", res.ServedFrom, res.Requests)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop after its context was cancelled")
	}
}

// Anything but the three paths the load tool uses is not served: an
// unknown path is 404, a known one with the wrong method 405.
func TestUnknownPathsAreNotFound(t *testing.T) {
	h := newHandler("ceiling")
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, wire.PathTryExtend, http.StatusNotFound},
		{http.MethodGet, wire.PathTryLock, http.StatusMethodNotAllowed},
		{http.MethodPost, "/nope", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		req, err := http.NewRequest(tc.method, "http://x"+tc.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
	}
}

func TestBusyAddressIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr strings.Builder
	err = run(context.Background(), []string{"-addr", ln.Addr().String()}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "listen on "+ln.Addr().String()) {
		t.Fatalf("run on a busy address: %v, want a listen error naming it", err)
	}
}

func TestBadCommandLinesAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"extra"}} {
		var stderr strings.Builder
		err := run(context.Background(), args, &stderr)
		var usage usageError
		if !errors.As(err, &usage) || stderr.Len() == 0 {
			t.Errorf("%q: error %v, stderr %q; want a usage error explained on stderr", args, err, stderr.String())
		}
	}
}
