package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Op is the kind of a command.
type Op uint8

// Operations. The numbers are part of the Raft log format: never renumber.
const (
	// OpTryLock grants a free lock or re-grants a held one to its owner.
	OpTryLock Op = 1
	// OpExtend moves the expiry of a live lock held by the owner.
	OpExtend Op = 2
	// OpUnlock releases a lock held by the owner.
	OpUnlock Op = 3
	// OpForceUnlock releases a lock whoever holds it.
	OpForceUnlock Op = 4
	// OpExpire drops up to Limit entries that expired at least TTL ms ago.
	// The leader proposes it periodically; it also carries the leader's time
	// into the log, which keeps Promote's re-anchoring gap small.
	OpExpire Op = 5
	// OpPromote is the first command of a new leader: it re-anchors the
	// lease clock so that the leader change never shortens a lease.
	OpPromote Op = 6
	// OpReserveTokens reserves Limit fencing tokens for ephemeral locks.
	OpReserveTokens Op = 7
)

func (o Op) String() string {
	switch o {
	case OpTryLock:
		return "try-lock"
	case OpExtend:
		return "extend"
	case OpUnlock:
		return "unlock"
	case OpForceUnlock:
		return "force-unlock"
	case OpExpire:
		return "expire"
	case OpPromote:
		return "promote"
	case OpReserveTokens:
		return "reserve-tokens"
	default:
		return fmt.Sprintf("op(%d)", uint8(o))
	}
}

// Command is one lock operation. Which fields matter depends on Op.
type Command struct {
	Op       Op
	Resource string
	Owner    string
	// TTL is the lease length in milliseconds for try-lock and extend, and
	// the grace period for expire.
	TTL int64
	// Limit is the most entries an expire may drop, or the number of tokens
	// to reserve.
	Limit uint64
}

// Valid reports whether a lock command is well formed: it names a resource,
// and try-lock and extend carry a positive lease. Internal commands are
// always valid here; their fields are checked when they are applied.
func (c *Command) Valid() bool {
	switch c.Op {
	case OpTryLock, OpExtend:
		return c.Resource != "" && c.TTL > 0
	case OpUnlock, OpForceUnlock:
		return c.Resource != ""
	default:
		return true
	}
}

// Batch is what one Raft log entry carries: commands stamped with the
// leader's time. Applying a batch never reads a clock.
type Batch struct {
	// Now is the leader's time in unix milliseconds when it sealed the batch.
	Now int64
	// Term and Seq name the proposal: the Raft term of the leader that sent
	// it and that leader's sequence number. They do not affect the state;
	// they let the proposer recognise its own batch when it is applied.
	Term, Seq uint64
	Commands  []Command
}

// batchVersion is the first byte of every encoded batch.
const batchVersion = 1

// Decoding errors.
var (
	ErrTruncated      = errors.New("fsm: truncated command")
	ErrUnknownVersion = errors.New("fsm: unknown batch version")
	ErrUnknownOp      = errors.New("fsm: unknown operation")
	ErrTooLarge       = errors.New("fsm: field too large")
)

// maxStringBytes bounds decoded strings so a corrupt length cannot make the
// decoder allocate gigabytes. The API enforces far tighter limits.
const maxStringBytes = 1 << 16

// AppendBatch encodes b after dst and returns the extended slice.
func AppendBatch(dst []byte, b Batch) []byte {
	dst = append(dst, batchVersion)
	dst = binary.AppendVarint(dst, b.Now)
	dst = binary.AppendUvarint(dst, b.Term)
	dst = binary.AppendUvarint(dst, b.Seq)
	dst = binary.AppendUvarint(dst, uint64(len(b.Commands)))
	for i := range b.Commands {
		dst = appendCommand(dst, &b.Commands[i])
	}
	return dst
}

func appendCommand(dst []byte, c *Command) []byte {
	dst = append(dst, byte(c.Op))
	switch c.Op {
	case OpTryLock, OpExtend:
		dst = appendString(dst, c.Resource)
		dst = appendString(dst, c.Owner)
		dst = binary.AppendVarint(dst, c.TTL)
	case OpUnlock:
		dst = appendString(dst, c.Resource)
		dst = appendString(dst, c.Owner)
	case OpForceUnlock:
		dst = appendString(dst, c.Resource)
	case OpExpire:
		dst = binary.AppendVarint(dst, c.TTL)
		dst = binary.AppendUvarint(dst, c.Limit)
	case OpPromote:
	case OpReserveTokens:
		dst = binary.AppendUvarint(dst, c.Limit)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeBatch parses a batch produced by AppendBatch. It never panics on
// malformed input.
func DecodeBatch(data []byte) (Batch, error) {
	d := decoder{buf: data}
	v := d.byte()
	if d.err != nil {
		return Batch{}, d.err
	}
	if v != batchVersion {
		return Batch{}, fmt.Errorf("%w: %d", ErrUnknownVersion, v)
	}
	b := Batch{Now: d.varint(), Term: d.uvarint(), Seq: d.uvarint()}
	n := d.uvarint()
	if d.err != nil {
		return Batch{}, d.err
	}
	// Every command takes at least one byte: a count beyond the remaining
	// input is corrupt, and checking it first keeps the allocation bounded.
	if n > uint64(len(d.buf)) {
		return Batch{}, fmt.Errorf("%w: %d commands in %d bytes", ErrTruncated, n, len(d.buf))
	}
	b.Commands = make([]Command, n)
	for i := range b.Commands {
		d.command(&b.Commands[i])
		if d.err != nil {
			return Batch{}, fmt.Errorf("command %d: %w", i, d.err)
		}
	}
	if len(d.buf) != 0 {
		return Batch{}, fmt.Errorf("%w: %d trailing bytes", ErrTruncated, len(d.buf))
	}
	return b, nil
}

// decoder reads fields from buf and remembers the first error, so callers
// check once per record instead of once per field.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) == 0 {
		d.err = ErrTruncated
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = ErrTruncated
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.err = ErrTruncated
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > maxStringBytes {
		d.err = fmt.Errorf("%w: string of %d bytes", ErrTooLarge, n)
		return ""
	}
	if n > uint64(len(d.buf)) {
		d.err = ErrTruncated
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	return s
}

func (d *decoder) command(c *Command) {
	c.Op = Op(d.byte())
	switch c.Op {
	case OpTryLock, OpExtend:
		c.Resource = d.string()
		c.Owner = d.string()
		c.TTL = d.varint()
	case OpUnlock:
		c.Resource = d.string()
		c.Owner = d.string()
	case OpForceUnlock:
		c.Resource = d.string()
	case OpExpire:
		c.TTL = d.varint()
		c.Limit = d.uvarint()
	case OpPromote:
	case OpReserveTokens:
		c.Limit = d.uvarint()
	default:
		if d.err == nil {
			d.err = fmt.Errorf("%w: %d", ErrUnknownOp, uint8(c.Op))
		}
	}
}
