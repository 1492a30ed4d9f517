package api

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// notInTheDocument are the routes the handler serves that are not part of
// the JSON API and so not in openapi.json: Prometheus text and the
// dashboard's HTML.
var notInTheDocument = []string{wire.PathMetrics, wire.PathUI + "*", "/ui", "/"}

// TestOpenAPICoversEveryRoute holds the embedded document and the router to
// the same set of routes, so that a route added without a document entry,
// or an entry for a route that is gone, fails here.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openapiDoc)
	if err != nil {
		t.Fatalf("the embedded openapi.json does not load: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}

	// Every optional handler is on, so that its routes are walked too.
	h := New(nil, nil, Config{Metrics: http.NotFoundHandler(), UI: http.NotFoundHandler()})
	served, skipped := map[string]bool{}, map[string]bool{}
	walk := func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if slices.Contains(notInTheDocument, route) {
			skipped[route] = true
		} else {
			served[method+" "+route] = true
		}
		return nil
	}
	if err := chi.Walk(h.mux.(chi.Routes), walk); err != nil {
		t.Fatal(err)
	}

	for r := range served {
		if !documented[r] {
			t.Errorf("%s is served but openapi.json does not describe it", r)
		}
	}
	// A stale exception would let an API route on that path back in
	// without a document entry.
	for _, r := range notInTheDocument {
		if !skipped[r] {
			t.Errorf("%s is listed as not in the document, but the handler does not serve it", r)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("openapi.json describes %s, which the handler does not serve", r)
		}
	}
	if len(served) == 0 || t.Failed() {
		t.Logf("served: %s", strings.Join(slices.Sorted(maps.Keys(served)), ", "))
	}
}
