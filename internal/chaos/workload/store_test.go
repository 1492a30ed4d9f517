package workload

import (
	"errors"
	"testing"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

func TestFencedStore(t *testing.T) {
	s := NewFencedStore()
	k := chaos.LockKey{Resource: "r", Durability: chaos.Persistent}
	other := chaos.LockKey{Resource: "r", Durability: chaos.Ephemeral}
	steps := []struct {
		key   chaos.LockKey
		owner string
		token int64
		stale bool
	}{
		{k, "a", 5, false},
		{k, "a", 5, false},     // the holder writes again
		{k, "b", 7, false},     // a newer grant
		{k, "a", 5, true},      // the old holder, too late
		{other, "c", 1, false}, // another namespace, its own tokens
		{k, "c", 7, true},      // token 7 is b's: reuse
	}
	for i, st := range steps {
		err := s.Write(st.key, st.owner, st.token)
		if got := errors.Is(err, ErrStaleToken); got != st.stale {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	got := s.Stats()
	if got.Accepted != 4 || got.Stale != 1 || len(got.Violations) != 1 {
		t.Fatalf("stats %+v", got)
	}
}
