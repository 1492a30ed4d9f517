package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Lock is a held lock. Its fencing token is what makes holding it safe:
// pass Token to every system you change under the lock and have them refuse
// tokens older than the newest they have seen, so a holder that stalled past
// its lease cannot overwrite the work of the next one.
//
// A Lock is safe for concurrent use.
type Lock struct {
	c          *Client
	resource   string
	owner      string
	durability Durability
	token      int64

	mu sync.Mutex
	// lease is the lease length of the last grant or extension; expires
	// is when the lease ends at the latest, measured from when that
	// request was sent, so the client's view is never later than the
	// server's.
	lease   time.Duration
	expires time.Time
	done    chan struct{}
	err     error
	ended   bool
	// stop ends the keep-alive, if one runs; stopped is closed when it
	// has.
	stop    context.CancelFunc
	stopped chan struct{}
}

func newLock(c *Client, resource string, o options, token int64, sent time.Time) *Lock {
	return &Lock{
		c:          c,
		resource:   resource,
		owner:      o.owner,
		durability: o.durability,
		token:      token,
		lease:      o.lease,
		expires:    sent.Add(o.lease),
		done:       make(chan struct{}),
	}
}

// Resource is the lock's name.
func (l *Lock) Resource() string { return l.resource }

// Owner is the owner ID the lock is held under.
func (l *Lock) Owner() string { return l.owner }

// Token is the fencing token of this grant: larger than that of every
// earlier grant of the same resource and durability.
func (l *Lock) Token() int64 { return l.token }

// Durability is the lock's namespace.
func (l *Lock) Durability() Durability { return l.durability }

// ExpiresAt is when the lease ends unless extended, as the client measures
// it: from the moment the request that set it was sent, so never later
// than the server's own expiry.
func (l *Lock) ExpiresAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expires
}

// Done is closed when the lock is lost (see Err) or released with Unlock.
// Watch it while working under a kept-alive lock, like etcd's
// Session.Done().
func (l *Lock) Done() <-chan struct{} { return l.done }

// Err is nil while the lock is held and after Unlock; after a loss it is an
// error matching ErrLost that says why.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// end closes Done once, recording why.
func (l *Lock) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.ended = true
	l.err = err
	close(l.done)
}

// Extend moves the lease to lease from now (0: the lease the lock was taken
// with). If the server no longer has the lock, the lock counts as lost and
// the error matches both ErrLost and the server's answer.
func (l *Lock) Extend(ctx context.Context, lease time.Duration) error {
	l.mu.Lock()
	if lease == 0 {
		lease = l.lease
	}
	l.mu.Unlock()
	sent := time.Now()
	_, err := l.c.Extend(ctx, l.resource, l.owner, lease, l.durability)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotOwner) {
			err = fmt.Errorf("%w: %w", ErrLost, err)
			l.end(err)
		}
		return err
	}
	l.mu.Lock()
	l.lease = lease
	l.expires = sent.Add(lease)
	l.mu.Unlock()
	return nil
}

// Unlock releases the lock and stops its keep-alive. A lock the server no
// longer has (it expired, or an earlier attempt whose answer was lost
// already released it) counts as released. If someone else holds it now,
// the error matches ErrNotOwner.
func (l *Lock) Unlock(ctx context.Context) error {
	l.stopKeepAlive()
	err := l.c.unlock(ctx, l.resource, l.owner, l.durability)
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	if err == nil || errors.Is(err, ErrNotOwner) {
		l.end(l.Err())
	}
	return err
}

// KeepAlive starts extending the lock in the background, at about a third
// of its lease. Through a leader election it keeps retrying until the lease
// would run out; if that happens, or the server no longer has the lock,
// Done is closed and Err says why. Unlock stops it. Calling KeepAlive again
// does nothing. It returns l, for chaining.
func (l *Lock) KeepAlive() *Lock {
	l.mu.Lock()
	if l.stop != nil || l.ended {
		l.mu.Unlock()
		return l
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	l.stopped = make(chan struct{})
	l.mu.Unlock()
	go l.keepAlive(ctx)
	return l
}

func (l *Lock) stopKeepAlive() {
	l.mu.Lock()
	stop, stopped := l.stop, l.stopped
	l.mu.Unlock()
	if stop != nil {
		stop()
		<-stopped
	}
}

func (l *Lock) keepAlive(ctx context.Context) {
	defer close(l.stopped)
	retrying := false
	for {
		l.mu.Lock()
		interval, expires := l.lease/3, l.expires
		l.mu.Unlock()
		if retrying {
			// The last extension failed with time to spare: try again
			// soon, not a third of a lease later.
			interval = l.c.cfg.MinBackoff
		}
		if err := sleepCtx(ctx, interval); err != nil {
			return
		}
		// Retry until the lease would run out; past that, another owner
		// may already hold the lock.
		actx, cancel := context.WithDeadline(ctx, expires)
		err := l.Extend(actx, 0)
		cancel()
		retrying = err != nil
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return // Unlock stopped us
		case errors.Is(err, ErrLost):
			return // Extend recorded the loss
		case !time.Now().Before(expires):
			l.end(fmt.Errorf("%w: the lease ran out before it could be extended: %w", ErrLost, err))
			return
		}
	}
}
