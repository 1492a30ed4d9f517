package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// Guard a database migration so that only one deployment runs it, even when
// several start at once. The others wait for it, then find nothing to do.
func Example_migration() {
	c, err := client.New(client.Config{Endpoints: client.EndpointsFromEnv()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lock, err := c.Lock(ctx, "db-migration",
		client.WithOwner("deploy-7f3a"),  // who we are, for operators
		client.WithLease(15*time.Minute), // longer than a migration takes
		client.WithWait(10*time.Minute))  // wait behind another deployment
	if errors.Is(err, client.ErrBusy) {
		fmt.Println("another deployment is still migrating")
		return
	}
	if err != nil {
		fmt.Println("cannot reach the lock service:", err)
		return
	}
	defer lock.Unlock(context.Background())

	// … run the migration, passing lock.Token() to the database …
	fmt.Println("migrating as", lock.Owner())
	// Output: migrating as deploy-7f3a
}

// Elect a leader among replicas: whoever holds the lock leads, the keep-alive
// holds it while the process lives, and Done tells the leader the moment it
// must stop leading (it lost the lock, for example to a long pause).
func Example_leaderElection() {
	c, err := client.New(client.Config{Endpoints: client.EndpointsFromEnv()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	campaign := func(ctx context.Context, name string) (*client.Lock, error) {
		return c.Lock(ctx, "scheduler/leader", client.WithOwner(name), client.WithLease(3*time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	leader, err := campaign(ctx, "replica-a")
	if err != nil {
		fmt.Println(err)
		return
	}
	leader.KeepAlive()
	fmt.Println(leader.Owner(), "leads")

	// replica-b waits its turn in the background.
	next := make(chan *client.Lock, 1)
	go func() {
		l, err := campaign(ctx, "replica-b")
		if err == nil {
			l.KeepAlive()
		}
		next <- l
	}()

	// Leading: do the work until told to stop or the lock is lost.
	select {
	case <-leader.Done():
		fmt.Println("lost leadership:", leader.Err())
	case <-time.After(4 * time.Second): // longer than the lease: the keep-alive holds it
		fmt.Println(leader.Owner(), "still leads after a full lease")
	}
	leader.Unlock(context.Background()) // step down

	if b := <-next; b != nil {
		fmt.Println(b.Owner(), "leads, with a larger fencing token:", b.Token() > leader.Token())
		b.Unlock(context.Background())
	}
	// Output:
	// replica-a leads
	// replica-a still leads after a full lease
	// replica-b leads, with a larger fencing token: true
}

// fencedStore is a storage system that protects itself with fencing tokens:
// it refuses a write whose token is older than the newest it has accepted.
type fencedStore struct {
	mu      sync.Mutex
	highest int64
	value   string
}

var errStaleToken = errors.New("stale fencing token")

func (s *fencedStore) Write(token int64, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.highest {
		return errStaleToken
	}
	s.highest, s.value = token, value
	return nil
}

// Pass the fencing token to the store. A holder that stalls past its lease
// (a GC pause, a frozen VM) wakes up believing it still holds the lock; the
// lock service cannot stop it, but the token lets the store refuse its late
// write.
func Example_fencingToken() {
	c, err := client.New(client.Config{Endpoints: client.EndpointsFromEnv()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := &fencedStore{}

	// A takes the lock with a short lease and then stalls.
	a, err := c.TryLock(ctx, "invoice-42", client.WithOwner("worker-a"), client.WithLease(200*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	time.Sleep(300 * time.Millisecond) // A's lease runs out while it stalls

	// B gets the lock and writes.
	b, err := c.TryLock(ctx, "invoice-42", client.WithOwner("worker-b"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Unlock(context.Background())
	fmt.Println("B writes:", store.Write(b.Token(), "paid by B"))

	// A wakes up and writes with its old token: refused.
	fmt.Println("A writes:", store.Write(a.Token(), "paid by A"))
	fmt.Println("stored:", store.value)
	// Output:
	// B writes: <nil>
	// A writes: stale fencing token
	// stored: paid by B
}
