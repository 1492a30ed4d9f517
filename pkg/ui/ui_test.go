package ui_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kahuna-go/kahuna/pkg/api"
	"github.com/kahuna-go/kahuna/pkg/auth"
	"github.com/kahuna-go/kahuna/pkg/ui"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestHandlerServesFiles(t *testing.T) {
	h := ui.Handler()
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/", "text/html", `<script src="app.js"`},
		{"/app.js", "javascript", "sessionStorage"},
		{"/app.css", "text/css", "@media"},
	} {
		resp := get(t, h, tc.path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", tc.path, resp.Status)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tc.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.ctype)
		}
		if !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache (revalidate, never a stale script)", tc.path, cc)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		// The ETag comes from the content: a repeat load is a 304.
		tag := resp.Header.Get("ETag")
		if tag == "" {
			t.Fatalf("GET %s: no ETag", tc.path)
		}
		if again := get(t, h, tc.path, "If-None-Match", tag); again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s: %s, want 304", tc.path, tag, again.Status)
		}
	}
	if resp := get(t, h, "/nope.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope.js: %s, want 404", resp.Status)
	}
}

// TestNoExternalAssets keeps the page self-contained: it must work on a
// cluster without internet access and under its own CSP.
func TestNoExternalAssets(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|<style|style="|\son[a-z]+="`)
	err := filepath.WalkDir("static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s: %q: external asset, or inline style or script the CSP would block", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMountedWithAuth checks the page through the API handler with tokens
// on: the files need none (the page asks for the token itself), the API
// calls it makes do, and / leads to the page.
func TestMountedWithAuth(t *testing.T) {
	file := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(file, []byte(`{"tokens":[{"name":"viewer","token":"read-secret","role":"read"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := auth.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(nil, nil, api.Config{Auth: store, UI: ui.Handler()})
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/app.css"} {
		if resp := get(t, h, path); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a token: %s, want 200", path, resp.Status)
		}
	}
	for path, want := range map[string]string{"/": "/ui/", "/ui": "/ui/"} {
		resp := get(t, h, path)
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || loc != want {
			t.Errorf("GET %s: %s to %q, want a redirect to %s", path, resp.Status, loc, want)
		}
	}
	if resp := get(t, h, "/v1/cluster/status"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/cluster/status without a token: %s, want 401", resp.Status)
	}
	if resp := get(t, h, "/ui/../v1/cluster/status"); resp.StatusCode == http.StatusOK {
		t.Errorf("GET /ui/../v1/cluster/status without a token: %s; the UI route must not open the API", resp.Status)
	}
}
