package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// lease is the lock lease every system is asked for.
const lease = 10 * time.Second

// kahunaLocker uses Kahuna's Go client. With leader routing (its default)
// it sends each lock request straight to its partition's leader; without,
// it talks to one node, which forwards, as a plain REST client does.
type kahunaLocker struct {
	c          *client.Client
	durability client.Durability
}

func newKahunaLocker(endpoints []string, d client.Durability, leaderRouting bool) (*kahunaLocker, error) {
	c, err := client.New(client.Config{Endpoints: endpoints, NoLeaderRouting: !leaderRouting})
	if err != nil {
		return nil, err
	}
	return &kahunaLocker{c: c, durability: d}, nil
}

func (k *kahunaLocker) TryLock(ctx context.Context, key, owner string) (bool, error) {
	_, err := k.c.TryLock(ctx, key, client.WithOwner(owner), client.WithLease(lease), client.WithDurability(k.durability))
	if errors.Is(err, client.ErrBusy) {
		return false, nil
	}
	return err == nil, err
}

func (k *kahunaLocker) Unlock(ctx context.Context, key, owner string) error {
	return k.c.Unlock(ctx, key, owner, k.durability)
}

func (k *kahunaLocker) Close() { k.c.Close() }

// etcdLocker is what users of etcd's lock recipes get: a lease per client
// session, kept alive, and per lock one transaction that creates the key
// under the lease if it does not exist, and one that deletes it if it is
// still the owner's.
type etcdLocker struct {
	c *clientv3.Client
	// alive scopes the leases' keep-alives.
	alive  context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	leases map[string]clientv3.LeaseID // per owner (worker), granted on first use
}

func newEtcdLocker(endpoints []string) (*etcdLocker, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	alive, cancel := context.WithCancel(context.Background())
	return &etcdLocker{c: c, alive: alive, cancel: cancel, leases: map[string]clientv3.LeaseID{}}, nil
}

// Prepare opens every owner's session before the measured run: a session
// is a one-off cost, as concurrency.NewSession pays it once per process.
func (e *etcdLocker) Prepare(ctx context.Context, owners []string) error {
	for _, o := range owners {
		if _, err := e.session(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// session returns owner's lease, granting it and starting its keep-alive
// the first time.
func (e *etcdLocker) session(ctx context.Context, owner string) (clientv3.LeaseID, error) {
	e.mu.Lock()
	id, ok := e.leases[owner]
	e.mu.Unlock()
	if ok {
		return id, nil
	}
	g, err := e.c.Grant(ctx, int64(lease/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant a lease: %w", err)
	}
	alive, err := e.c.KeepAlive(e.alive, g.ID)
	if err != nil {
		return 0, fmt.Errorf("keep the lease alive: %w", err)
	}
	go func() {
		for range alive {
		}
	}()
	e.mu.Lock()
	e.leases[owner] = g.ID
	e.mu.Unlock()
	return g.ID, nil
}

func (e *etcdLocker) TryLock(ctx context.Context, key, owner string) (bool, error) {
	id, err := e.session(ctx, owner)
	if err != nil {
		return false, err
	}
	resp, err := e.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, owner, clientv3.WithLease(id))).
		Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

func (e *etcdLocker) Unlock(ctx context.Context, key, owner string) error {
	resp, err := e.c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", owner)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("unlock %s: not held by %s", key, owner)
	}
	return nil
}

func (e *etcdLocker) Close() {
	e.cancel()
	e.c.Close()
}

// redisLocker is the single-instance Redis lock: SET NX PX to take it, a
// compare-and-delete script to release it.
type redisLocker struct {
	c *redis.Client
}

var redisUnlock = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)

func newRedisLocker(addr string, workers int) *redisLocker {
	return &redisLocker{c: redis.NewClient(&redis.Options{Addr: addr, PoolSize: workers, DisableIdentity: true})}
}

func (r *redisLocker) TryLock(ctx context.Context, key, owner string) (bool, error) {
	return r.c.SetNX(ctx, key, owner, lease).Result()
}

func (r *redisLocker) Unlock(ctx context.Context, key, owner string) error {
	n, err := redisUnlock.Run(ctx, r.c, []string{key}, owner).Int()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("unlock %s: not held by %s", key, owner)
	}
	return nil
}

func (r *redisLocker) Close() { r.c.Close() }
