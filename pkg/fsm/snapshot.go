package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// Snapshot format, version 1:
//
//	"KHNS" magic, 1 byte version
//	uvarint fence, uvarint ephemeralFence, varint offset, varint lease
//	uvarint count, then count entries in resource order:
//	  uvarint len + resource, uvarint len + owner, uvarint token,
//	  varint acquiredAt, varint expires
//	4 bytes little-endian CRC-32C of everything before it
const (
	snapshotMagic   = "KHNS"
	snapshotVersion = 1
)

// Snapshot errors.
var (
	ErrBadSnapshot             = errors.New("fsm: not a lock snapshot")
	ErrUnknownSnapshotVersion  = errors.New("fsm: unknown snapshot version")
	ErrSnapshotChecksum        = errors.New("fsm: snapshot checksum mismatch")
	ErrSnapshotTrailingGarbage = errors.New("fsm: data after snapshot")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot is a point-in-time copy of a machine, safe to write out while the
// machine keeps applying commands.
type Snapshot struct {
	st state
}

// Snapshot captures the current state. It is cheap: the table is cloned
// lazily, copy-on-write.
func (m *Machine) Snapshot() *Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.st
	st.table = m.st.table.Clone()
	return &Snapshot{st: st}
}

// Len is the number of entries in the snapshot.
func (s *Snapshot) Len() int { return s.st.table.Len() }

// WriteTo writes the snapshot in the versioned format.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(cw, crc), 64<<10)
	var buf []byte
	buf = append(buf, snapshotMagic...)
	buf = append(buf, snapshotVersion)
	buf = binary.AppendUvarint(buf, s.st.fence)
	buf = binary.AppendUvarint(buf, s.st.ephemeralFence)
	buf = binary.AppendVarint(buf, s.st.offset)
	buf = binary.AppendVarint(buf, s.st.lease)
	buf = binary.AppendUvarint(buf, uint64(s.st.table.Len()))
	if _, err := bw.Write(buf); err != nil {
		return cw.n, fmt.Errorf("write snapshot header: %w", err)
	}
	var werr error
	s.st.table.Ascend(func(l Lock) bool {
		buf = appendString(buf[:0], l.Resource)
		buf = appendString(buf, l.Owner)
		buf = binary.AppendUvarint(buf, l.Token)
		buf = binary.AppendVarint(buf, l.AcquiredAt)
		buf = binary.AppendVarint(buf, l.Expires)
		_, werr = bw.Write(buf)
		return werr == nil
	})
	if werr != nil {
		return cw.n, fmt.Errorf("write snapshot entry: %w", werr)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("flush snapshot: %w", err)
	}
	sum := binary.LittleEndian.AppendUint32(nil, crc.Sum32())
	if _, err := cw.Write(sum); err != nil {
		return cw.n, fmt.Errorf("write snapshot checksum: %w", err)
	}
	return cw.n, nil
}

// Restore replaces the machine's state with a snapshot read from r. On any
// error the machine is left unchanged.
func (m *Machine) Restore(r io.Reader) error {
	st, err := readSnapshot(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.st = st
	m.mu.Unlock()
	return nil
}

// snapshotReader decodes fields from a buffered stream while feeding every
// byte it consumes into a checksum.
type snapshotReader struct {
	r   *bufio.Reader
	crc hash.Hash32
	err error
	one [1]byte
}

func (s *snapshotReader) ReadByte() (byte, error) {
	b, err := s.r.ReadByte()
	if err != nil {
		return 0, err
	}
	s.one[0] = b
	s.crc.Write(s.one[:])
	return b, nil
}

func (s *snapshotReader) full(p []byte) {
	if s.err != nil {
		return
	}
	if _, err := io.ReadFull(s.r, p); err != nil {
		s.err = fmt.Errorf("%w: %w", ErrTruncated, err)
		return
	}
	s.crc.Write(p)
}

func (s *snapshotReader) uvarint() uint64 {
	if s.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(s)
	if err != nil {
		s.err = fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return v
}

func (s *snapshotReader) varint() int64 {
	if s.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(s)
	if err != nil {
		s.err = fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return v
}

func (s *snapshotReader) string() string {
	n := s.uvarint()
	if s.err != nil {
		return ""
	}
	if n > maxStringBytes {
		s.err = fmt.Errorf("%w: string of %d bytes", ErrTooLarge, n)
		return ""
	}
	b := make([]byte, n)
	s.full(b)
	return string(b)
}

func readSnapshot(r io.Reader) (state, error) {
	sr := &snapshotReader{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.New(castagnoli)}
	head := make([]byte, len(snapshotMagic)+1)
	sr.full(head)
	if sr.err != nil {
		return state{}, fmt.Errorf("%w: %w", ErrBadSnapshot, sr.err)
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic {
		return state{}, ErrBadSnapshot
	}
	if v := head[len(snapshotMagic)]; v != snapshotVersion {
		return state{}, fmt.Errorf("%w: %d", ErrUnknownSnapshotVersion, v)
	}
	st := state{table: NewTable()}
	st.fence = sr.uvarint()
	st.ephemeralFence = sr.uvarint()
	st.offset = sr.varint()
	st.lease = sr.varint()
	n := sr.uvarint()
	var prev string
	for i := uint64(0); i < n && sr.err == nil; i++ {
		l := Lock{Resource: sr.string(), Owner: sr.string()}
		l.Token = sr.uvarint()
		l.AcquiredAt = sr.varint()
		l.Expires = sr.varint()
		if sr.err != nil {
			break
		}
		// Entries are written in order; anything else is corrupt, and the
		// check also rules out duplicates.
		if i > 0 && l.Resource <= prev {
			return state{}, fmt.Errorf("%w: entry %d out of order", ErrBadSnapshot, i)
		}
		if l.Resource == "" || l.Token > st.fence {
			return state{}, fmt.Errorf("%w: entry %d invalid", ErrBadSnapshot, i)
		}
		prev = l.Resource
		st.table.put(l)
	}
	if sr.err != nil {
		return state{}, sr.err
	}
	want := sr.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(sr.r, sum[:]); err != nil {
		return state{}, fmt.Errorf("%w: checksum: %w", ErrTruncated, err)
	}
	if binary.LittleEndian.Uint32(sum[:]) != want {
		return state{}, ErrSnapshotChecksum
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		return state{}, ErrSnapshotTrailingGarbage
	}
	return st, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
