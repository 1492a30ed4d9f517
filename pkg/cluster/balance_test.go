package cluster

import (
	"fmt"
	"slices"
	"testing"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		leaders []string
		healthy []string
		want    []Move
	}{
		{"balanced", []string{"a", "b", "c"}, []string{"a", "b", "c"}, nil},
		{"off by one is balanced", []string{"a", "a", "b", "c"}, []string{"a", "b", "c"}, nil},
		{"restarted node gets one back", []string{"a", "a", "b"}, []string{"a", "b", "c"}, []Move{{0, "a", "c"}}},
		{"everything on one node moves in one plan", []string{"b", "b", "b"}, []string{"a", "b", "c"},
			[]Move{{0, "b", "a"}, {1, "b", "c"}}},
		{"ties pick the lowest ids", []string{"b", "b", "c", "c"}, []string{"a", "b", "c", "d"},
			[]Move{{0, "b", "a"}, {2, "c", "d"}}},
		{"election in progress", []string{"a", "", "a"}, []string{"a", "b"}, nil},
		{"dead leader's partitions do not count", []string{"x", "a", "a"}, []string{"a", "b"}, []Move{{1, "a", "b"}}},
		{"one healthy node", []string{"a", "a"}, []string{"a"}, nil},
		{"a new node among many partitions", []string{"a", "b", "c", "a", "b", "c", "a", "b", "c"}, []string{"a", "b", "c", "d", "e"},
			[]Move{{0, "a", "d"}, {1, "b", "e"}, {2, "c", "d"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := plan(tc.leaders, tc.healthy); !slices.Equal(got, tc.want) {
				t.Fatalf("plan = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestPlanBalancesInOneRound checks every leader layout of up to 5 nodes
// and 7 partitions: applying the plan leaves max − min ≤ 1, moves each
// partition at most once, and the balanced result needs no further move.
func TestPlanBalancesInOneRound(t *testing.T) {
	for nodes := 2; nodes <= 5; nodes++ {
		healthy := []string{"a", "b", "c", "d", "e"}[:nodes]
		for parts := 1; parts <= 7; parts++ {
			layouts := 1
			for range parts {
				layouts *= nodes
			}
			for k := range layouts {
				leaders := make([]string, parts)
				for p, x := 0, k; p < parts; p, x = p+1, x/nodes {
					leaders[p] = healthy[x%nodes]
				}
				name := fmt.Sprint(leaders, healthy)
				moves := plan(leaders, healthy)
				after := slices.Clone(leaders)
				seen := map[int]bool{}
				for _, mv := range moves {
					if seen[mv.Partition] || after[mv.Partition] != mv.From || mv.From == mv.To {
						t.Fatalf("%s: bad move %+v in %+v", name, mv, moves)
					}
					seen[mv.Partition] = true
					after[mv.Partition] = mv.To
				}
				if again := plan(after, healthy); again != nil {
					t.Fatalf("%s: after %+v the plan still moves %+v", name, moves, again)
				}
				count := map[string]int{}
				for _, l := range after {
					count[l]++
				}
				lo, hi := parts, 0
				for _, id := range healthy {
					lo, hi = min(lo, count[id]), max(hi, count[id])
				}
				if hi-lo > 1 {
					t.Fatalf("%s: after %+v leaders are %v", name, moves, after)
				}
			}
		}
	}
}
