package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// ListOptions select the locks List returns.
type ListOptions struct {
	// Prefix keeps locks whose resource starts with it.
	Prefix     string
	Durability Durability
	// PageSize is how many locks one request fetches (1–1000, default 100).
	PageSize int
}

// Page is one page of a listing.
type Page struct {
	Locks []Info
	// Next continues the listing; empty on the last page.
	Next string
}

// ListPage fetches one page of live locks in resource order, starting after
// cursor (empty: from the start).
func (c *Client) ListPage(ctx context.Context, opts ListOptions, cursor string) (Page, error) {
	q := url.Values{}
	if opts.Prefix != "" {
		q.Set("prefix", opts.Prefix)
	}
	if opts.PageSize > 0 {
		q.Set("limit", strconv.Itoa(opts.PageSize))
	}
	q.Set("durability", strconv.Itoa(opts.Durability.wire()))
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	path := wire.PathList + "?" + q.Encode()
	var out wire.ListResponse
	err := c.withRetries(ctx, -1, func(ctx context.Context, endpoint int) (bool, error) {
		return c.getJSON(ctx, c.endpoints[endpoint]+path, &out)
	})
	if err != nil {
		return Page{}, err
	}
	if out.Type != wire.Got {
		return Page{}, replyError("", &wire.LockResponse{Type: out.Type, Error: out.Error, ServedFrom: out.ServedFrom})
	}
	page := Page{Next: out.NextCursor, Locks: make([]Info, 0, len(out.Locks))}
	for _, l := range out.Locks {
		in := Info{
			Resource:   l.Resource,
			Owner:      l.Owner,
			Token:      l.FencingToken,
			Durability: durabilityOf(l.Durability),
			ExpiresIn:  time.Duration(l.ExpiresInMs) * time.Millisecond,
			ServedFrom: out.ServedFrom,
		}
		in.AcquiredAt, _ = time.Parse(time.RFC3339Nano, l.AcquiredAt)
		in.ExpiresAt, _ = time.Parse(time.RFC3339Nano, l.ExpiresAt)
		page.Locks = append(page.Locks, in)
	}
	return page, nil
}

// List walks every live lock that matches opts, page by page:
//
//	for info, err := range c.List(ctx, client.ListOptions{Prefix: "jobs/"}) {
//		if err != nil { … }
//		fmt.Println(info.Resource, info.Owner)
//	}
//
// A listing is not a snapshot: locks taken or released while it runs may or
// may not appear.
func (c *Client) List(ctx context.Context, opts ListOptions) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		cursor := ""
		for {
			page, err := c.ListPage(ctx, opts, cursor)
			if err != nil {
				yield(Info{}, err)
				return
			}
			for _, in := range page.Locks {
				if !yield(in, nil) {
					return
				}
			}
			if page.Next == "" {
				return
			}
			cursor = page.Next
		}
	}
}

// Status is the cluster as the answering node sees it.
type Status = wire.ClusterStatus

