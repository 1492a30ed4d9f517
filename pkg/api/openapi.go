package api

import (
	_ "embed"
	"net/http"
)

// openapiDoc is the OpenAPI 3 document of the REST API (CONTRACT §9). It
// lives beside the handlers, not generated from them, so that it is a
// contract the tests hold the handlers to rather than a mirror of whatever
// they happen to do.
//
//go:embed openapi.json
var openapiDoc []byte

// openapi serves GET /v1/openapi.json.
func (h *Handler) openapi(w http.ResponseWriter, r *http.Request) {
	h.writeBody(w, http.StatusOK, openapiDoc)
}
