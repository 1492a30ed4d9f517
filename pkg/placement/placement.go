// Package placement maps a resource to its partition. The mapping is part of
// the cluster's data format and of the public API (clients may compute it to
// talk to a partition's leader directly), so it must never change:
//
//	partition = FNV-1a-32(UTF-8 bytes of resource) mod partitionCount
//
// FNV-1a is tiny, has implementations in every language, and spreads short
// keys well enough for a handful to a thousand partitions.
package placement

// Partition returns the partition of resource among n partitions.
func Partition(resource string, n int) int {
	if n <= 1 {
		return 0
	}
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(resource); i++ {
		h ^= uint32(resource[i])
		h *= prime32
	}
	return int(h % uint32(n))
}
