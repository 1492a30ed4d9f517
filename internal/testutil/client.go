package testutil

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Reply types of the REST API (the contract's §2).
const (
	Locked           = 0
	Busy             = 1
	Extended         = 2
	Unlocked         = 3
	Got              = 4
	Errored          = 99
	InvalidInput     = 100
	MustRetry        = 101
	LockDoesNotExist = 102
	InvalidOwner     = 103
)

// Durabilities.
const (
	Ephemeral  = 0
	Persistent = 1
)

// LockRequest is the body of the lock endpoints. It is spelled out here
// rather than borrowed from pkg/wire so that these tests check the JSON a
// client really sends.
type LockRequest struct {
	Resource   string `json:"resource"`
	Owner      string `json:"owner,omitempty"`
	ExpiresMs  int64  `json:"expiresMs,omitempty"`
	Durability int    `json:"durability"`
	WaitMs     *int64 `json:"waitMs,omitempty"`
}

// Reply is a lock endpoint's answer.
type Reply struct {
	// HTTPStatus is the HTTP status code, not part of the JSON.
	HTTPStatus   int    `json:"-"`
	Type         int    `json:"type"`
	ServedFrom   string `json:"servedFrom"`
	Error        string `json:"error"`
	FencingToken *int64 `json:"fencingToken"`
	Owner        string `json:"owner"`
	Expires      *struct {
		L int64 `json:"l"`
	} `json:"expires"`
	AcquiredAt  string `json:"acquiredAt"`
	ExpiresAt   string `json:"expiresAt"`
	ExpiresInMs *int64 `json:"expiresInMs"`
}

// Token is the fencing token, or -1 when the reply has none.
func (r Reply) Token() int64 {
	if r.FencingToken == nil {
		return -1
	}
	return *r.FencingToken
}

// ExpiresL is expires.l (unix ms), or -1 when the reply has none.
func (r Reply) ExpiresL() int64 {
	if r.Expires == nil {
		return -1
	}
	return r.Expires.L
}

// String is a compact rendering for failure messages.
func (r Reply) String() string {
	s := fmt.Sprintf("{HTTP %d type %d", r.HTTPStatus, r.Type)
	if r.FencingToken != nil {
		s += fmt.Sprintf(" token %d", *r.FencingToken)
	}
	if r.Owner != "" {
		s += " owner " + r.Owner
	}
	if r.Expires != nil {
		s += fmt.Sprintf(" expires.l %d", r.Expires.L)
	}
	if r.Error != "" {
		s += fmt.Sprintf(" error %q", r.Error)
	}
	return s + " from " + r.ServedFrom + "}"
}

// ClusterStatus is the part of GET /v1/cluster/status the tests read.
type ClusterStatus struct {
	Type int `json:"type"`
	Node struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"httpAddr"`
		RaftAddr string `json:"raftAddr"`
	} `json:"node"`
	Nodes []struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"httpAddr"`
		State    string `json:"state"`
	} `json:"nodes"`
	Partitions []struct {
		ID           int      `json:"id"`
		Leader       string   `json:"leader"`
		State        string   `json:"state"`
		Term         uint64   `json:"term"`
		CommitIndex  uint64   `json:"commitIndex"`
		AppliedIndex uint64   `json:"appliedIndex"`
		Voters       []string `json:"voters"`
		NonVoters    []string `json:"nonVoters"`
	} `json:"partitions"`
}

// Client is a minimal JSON client of one kahunad.
type Client struct {
	// Base is the URL prefix, e.g. http://127.0.0.1:8082.
	Base string
	HTTP *http.Client
	// Token, if set, is sent as a bearer token with every request.
	Token string
}

// NewClient returns a client with its own connection pool, sized for a few
// dozen concurrent requests, and no overall timeout: bound requests with
// their context.
func NewClient(base string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &Client{Base: base, HTTP: &http.Client{Transport: tr}}
}

// NewTLSClient is NewClient for an https:// base whose certificate
// tlsCfg verifies, sending token (if not empty) with every request. The
// client's transport takes tlsCfg over: give each client its own.
func NewTLSClient(base string, tlsCfg *tls.Config, token string) *Client {
	c := NewClient(base)
	c.HTTP.Transport.(*http.Transport).TLSClientConfig = tlsCfg
	c.Token = token
	return c
}

// Close drops idle connections.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

// Post sends body as JSON to path and decodes the reply into out. An error
// means no HTTP reply arrived or it was not JSON.
func (c *Client) Post(ctx context.Context, path string, body, out any) (status int, err error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+path, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, out)
}

// Get fetches path and returns the status and the raw body.
func (c *Client) Get(ctx context.Context, path string) (status int, body []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// send sends req with the client's token.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return c.HTTP.Do(req)
}

func (c *Client) do(req *http.Request, out any) (int, error) {
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: HTTP %d, body is not JSON: %w: %q", req.Method, req.URL.Path, resp.StatusCode, err, b)
	}
	return resp.StatusCode, nil
}

func (c *Client) lockOp(ctx context.Context, path string, r LockRequest) (Reply, error) {
	var rep Reply
	status, err := c.Post(ctx, path, r, &rep)
	rep.HTTPStatus = status
	return rep, err
}

// TryLock is POST /v1/locks/try-lock.
func (c *Client) TryLock(ctx context.Context, r LockRequest) (Reply, error) {
	return c.lockOp(ctx, "/v1/locks/try-lock", r)
}

// TryExtend is POST /v1/locks/try-extend.
func (c *Client) TryExtend(ctx context.Context, r LockRequest) (Reply, error) {
	return c.lockOp(ctx, "/v1/locks/try-extend", r)
}

// TryUnlock is POST /v1/locks/try-unlock.
func (c *Client) TryUnlock(ctx context.Context, r LockRequest) (Reply, error) {
	return c.lockOp(ctx, "/v1/locks/try-unlock", r)
}

// GetInfo is POST /v1/locks/get-info.
func (c *Client) GetInfo(ctx context.Context, r LockRequest) (Reply, error) {
	return c.lockOp(ctx, "/v1/locks/get-info", r)
}

// ForceUnlock is POST /v1/locks/force-unlock.
func (c *Client) ForceUnlock(ctx context.Context, r LockRequest) (Reply, error) {
	return c.lockOp(ctx, "/v1/locks/force-unlock", r)
}

// Status is GET /v1/cluster/status.
func (c *Client) Status(ctx context.Context) (ClusterStatus, error) {
	var st ClusterStatus
	status, body, err := c.Get(ctx, "/v1/cluster/status")
	if err != nil {
		return st, err
	}
	if status != http.StatusOK {
		return st, fmt.Errorf("GET /v1/cluster/status: HTTP %d: %s", status, body)
	}
	return st, json.Unmarshal(body, &st)
}

// Ms is a convenience for LockRequest.WaitMs.
func Ms(d time.Duration) *int64 {
	ms := d.Milliseconds()
	return &ms
}
