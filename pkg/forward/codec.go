package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kahuna-go/kahuna/pkg/cluster"
	"github.com/kahuna-go/kahuna/pkg/fsm"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/router"
)

// Wire format. Every message is a frame: a 4-byte big-endian length, then
// the payload. Payloads start with a version byte; strings are a uvarint
// length and the bytes; integers are (u)varints. Many requests share one
// connection: each carries an ID of the client's choosing, and its response
// carries the same ID, in whatever order the requests finish.
//
//	request:  version, kind, uvarint id, then
//	  kindLock:   op, durability, uvarint ttlMs, uvarint waitMs, resource, owner
//	  kindList:   uvarint partition, durability, prefix, after, uvarint limit
//	  kindCancel: nothing; the client gave up on request id (no response)
//	  kindProbe:  uvarint partition+1 (0: none)
//	  kindRemove: node
//	  kindMember: node
//	response: version, uvarint id, error code, [error message], servedFrom, then
//	  kindLock: outcome, token, owner, acquiredAt, expiresAt, expiresIn, fresh
//	  kindList: uvarint count, count × (resource, owner, token, acquiredAt,
//	            expiresAt, expiresIn)
//	  kindProbe: ready, reason, uvarint applied index
//	  kindRemove: nothing
//	  kindMember: uvarint partition+1 (0: in none)
//
// Version 1 carried one request at a time per connection, without IDs.
const (
	version = 2

	kindLock   = 1
	kindList   = 2
	kindCancel = 3
	// kindProbe asks a node about itself: ready, and how far it applied
	// a partition (cluster.Autopilot and Balancer ask it).
	kindProbe = 4
	// kindRemove asks a node to carry out a removal (of the node that
	// sends it, which may never see its own removal).
	kindRemove = 5
	// kindMember asks whether a node ID is in any partition's
	// configuration (a new node checks its ID is free before it joins).
	kindMember = 6

	// maxFrame bounds a message; a list of 1000 locks with the longest
	// names stays well under it.
	maxFrame = 4 << 20
	// maxString bounds any string field, above the API's own limits.
	maxString = 1 << 16
)

// Errors.
var (
	ErrProtocol = errors.New("forward: protocol error")
)

// Error codes carry the kind of a remote failure, so that errors.Is works
// across the hop.
const (
	codeOK byte = iota
	codeNotLeader
	codeUnknownOutcome
	codeTryAgain
	codeInvalid
	codeClosed
	codeNoLeader
	codeOther
	codeUnknownNode
	codeWouldLoseQuorum
)

var codeErrors = map[byte]error{
	codeNotLeader:       partition.ErrNotLeader,
	codeUnknownOutcome:  partition.ErrUnknownOutcome,
	codeTryAgain:        partition.ErrTryAgain,
	codeInvalid:         partition.ErrInvalid,
	codeClosed:          partition.ErrClosed,
	codeNoLeader:        router.ErrNoLeader,
	codeUnknownNode:     cluster.ErrUnknownNode,
	codeWouldLoseQuorum: cluster.ErrWouldLoseQuorum,
}

func errorCode(err error) byte {
	for code, target := range codeErrors {
		if errors.Is(err, target) {
			return code
		}
	}
	return codeOther
}

// request is one forwarded operation.
type request struct {
	kind byte
	id   uint64
	// kindLock
	lock router.Request
	// kindList, kindProbe (-1: none)
	partition int
	list      listArgs
	// kindRemove, kindMember
	node string
}

type listArgs struct {
	durability    partition.Durability
	prefix, after string
	limit         int
}

// response is the answer to a request.
type response struct {
	id         uint64
	code       byte
	message    string
	servedFrom string
	result     fsm.Result
	infos      []fsm.Info
	probe      Probe
	// partition answers kindMember: where the node is a member, -1 if
	// nowhere.
	partition int
}