// ClusterStatus fetches GET /v1/cluster/status from the first node that
// answers.
func (c *Client) ClusterStatus(ctx context.Context) (*Status, error) {
	var st Status
	err := c.withRetries(ctx, -1, func(ctx context.Context, endpoint int) (bool, error) {
		return c.getJSON(ctx, c.endpoints[endpoint]+wire.PathClusterStatus, &st)
	})
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// Health is a node's answer to GET /readyz: Status "ready" or "not
// ready", and why not.
type Health = wire.Health

// Readiness asks GET /readyz, once, of the node that answered last (after
// ClusterStatus: the node whose view it was). A node that is not ready
// answers too: that is not an error.
func (c *Client) Readiness(ctx context.Context) (*Health, error) {
	var h Health
	endpoint := c.endpoints[int(c.current.Load())%len(c.endpoints)]
	if _, err := c.getJSON(ctx, endpoint+wire.PathReadyz, &h); err != nil {
		return nil, err
	}
	if h.Status == "" {
		return nil, fmt.Errorf("kahuna: %s%s answered without a status", endpoint, wire.PathReadyz)
	}
	return &h, nil
}

// statusFrom reads the cluster status from one endpoint, once.
func (c *Client) statusFrom(ctx context.Context, endpoint int) (*wire.ClusterStatus, error) {
	var st Status
	if _, err := c.getJSON(ctx, c.endpoints[endpoint]+wire.PathClusterStatus, &st); err != nil {
		return nil, err // a must-retry answer comes as an error too
	}
	return &st, nil
}

// withRetries runs get against each endpoint in turn until one answers,
// retrying rounds with backoff until ctx ends. get reports whether the
// answer is final. The first round starts at endpoint first when it is not
// negative, else at the endpoint that answered last.
func (c *Client) withRetries(ctx context.Context, first int, get func(ctx context.Context, endpoint int) (bool, error)) error {
	backoff := c.cfg.MinBackoff
	var last error
	for {
		start := int(c.current.Load()) % len(c.endpoints)
		if first >= 0 {
			start, first = first, -1
		}
		for i := range c.endpoints {
			idx := (start + i) % len(c.endpoints)
			final, err := get(ctx, idx)
			if err == nil && final {
				c.current.Store(uint32(idx))
				return nil
			}
			if isAuthError(err) {
				return err // every node checks the same tokens
			}
			if err != nil {
				last = err
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %w (last: %v)", ErrUnavailable, ctx.Err(), last)
			}
		}
		if err := sleepCtx(ctx, time.Duration(float64(backoff)*(0.5+0.5*c.cfg.Jitter()))); err != nil {
			return fmt.Errorf("%w: %w (last: %v)", ErrUnavailable, err, last)
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// getJSON GETs url into out. A "must retry" answer is not final.
func (c *Client) getJSON(ctx context.Context, url string, out any) (bool, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return false, err
	}
	if err := authError(resp, raw); err != nil {
		return false, err
	}
	var head struct {
		Type wire.Type `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return false, fmt.Errorf("kahuna: %s answered HTTP %d with an unreadable body: %q", req.URL.Host, resp.StatusCode, truncate(raw, 200))
	}
	if head.Type == wire.MustRetry {
		return false, fmt.Errorf("%s answered must-retry", req.URL.Host)
	}
	return true, json.Unmarshal(raw, out)
}

// Membership errors of RemoveNode. Check them with errors.Is.
var (
	// ErrUnknownNode: no partition has the node in its configuration.
	ErrUnknownNode = errors.New("kahuna: unknown node")
	// ErrWouldLoseQuorum: removing the node would leave a partition
	// without a quorum of live voters; nothing was changed.
	ErrWouldLoseQuorum = errors.New("kahuna: removal would leave a partition without a quorum")
)

// RefusedError is a membership request the server refused: errors.Is
// finds Err (ErrUnknownNode, ErrWouldLoseQuorum, ErrInvalidInput), and
// Reason is the server's own explanation.
type RefusedError struct {
	Err    error
	Reason string
	// Node is the server that refused.
	Node string
}

func (e *RefusedError) Error() string { return e.Err.Error() + ": " + e.Reason }
func (e *RefusedError) Unwrap() error { return e.Err }

// RemoveNode removes a node from the cluster (POST /v1/cluster/remove-node):
// its leaderships move first, then it leaves every partition's
// configuration. It asks the endpoints in turn until one answers; an answer
// is final, since a second removal of the same node would find it unknown.
func (c *Client) RemoveNode(ctx context.Context, id string) error {
	body, err := json.Marshal(wire.RemoveNodeRequest{Node: id})
	if err != nil {
		return err
	}
	var last error
	for i := range c.endpoints {
		idx := (int(c.current.Load()) + i) % len(c.endpoints)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoints[idx]+wire.PathRemoveNode, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		c.authorize(req)
		resp, err := c.http.Do(req)
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			last = err
			continue
		}
		if err := authError(resp, raw); err != nil {
			return err
		}
		var out wire.RemoveNodeResponse
		if err := json.Unmarshal(raw, &out); err != nil {
			return fmt.Errorf("kahuna: %s answered HTTP %d with an unreadable body: %q", req.URL.Host, resp.StatusCode, truncate(raw, 200))
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return nil
		case http.StatusNotFound:
			return &RefusedError{Err: ErrUnknownNode, Reason: out.Error, Node: out.ServedFrom}
		case http.StatusConflict:
			return &RefusedError{Err: ErrWouldLoseQuorum, Reason: out.Error, Node: out.ServedFrom}
		case http.StatusBadRequest:
			return &RefusedError{Err: ErrInvalidInput, Reason: out.Error, Node: out.ServedFrom}
		default:
			return &ServerError{Type: resp.StatusCode, Message: out.Error, Node: out.ServedFrom}
		}
	}
	return fmt.Errorf("%w: no node answered the removal of %q (last: %v)", ErrUnavailable, id, last)
}
