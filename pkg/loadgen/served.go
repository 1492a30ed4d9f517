package loadgen

import "bytes"

// maxInternedNodes bounds the names a tally keeps in its slice. A cluster
// has a handful of nodes; names beyond this go to a map, which costs an
// allocation per reply but only from a server that makes names up.
const maxInternedNodes = 16

// servedTally counts replies by their top-level "servedFrom". Names are kept
// raw (still JSON-escaped) and compared byte-wise, so counting a name seen
// before neither allocates nor decodes; they are decoded once, for the
// report.
type servedTally struct {
	nodes    []servedCount
	last     int               // index of the latest hit, usually the next one too
	overflow map[string]uint64 // raw names past maxInternedNodes
	missing  uint64            // replies without a servedFrom string
}

type servedCount struct {
	raw []byte // owned copy, not aliasing a reply
	n   uint64
}

// count adds n replies served by raw; nil means the reply had no servedFrom.
func (t *servedTally) count(raw []byte, n uint64) {
	if raw == nil {
		t.missing += n
		return
	}
	if t.last < len(t.nodes) && bytes.Equal(t.nodes[t.last].raw, raw) {
		t.nodes[t.last].n += n
		return
	}
	for i := range t.nodes {
		if bytes.Equal(t.nodes[i].raw, raw) {
			t.nodes[i].n += n
			t.last = i
			return
		}
	}
	if len(t.nodes) < maxInternedNodes {
		// Clone keeps an empty name non-nil: "" is a name, not a missing field.
		t.nodes = append(t.nodes, servedCount{raw: bytes.Clone(raw), n: n})
		t.last = len(t.nodes) - 1
		return
	}
	if t.overflow == nil {
		t.overflow = make(map[string]uint64)
	}
	t.overflow[string(raw)] += n
}

func (t *servedTally) add(o *servedTally) {
	for _, c := range o.nodes {
		t.count(c.raw, c.n)
	}
	for raw, n := range o.overflow {
		t.count([]byte(raw), n)
	}
	t.missing += o.missing
}

// byNode decodes the names; two spellings of one name (say "a" and
// "\u0061") are summed.
func (t *servedTally) byNode() map[string]uint64 {
	m := make(map[string]uint64, len(t.nodes)+len(t.overflow))
	for _, c := range t.nodes {
		m[DecodeServedFrom(c.raw)] += c.n
	}
	for raw, n := range t.overflow {
		m[DecodeServedFrom([]byte(raw))] += n
	}
	return m
}
