// Package ui is Kahuna's web dashboard: a static page, embedded in the
// binary, that shows the cluster and its locks through the public REST API
// only. It has no build step and loads nothing from outside the node, so it
// works on an air-gapped cluster and under a strict Content-Security-Policy.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// files is the page's file tree, rooted at static/.
var files = func() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // static/ is embedded above; this cannot fail
	}
	return sub
}()

// securityHeaders go on every file. The page handles bearer tokens and an
// admin action, so it refuses to be framed (a force-unlock button under a
// clickjacking overlay), runs only its own script, and talks only to the
// node that served it.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
		"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options":        "DENY",
	"Referrer-Policy":        "no-referrer",
}

// Handler serves the dashboard's files; the API mounts it under /ui/ with
// that prefix stripped, so it sees "/", "/app.js" and so on.
//
// The embedded files have no modification time, so each gets an ETag from
// its content instead: a browser revalidates on every load ("no-cache") and
// gets a 304 until the binary changes, never a stale script after an
// upgrade.
func Handler() http.Handler {
	etags, err := contentETags(files)
	if err != nil {
		panic(fmt.Errorf("ui: hashing embedded files: %w", err))
	}
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range securityHeaders {
			h.Set(k, v)
		}
		h.Set("Cache-Control", "no-cache")
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		if tag, ok := etags[name]; ok {
			h.Set("ETag", tag)
		}
		fileServer.ServeHTTP(w, r)
	})
}

// contentETags returns a strong ETag for every regular file of fsys, keyed
// by its slash path.
func contentETags(fsys fs.FS) (map[string]string, error) {
	tags := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		sum := sha256.Sum256(b)
		tags[p] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	return tags, err
}