// Probe is what a node says of itself.
type Probe struct {
	// Node is the ID of the node that answered: whoever holds the address
	// now, which after a replacement need not be the node asked for.
	Node  string
	Ready bool
	// Reason says why a node is not ready.
	Reason string
	// Applied is how far the node applied the partition asked about.
	Applied uint64
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendRequest(b []byte, r *request) []byte {
	b = append(b, version, r.kind)
	b = binary.AppendUvarint(b, r.id)
	switch r.kind {
	case kindLock:
		l := &r.lock
		b = append(b, byte(l.Op), byte(l.Durability))
		b = binary.AppendUvarint(b, uint64(l.TTL.Milliseconds()))
		b = binary.AppendUvarint(b, uint64(l.Wait.Milliseconds()))
		b = appendString(b, l.Resource)
		b = appendString(b, l.Owner)
	case kindList:
		b = binary.AppendUvarint(b, uint64(r.partition))
		b = append(b, byte(r.list.durability))
		b = appendString(b, r.list.prefix)
		b = appendString(b, r.list.after)
		b = binary.AppendUvarint(b, uint64(r.list.limit))
	case kindProbe:
		b = binary.AppendUvarint(b, uint64(r.partition+1))
	case kindRemove, kindMember:
		b = appendString(b, r.node)
	}
	return b
}

func appendResponse(b []byte, kind byte, r *response) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, r.id)
	b = append(b, r.code)
	if r.code != codeOK {
		b = appendString(b, r.message)
	}
	b = appendString(b, r.servedFrom)
	if r.code != codeOK {
		return b
	}
	switch kind {
	case kindLock:
		res := &r.result
		b = append(b, byte(res.Outcome))
		b = binary.AppendUvarint(b, res.Token)
		b = appendString(b, res.Owner)
		b = binary.AppendVarint(b, res.AcquiredAt)
		b = binary.AppendVarint(b, res.ExpiresAt)
		b = binary.AppendVarint(b, res.ExpiresIn)
		fresh := byte(0)
		if res.Fresh {
			fresh = 1
		}
		b = append(b, fresh)
	case kindList:
		b = binary.AppendUvarint(b, uint64(len(r.infos)))
		for _, in := range r.infos {
			b = appendString(b, in.Resource)
			b = appendString(b, in.Owner)
			b = binary.AppendUvarint(b, in.Token)
			b = binary.AppendVarint(b, in.AcquiredAt)
			b = binary.AppendVarint(b, in.ExpiresAt)
			b = binary.AppendVarint(b, in.ExpiresIn)
		}
	case kindProbe:
		ready := byte(0)
		if r.probe.Ready {
			ready = 1
		}
		b = append(b, ready)
		b = appendString(b, r.probe.Reason)
		b = binary.AppendUvarint(b, r.probe.Applied)
	case kindMember:
		b = binary.AppendUvarint(b, uint64(r.partition+1))
	}
	return b
}

// reader decodes fields and remembers the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or malformed message", ErrProtocol)
	}
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil || n > maxString || n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrProtocol, len(r.b))
	}
	return r.err
}

// millis decodes a duration sent as milliseconds, refusing values that would
// overflow.
func millis(v uint64) time.Duration {
	const limit = uint64(1<<63-1) / uint64(time.Millisecond)
	return time.Duration(min(v, limit)) * time.Millisecond
}

