package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// The lock operations, shared by the one-shot flags and the shell. Each
// talks to the server through the client and turns the answer into an
// outcome.

// target is one lock: a resource in one namespace.
type target struct {
	resource   string
	durability client.Durability
}

// acquire takes the lock: at once (TryLock), or waiting up to wait for the
// holder (Lock with WithWait) when wait > 0.
func acquire(ctx context.Context, c *client.Client, t target, owner string, lease, wait time.Duration) (*client.Lock, error) {
	opts := []client.Option{client.WithOwner(owner), client.WithLease(lease), client.WithDurability(t.durability)}
	if wait > 0 {
		return c.Lock(ctx, t.resource, append(opts, client.WithWait(wait))...)
	}
	return c.TryLock(ctx, t.resource, opts...)
}

// doLock takes a lock and reports it; the lock is nil unless acquired.
func doLock(ctx context.Context, c *client.Client, t target, owner string, lease, wait time.Duration) (report, *client.Lock) {
	l, err := acquire(ctx, c, t, owner, lease, wait)
	if err != nil {
		return lockFailure(t, err), nil
	}
	return acquiredReport(l), l
}

// lockFailure reports a lock that was not acquired.
func lockFailure(t target, err error) report {
	var busy *client.BusyError
	if errors.As(err, &busy) {
		return busyReport(t, busy.Holder)
	}
	return errorReport(t, err)
}

func doExtend(ctx context.Context, c *client.Client, t target, owner string, lease time.Duration) report {
	token, err := c.Extend(ctx, t.resource, owner, lease, t.durability)
	if err != nil {
		return negativeOrError(t, notExtended, err)
	}
	return extendedReport(t, owner, token)
}

func doUnlock(ctx context.Context, c *client.Client, t target, owner string) report {
	if err := c.Unlock(ctx, t.resource, owner, t.durability); err != nil {
		return negativeOrError(t, notUnlocked, err)
	}
	return unlockedReport(t, owner)
}

func doGet(ctx context.Context, c *client.Client, t target) report {
	info, err := c.GetInfo(ctx, t.resource, t.durability)
	if err != nil {
		return negativeOrError(t, "", err)
	}
	return infoReport(t, info)
}

func doForceUnlock(ctx context.Context, c *client.Client, t target) report {
	if err := c.ForceUnlock(ctx, t.resource, t.durability); err != nil {
		return negativeOrError(t, "", err)
	}
	return unlockedReport(t, "")
}

// negativeOrError reports not-found and not-owner answers as negative
// outcomes, anything else as an error.
func negativeOrError(t target, prefix string, err error) report {
	switch {
	case errors.Is(err, client.ErrNotFound):
		return negativeReport(t, prefix, false)
	case errors.Is(err, client.ErrNotOwner):
		return negativeReport(t, prefix, true)
	}
	return errorReport(t, err)
}

// doList lists every live lock of a namespace whose resource starts with
// prefix.
func doList(ctx context.Context, c *client.Client, prefix string, d client.Durability) outcome {
	r := listReport{Result: resultListed, Durability: d.String(), Prefix: prefix, Locks: []listEntry{}}
	for in, err := range c.List(ctx, client.ListOptions{Prefix: prefix, Durability: d, PageSize: 1000}) {
		if err != nil {
			return errorReport(target{durability: d}, err)
		}
		r.Locks = append(r.Locks, listEntry{
			Resource:     in.Resource,
			Owner:        in.Owner,
			FencingToken: in.Token,
			ExpiresInMs:  in.ExpiresIn.Milliseconds(),
			AcquiredAt:   stamp(in.AcquiredAt),
			ExpiresAt:    stamp(in.ExpiresAt),
		})
	}
	return r
}

// doCluster fetches the cluster status; the shell's cluster and --cluster
// both print it through clusterReport.
func doCluster(ctx context.Context, c *client.Client) outcome {
	st, err := c.ClusterStatus(ctx)
	if err != nil {
		return noLock(errorReport(target{}, err))
	}
	// The dashboard shows whether its node can serve; so does this. A
	// node that stops answering in between leaves the line out.
	h, err := c.Readiness(ctx)
	if err != nil || h.ServedFrom != st.ServedFrom {
		h = nil
	}
	return newClusterReport(st, h)
}

// noLock drops the durability from a report about no lock (a cluster
// command that failed or was interrupted).
func noLock(r report) report {
	r.Durability = ""
	return r
}

// doRemoveNode removes a node from the cluster. A refusal (unknown node,
// lost quorum, input the server rejects) is a negative outcome, like a busy
// lock: the cluster answered and nothing changed.
func doRemoveNode(ctx context.Context, c *client.Client, id string) outcome {
	err := c.RemoveNode(ctx, id)
	switch {
	case err == nil:
		return removedReport(id)
	case errors.Is(err, client.ErrUnknownNode):
		return notRemovedReport(id, resultUnknownNode, "unknown node "+id)
	case errors.Is(err, client.ErrWouldLoseQuorum):
		return notRemovedReport(id, resultWouldLoseQuorum, serverReason(err, client.ErrWouldLoseQuorum))
	case errors.Is(err, client.ErrInvalidInput):
		return notRemovedReport(id, resultInvalid, serverReason(err, client.ErrInvalidInput))
	}
	return removeErrorReport(id, err)
}

// serverReason is the server's own words in err, which the client wraps as
// "<sentinel>: <message>"; the sentinel's text (less "kahuna: ") when the
// server gave none.
func serverReason(err, sentinel error) string {
	var refused *client.RefusedError
	if errors.As(err, &refused) && strings.TrimSpace(refused.Reason) != "" {
		return refused.Reason
	}
	return strings.TrimPrefix(sentinel.Error(), "kahuna: ")
}
