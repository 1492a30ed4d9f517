package cluster

import "testing"

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		leaders []string
		healthy []string
		want    Plan
		move    bool
	}{
		{"balanced", []string{"a", "b", "c"}, []string{"a", "b", "c"}, Plan{}, false},
		{"off by one is balanced", []string{"a", "a", "b", "c"}, []string{"a", "b", "c"}, Plan{}, false},
		{"restarted node gets one back", []string{"a", "a", "b"}, []string{"a", "b", "c"}, Plan{Partition: 0, From: "a", To: "c"}, true},
		{"everything on one node", []string{"b", "b", "b"}, []string{"a", "b", "c"}, Plan{Partition: 0, From: "b", To: "a"}, true},
		{"ties pick the lowest ids", []string{"b", "b", "c", "c"}, []string{"a", "b", "c", "d"}, Plan{Partition: 0, From: "b", To: "a"}, true},
		{"election in progress", []string{"a", "", "a"}, []string{"a", "b"}, Plan{}, false},
		{"dead leader's partitions do not count", []string{"x", "a", "a"}, []string{"a", "b"}, Plan{Partition: 1, From: "a", To: "b"}, true},
		{"one healthy node", []string{"a", "a"}, []string{"a"}, Plan{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, move := plan(tc.leaders, tc.healthy)
			if move != tc.move || got != tc.want {
				t.Fatalf("plan = %+v, %v; want %+v, %v", got, move, tc.want, tc.move)
			}
		})
	}
}