func decodeRequest(b []byte) (request, error) {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != version {
		return request{}, fmt.Errorf("%w: version %d", ErrProtocol, v)
	}
	req := request{kind: r.byte()}
	req.id = r.uvarint()
	switch req.kind {
	case kindCancel:
	case kindLock:
		req.lock.Op = router.Op(r.byte())
		req.lock.Durability = partition.Durability(r.byte())
		req.lock.TTL = millis(r.uvarint())
		req.lock.Wait = millis(r.uvarint())
		req.lock.Resource = r.string()
		req.lock.Owner = r.string()
	case kindList:
		p := r.uvarint()
		if p > partition.MaxPartitions {
			r.fail()
		}
		req.partition = int(p)
		req.list.durability = partition.Durability(r.byte())
		req.list.prefix = r.string()
		req.list.after = r.string()
		limit := r.uvarint()
		if limit > 1<<20 {
			r.fail()
		}
		req.list.limit = int(limit)
	case kindProbe:
		p := r.uvarint()
		if p > partition.MaxPartitions {
			r.fail()
		}
		req.partition = int(p) - 1
	case kindRemove, kindMember:
		req.node = r.string()
	default:
		if r.err == nil {
			return request{}, fmt.Errorf("%w: request kind %d", ErrProtocol, req.kind)
		}
	}
	return req, r.done()
}

// responseID reads the ID of an encoded response, which tells the client
// what kind of request it answers.
func responseID(b []byte) (uint64, error) {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != version {
		return 0, fmt.Errorf("%w: version %d", ErrProtocol, v)
	}
	id := r.uvarint()
	return id, r.err
}

func decodeResponse(kind byte, b []byte) (response, error) {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != version {
		return response{}, fmt.Errorf("%w: version %d", ErrProtocol, v)
	}
	resp := response{id: r.uvarint()}
	resp.code = r.byte()
	if resp.code != codeOK {
		resp.message = r.string()
	}
	resp.servedFrom = r.string()
	if resp.code != codeOK {
		return resp, r.done()
	}
	switch kind {
	case kindLock:
		res := &resp.result
		res.Outcome = fsm.Outcome(r.byte())
		res.Token = r.uvarint()
		res.Owner = r.string()
		res.AcquiredAt = r.varint()
		res.ExpiresAt = r.varint()
		res.ExpiresIn = r.varint()
		res.Fresh = r.byte() == 1
	case kindList:
		n := r.uvarint()
		// Each entry takes at least six bytes.
		if n > uint64(len(r.b)) {
			r.fail()
			break
		}
		resp.infos = make([]fsm.Info, 0, n)
		for i := uint64(0); i < n && r.err == nil; i++ {
			resp.infos = append(resp.infos, fsm.Info{
				Resource:   r.string(),
				Owner:      r.string(),
				Token:      r.uvarint(),
				AcquiredAt: r.varint(),
				ExpiresAt:  r.varint(),
				ExpiresIn:  r.varint(),
			})
		}
	case kindProbe:
		resp.probe.Ready = r.byte() == 1
		resp.probe.Reason = r.string()
		resp.probe.Applied = r.uvarint()
	case kindMember:
		p := r.uvarint()
		if p > partition.MaxPartitions {
			r.fail()
		}
		resp.partition = int(p) - 1
	}
	return resp, r.done()
}

// RefusedError is another node's refusal of a membership change: its
// reason already says why, and errors.Is finds the cluster sentinel.
type RefusedError struct {
	Err    error
	Reason string
}

func (e *RefusedError) Error() string { return e.Reason }
func (e *RefusedError) Unwrap() error { return e.Err }

// remoteError rebuilds a remote failure so that errors.Is sees its kind.
func (r *response) remoteError() error {
	if r.code == codeOK {
		return nil
	}
	target, ok := codeErrors[r.code]
	switch {
	case ok && (r.code == codeUnknownNode || r.code == codeWouldLoseQuorum):
		return &RefusedError{Err: target, Reason: r.message + " (as " + r.servedFrom + " sees it)"}
	case ok:
		return fmt.Errorf("%w (on %s: %s)", target, r.servedFrom, r.message)
	}
	return fmt.Errorf("forward: %s failed: %s", r.servedFrom, r.message)
}

// appendFrame appends one frame to b: the length prefix, then what
// appendPayload appends.
func appendFrame(b []byte, appendPayload func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = appendPayload(b)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// readFrame reads one frame into buf (grown as needed).
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return buf, fmt.Errorf("%w: frame of %d bytes", ErrProtocol, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, err
	}
	return buf, nil
}
