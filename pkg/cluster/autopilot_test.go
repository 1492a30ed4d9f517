package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/kahuna-go/kahuna/pkg/membership"
	"github.com/kahuna-go/kahuna/pkg/partition"
)

func config(voters []string, nonVoters ...string) partition.Configuration {
	var c partition.Configuration
	for _, id := range voters {
		c.Servers = append(c.Servers, partition.Server{ID: id, Voter: true})
	}
	for _, id := range nonVoters {
		c.Servers = append(c.Servers, partition.Server{ID: id})
	}
	return c
}

func TestRemovalAllowed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      partition.Configuration
		remove string
		live   []string
		want   error
	}{
		{"healthy 3, remove one", config([]string{"a", "b", "c"}), "c", []string{"a", "b", "c"}, nil},
		{"3 with one dead, remove the dead one", config([]string{"a", "b", "c"}), "c", []string{"a", "b"}, nil},
		{"3 with one dead, remove a live one", config([]string{"a", "b", "c"}), "b", []string{"a", "b"}, ErrWouldLoseQuorum},
		{"4 with one dead, remove a live one", config([]string{"a", "b", "c", "d"}), "c", []string{"a", "b", "c"}, nil},
		{"5 with two dead, remove a live one", config([]string{"a", "b", "c", "d", "e"}), "a", []string{"a", "b", "c"}, ErrWouldLoseQuorum},
		{"the last voter", config([]string{"a"}), "a", []string{"a"}, ErrWouldLoseQuorum},
		{"a non-voter, quorum kept", config([]string{"a", "b", "c"}, "d"), "d", []string{"a", "b"}, nil},
		{"a non-voter, quorum already lost", config([]string{"a", "b", "c"}, "d"), "d", []string{"a"}, ErrWouldLoseQuorum},
		{"unknown", config([]string{"a", "b", "c"}), "z", []string{"a", "b", "c"}, ErrUnknownNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := map[string]bool{}
			for _, id := range tc.live {
				live[id] = true
			}
			err := RemovalAllowed(tc.c, tc.remove, func(id string) bool { return live[id] })
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("RemovalAllowed(%s) = %v, want %v", tc.remove, err, tc.want)
			}
		})
	}
}

// TestLivenessAsksEachNodeOnce: live means gossip alive and the probe
// answered; each node is probed once per Liveness.
func TestLivenessAsksEachNodeOnce(t *testing.T) {
	members := map[string]membership.Member{
		"up":      {ID: "up", State: membership.StateAlive},
		"suspect": {ID: "suspect", State: membership.StateSuspect},
		"hung":    {ID: "hung", State: membership.StateAlive},
		"failed":  {ID: "failed", State: membership.StateFailed},
	}
	probes := map[string]int{}
	l := NewLiveness(context.Background(), members, func(_ context.Context, m membership.Member) bool {
		probes[m.ID]++
		return m.ID != "hung"
	})
	for range 2 {
		for id, want := range map[string]bool{"up": true, "suspect": true, "hung": false, "failed": false, "unknown": false} {
			if got := l.Live(id); got != want {
				t.Errorf("Live(%s) = %v, want %v", id, got, want)
			}
		}
	}
	if probes["up"] != 1 || probes["hung"] != 1 || probes["failed"] != 0 {
		t.Errorf("probes %v: want one per node gossip calls alive, none for the failed", probes)
	}
}
