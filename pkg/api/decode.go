package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// inputError is a request the server understood but refuses. status is the
// HTTP status: 200 for well-formed JSON with bad fields (type 100), 400 for
// a body that is not JSON, 413 for one that is too large.
type inputError struct {
	status int
	msg    string
}

func (e *inputError) Error() string { return e.msg }

func badField(format string, args ...any) *inputError {
	return &inputError{status: http.StatusOK, msg: fmt.Sprintf(format, args...)}
}

func tooLarge() *inputError {
	return &inputError{status: http.StatusRequestEntityTooLarge, msg: "request body is larger than 1 MiB"}
}

// readLockRequest reads and parses a lock request body into v.
func (h *Handler) readLockRequest(w http.ResponseWriter, r *http.Request, v *wire.LockRequest) *inputError {
	if r.ContentLength > wire.MaxBodyBytes {
		w.Header().Set("Connection", "close")
		return tooLarge()
	}
	// net/http ends a body at its Content-Length; only a body of unknown
	// length (chunked) needs a limit of its own.
	var src io.Reader = r.Body
	if r.ContentLength < 0 {
		src = http.MaxBytesReader(w, r.Body, wire.MaxBodyBytes)
	}
	bp := h.getBuf()
	defer h.putBuf(bp)
	rc := http.NewResponseController(w)
	// Errors only mean the connection cannot take deadlines (tests).
	_ = rc.SetReadDeadline(time.Now().Add(h.bodyTimeout))
	body, err := readAll(*bp, src)
	*bp = body
	if err == nil {
		// Lift the deadline before the handler waits: the server's
		// background read of the connection would otherwise time out and
		// cancel a request that waits for a lock longer than the body
		// timeout. After a failed read it stays, so that net/http's attempt
		// to drain the rest of the body gives up at once.
		_ = rc.SetReadDeadline(time.Time{})
	} else {
		w.Header().Set("Connection", "close")
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge()
		}
		return &inputError{status: http.StatusBadRequest, msg: "reading request body: " + err.Error()}
	}
	if len(body) == 0 {
		return &inputError{status: http.StatusBadRequest, msg: "request body is empty; send a JSON object"}
	}
	// encoding/json would quietly replace invalid UTF-8; a resource name
	// must arrive exactly as sent or not at all.
	if !utf8.Valid(body) {
		return &inputError{status: http.StatusBadRequest, msg: "request body is not valid UTF-8"}
	}
	if err := wire.DecodeLockRequest(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field == "" {
				return badField("request body must be a JSON object")
			}
			return badField("%s must be %s", typeErr.Field, describe(typeErr.Type.Kind().String()))
		}
		return &inputError{status: http.StatusBadRequest, msg: "request body is not valid JSON: " + err.Error()}
	}
	return nil
}

// readAll is io.ReadAll into a caller's buffer.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func describe(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64":
		return "an integer"
	default:
		return "a " + kind
	}
}

// fields says which fields an operation takes.
type fields struct {
	owner, expires, wait bool
}

func fieldsOf(op router.Op) fields {
	switch op {
	case router.TryLock:
		return fields{owner: true, expires: true, wait: true}
	case router.Extend:
		return fields{owner: true, expires: true}
	case router.Unlock:
		return fields{owner: true}
	default: // get-info and force-unlock name only the resource
		return fields{}
	}
}

// toRequest validates a decoded body against the contract's limits.
func toRequest(op router.Op, in *wire.LockRequest) (router.Request, *inputError) {
	f := fieldsOf(op)
	req := router.Request{Op: op, Durability: partition.Persistent}
	if in.Resource == nil || *in.Resource == "" {
		return req, badField("resource is required")
	}
	if len(*in.Resource) > wire.MaxResourceBytes {
		return req, badField("resource is %d bytes; the limit is %d", len(*in.Resource), wire.MaxResourceBytes)
	}
	req.Resource = *in.Resource
	if f.owner {
		if in.Owner == nil || *in.Owner == "" {
			return req, badField("owner is required")
		}
		if len(*in.Owner) > wire.MaxOwnerBytes {
			return req, badField("owner is %d bytes; the limit is %d", len(*in.Owner), wire.MaxOwnerBytes)
		}
		req.Owner = *in.Owner
	}
	if f.expires {
		if in.ExpiresMs == nil {
			return req, badField("expiresMs is required")
		}
		if v := *in.ExpiresMs; v < wire.MinExpiresMs || v > wire.MaxExpiresMs {
			return req, badField("expiresMs must be between %d and %d, got %d", wire.MinExpiresMs, wire.MaxExpiresMs, v)
		}
		req.TTL = time.Duration(*in.ExpiresMs) * time.Millisecond
	}
	if f.wait && in.WaitMs != nil {
		if v := *in.WaitMs; v < 0 || v > wire.MaxWaitMs {
			return req, badField("waitMs must be between 0 and %d, got %d", wire.MaxWaitMs, v)
		}
		req.Wait = time.Duration(*in.WaitMs) * time.Millisecond
	}
	if in.Durability != nil {
		d, err := partition.ParseDurability(*in.Durability)
		if err != nil {
			return req, badField("durability must be 0 (ephemeral) or 1 (persistent), got %d", *in.Durability)
		}
		req.Durability = d
	}
	return req, nil
}
