package wire

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// DecodeLockRequest parses a lock request body into r with the same result
// as json.Unmarshal. Bodies as clients actually send them — one flat object,
// known keys, plain strings, integers — take a fast path that does no
// reflection; anything else (escapes, nested values, odd keys, errors) goes
// through encoding/json, so its behaviour and error messages apply.
func DecodeLockRequest(data []byte, r *LockRequest) error {
	var fast LockRequest
	if decodeFlat(data, &fast) {
		*r = fast
		return nil
	}
	// Decoded into a local so that only this path, through reflection,
	// makes the request escape to the heap.
	var slow LockRequest
	err := json.Unmarshal(data, &slow)
	*r = slow
	return err
}

// flatValues holds the fields the fast path decodes, so that one allocation
// serves every pointer of a LockRequest instead of one per field.
type flatValues struct {
	resource, owner   string
	expiresMs, waitMs int64
	durability        int
}

// flatDecoder reads one JSON object of simple members.
type flatDecoder struct {
	b []byte
	i int
}

func (d *flatDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *flatDecoder) next(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str reads a string without escapes, control characters or invalid
// UTF-8 (which encoding/json would rewrite).
func (d *flatDecoder) str() (string, bool) {
	b, ok := d.rawStr()
	return string(b), ok
}

// rawStr is str without the copy: the bytes alias the input. Keys are only
// compared, so they need no string of their own.
func (d *flatDecoder) rawStr() ([]byte, bool) {
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(d.b[start:j]) {
				return nil, false
			}
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// integer reads a JSON number that is an integer within int64; fractions,
// exponents and overflow leave it to encoding/json.
func (d *flatDecoder) integer() (int64, bool) {
	d.space()
	j := d.i
	neg := false
	if j < len(d.b) && d.b[j] == '-' {
		neg = true
		j++
	}
	if j >= len(d.b) || d.b[j] < '0' || d.b[j] > '9' {
		return 0, false
	}
	if d.b[j] == '0' && j+1 < len(d.b) && d.b[j+1] >= '0' && d.b[j+1] <= '9' {
		return 0, false // leading zero: invalid JSON
	}
	var v uint64
	digits := 0
	for ; j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9'; j++ {
		v = v*10 + uint64(d.b[j]-'0')
		digits++
		if digits > 18 {
			return 0, false
		}
	}
	if j < len(d.b) {
		switch d.b[j] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	d.i = j
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

// null reads the literal null.
func (d *flatDecoder) null() bool {
	d.space()
	if bytes.HasPrefix(d.b[d.i:], []byte("null")) {
		d.i += 4
		return true
	}
	return false
}

// decodeFlat reports whether data is a flat object it could decode exactly
// as encoding/json would.
func decodeFlat(data []byte, r *LockRequest) bool {
	d := flatDecoder{b: data}
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return d.end()
	}
	v := new(flatValues)
	for {
		key, ok := d.rawStr()
		if !ok || !d.next(':') {
			return false
		}
		switch string(key) {
		case "resource", "owner":
			p, s := &r.Resource, &v.resource
			if string(key) == "owner" {
				p, s = &r.Owner, &v.owner
			}
			if d.null() {
				*p = nil
				break
			}
			if *s, ok = d.str(); !ok {
				return false
			}
			*p = s
		case "expiresMs", "waitMs":
			p, n := &r.ExpiresMs, &v.expiresMs
			if string(key) == "waitMs" {
				p, n = &r.WaitMs, &v.waitMs
			}
			if d.null() {
				*p = nil
				break
			}
			if *n, ok = d.integer(); !ok {
				return false
			}
			*p = n
		case "durability":
			if d.null() {
				r.Durability = nil
				break
			}
			n, ok := d.integer()
			if !ok || n != int64(int(n)) {
				return false
			}
			v.durability = int(n)
			r.Durability = &v.durability
		default:
			// encoding/json also matches keys case-insensitively and skips
			// values of any shape; leave every other key to it.
			return false
		}
		if d.next(',') {
			continue
		}
		if d.next('}') {
			return d.end()
		}
		return false
	}
}

// DecodeLockResponse parses a lock reply into r with the same result as
// json.Unmarshal into a zero LockResponse. Replies as the server writes them
// (see LockResponse.AppendJSON) take a fast path without reflection;
// anything else (escapes, unknown keys, odd shapes, errors) goes through
// encoding/json, so its behaviour and error messages apply.
func DecodeLockResponse(data []byte, r *LockResponse) error {
	var fast LockResponse
	if decodeReply(data, &fast) {
		*r = fast
		return nil
	}
	var slow LockResponse
	err := json.Unmarshal(data, &slow)
	*r = slow
	return err
}

// replyValues holds what the pointer fields of a reply point to, so that one
// allocation serves all of them.
type replyValues struct {
	ints    [2]int64 // FencingToken, ExpiresInMs
	expires HLC
}

// decodeReply reports whether data is a reply it could decode exactly as
// encoding/json would.
func decodeReply(data []byte, r *LockResponse) bool {
	d := flatDecoder{b: data}
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return d.end()
	}
	var v *replyValues // allocated by the first pointer field, if any
	for {
		key, ok := d.rawStr()
		if !ok || !d.next(':') {
			return false
		}
		// A null leaves a non-pointer field as it was and sets a pointer
		// to nil, as in encoding/json.
		var s *string
		var p **int64
		slot := 0
		switch string(key) {
		case "type":
			if d.null() {
				break
			}
			n, ok := d.integer()
			if !ok || n != int64(int(n)) {
				return false
			}
			r.Type = Type(n)
		case "servedFrom":
			s = &r.ServedFrom
		case "error":
			s = &r.Error
		case "owner":
			s = &r.Owner
		case "acquiredAt":
			s = &r.AcquiredAt
		case "expiresAt":
			s = &r.ExpiresAt
		case "fencingToken":
			p = &r.FencingToken
		case "expiresInMs":
			p, slot = &r.ExpiresInMs, 1
		case "expires":
			if d.null() {
				r.Expires = nil
				break
			}
			if v == nil {
				v = new(replyValues)
			}
			if r.Expires == nil {
				// encoding/json decodes a repeated key into the HLC it
				// already has, but into a new one after a null.
				v.expires = HLC{}
			}
			if !decodeHLC(&d, &v.expires) {
				return false
			}
			r.Expires = &v.expires
		default:
			// Other keys, including case variants encoding/json would
			// match, are left to it.
			return false
		}
		switch {
		case s != nil:
			if d.null() {
				break
			}
			if *s, ok = d.str(); !ok {
				return false
			}
		case p != nil:
			if d.null() {
				*p = nil
				break
			}
			n, ok := d.integer()
			if !ok {
				return false
			}
			if v == nil {
				v = new(replyValues)
			}
			v.ints[slot] = n
			*p = &v.ints[slot]
		}
		if d.next(',') {
			continue
		}
		if d.next('}') {
			return d.end()
		}
		return false
	}
}

// decodeHLC reads the object of an expires member into h, leaving the
// members it lacks (or that are null) as they are.
func decodeHLC(d *flatDecoder, h *HLC) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	for {
		key, ok := d.rawStr()
		if !ok || !d.next(':') {
			return false
		}
		var p *int // N or C; nil for L
		switch string(key) {
		case "n":
			p = &h.N
		case "c":
			p = &h.C
		case "l":
		default:
			return false
		}
		if !d.null() {
			n, ok := d.integer()
			switch {
			case !ok || (p != nil && n != int64(int(n))):
				return false
			case p != nil:
				*p = int(n)
			default:
				h.L = n
			}
		}
		if d.next(',') {
			continue
		}
		return d.next('}')
	}
}

// end reports whether only whitespace follows.
func (d *flatDecoder) end() bool {
	d.space()
	return d.i == len(d.b)
}
