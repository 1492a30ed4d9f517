package placement

import (
	"fmt"
	"hash/fnv"
	"testing"
)

// The mapping is a stable, documented format: these values must never change.
func TestKnownValues(t *testing.T) {
	cases := []struct {
		resource string
		n        int
		want     int
	}{
		{"", 8, 5},          // FNV-1a of nothing is 2166136261
		{"a", 8, 4},         // 0xe40c292c
		{"orders/42", 8, 7}, // 0xd7e52b5f
		{"anything", 1, 0},
		{"anything", 0, 0},
	}
	for _, c := range cases {
		if got := Partition(c.resource, c.n); got != c.want {
			t.Errorf("Partition(%q, %d) = %d, want %d", c.resource, c.n, got, c.want)
		}
	}
}

func TestMatchesStandardFNV1a(t *testing.T) {
	for i := range 2000 {
		r := fmt.Sprintf("resource-%d-ü", i)
		h := fnv.New32a()
		h.Write([]byte(r))
		for _, n := range []int{2, 3, 8, 16, 1024} {
			if got, want := Partition(r, n), int(h.Sum32()%uint32(n)); got != want {
				t.Fatalf("%q mod %d: %d want %d", r, n, got, want)
			}
		}
	}
}

func TestSpread(t *testing.T) {
	const n, keys = 8, 80_000
	var counts [n]int
	for i := range keys {
		counts[Partition(fmt.Sprintf("bench-%d", i), n)]++
	}
	for p, c := range counts {
		if c < keys/n*9/10 || c > keys/n*11/10 {
			t.Errorf("partition %d got %d of %d keys", p, c, keys)
		}
	}
}
