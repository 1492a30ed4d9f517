package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/kahuna-go/kahuna/pkg/cluster"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// removeNode serves POST /v1/cluster/remove-node: 200 once the node is out
// of every partition's configuration; 404 for a node no partition has, 409
// for a removal that would leave a partition without a quorum of live
// voters (nothing changes), 400 for a bad body, 503 when the removal could
// not finish in time.
func (h *Handler) removeNode(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, removed, msg string) {
		h.writeJSON(w, status, wire.RemoveNodeResponse{Removed: removed, ServedFrom: h.backend.NodeID(), Error: msg})
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, wire.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			reply(http.StatusRequestEntityTooLarge, "", "request body is larger than 1 MiB")
			return
		}
		reply(http.StatusBadRequest, "", "reading request body: "+err.Error())
		return
	}
	var req wire.RemoveNodeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		reply(http.StatusBadRequest, "", "request body is not a JSON object: "+err.Error())
		return
	}
	if req.Node == "" {
		reply(http.StatusBadRequest, "", `"node" is missing or empty: name the node ID to remove`)
		return
	}
	h.logAdmin(r, "remove-node", "node", req.Node)
	err = h.cluster.RemoveNode(r.Context(), req.Node)
	switch {
	case err == nil:
		h.log.Info("node removed from the cluster", "node", req.Node)
		reply(http.StatusOK, req.Node, "")
	case errors.Is(err, cluster.ErrUnknownNode):
		reply(http.StatusNotFound, "", err.Error())
	case errors.Is(err, cluster.ErrWouldLoseQuorum):
		reply(http.StatusConflict, "", err.Error())
	default:
		h.log.Warn("node removal did not finish", "node", req.Node, "err", err)
		reply(http.StatusServiceUnavailable, "", err.Error())
	}
}
