package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Reply is the part of a lock reply the load tool looks at.
type Reply struct {
	Type     wire.Type
	Token    int64
	HasToken bool
	// ServedFrom is the top-level "servedFrom" string as it appears between
	// its quotes, escapes and all; it aliases the scanned body. It is nil
	// when the field is absent or not a string. DecodeServedFrom turns it
	// into the node name.
	ServedFrom []byte
}

// ErrNoType means a reply body had no top-level numeric "type".
var ErrNoType = errors.New("reply has no numeric type")

var errJSON = errors.New("malformed JSON reply")

// ScanReply pulls the top-level "type", "fencingToken" and "servedFrom" out
// of a JSON object. It walks the bytes once and never allocates, which
// matters at tens of thousands of replies a second; everything else in the
// body is skipped, including fields of the same name inside nested objects.
// With ErrNoType the other fields are still filled in.
func ScanReply(b []byte) (Reply, error) {
	var r Reply
	hasType := false
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return r, errJSON
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return r, ErrNoType
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return r, errJSON
		}
		end, ok := stringEnd(b, i)
		if !ok {
			return r, errJSON
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return r, errJSON
		}
		i = skipSpace(b, i+1)
		switch string(key) {
		case "type":
			v, n, ok := parseInt(b[i:])
			if !ok || v < math.MinInt32 || v > math.MaxInt32 {
				return r, ErrNoType
			}
			r.Type, hasType = wire.Type(v), true
			i += n
		case "fencingToken":
			v, n, ok := parseInt(b[i:])
			if ok {
				r.Token, r.HasToken = v, true
				i += n
				break
			}
			// null or another non-integer: treat as absent.
			r.Token, r.HasToken = 0, false
			if i, ok = skipValue(b, i); !ok {
				return r, errJSON
			}
		case "servedFrom":
			if i < len(b) && b[i] == '"' {
				end, ok := stringEnd(b, i)
				if !ok {
					return r, errJSON
				}
				r.ServedFrom = b[i+1 : end-1 : end-1]
				i = end
				break
			}
			// null or another non-string: treat as absent.
			r.ServedFrom = nil
			if i, ok = skipValue(b, i); !ok {
				return r, errJSON
			}
		default:
			if i, ok = skipValue(b, i); !ok {
				return r, errJSON
			}
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return r, errJSON
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			if !hasType {
				return r, ErrNoType
			}
			return r, nil
		default:
			return r, errJSON
		}
	}
}

// DecodeServedFrom turns the raw contents of a JSON string, as ScanReply
// returns them in Reply.ServedFrom, into the string they stand for. Only
// names with escapes pay for a decode; one whose escapes are invalid is
// returned as it is.
func DecodeServedFrom(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return string(raw)
	}
	return s
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i].
func stringEnd(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index just past the JSON value that starts at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := stringEnd(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	// A number, true, false or null runs to the next delimiter.
	j := i
	for j < len(b) && !isDelim(b[j]) {
		j++
	}
	return j, j > i
}

func isDelim(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// parseInt reads a JSON integer at the start of b and returns it with the
// number of bytes consumed. Fractions, exponents and overflow are rejected.
func parseInt(b []byte) (int64, int, bool) {
	i, neg := 0, false
	if i < len(b) && b[i] == '-' {
		neg, i = true, 1
	}
	start := i
	var v uint64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		d := uint64(b[i] - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, 0, false
		}
		v = v*10 + d
		i++
	}
	if i == start || (i < len(b) && !isDelim(b[i])) {
		return 0, 0, false
	}
	if neg {
		return -int64(v), i, true
	}
	return int64(v), i, true
}
