package forward

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// errNotSent is returned by frameWriter.send for a frame it refused because
// the connection had already failed: the peer cannot have seen it.
var errNotSent = errors.New("forward: connection already failed")

// frameWriter lets many goroutines write frames to one connection and turns
// concurrent frames into few writes: a sender that finds nobody writing
// writes its frame and everything queued meanwhile, until the queue is
// empty; a sender that finds a write in progress only queues its frame.
// Under load one system call then carries many requests or replies.
type frameWriter struct {
	w io.Writer

	mu      sync.Mutex
	queued  []byte
	spare   []byte
	writing bool
	err     error // the first write error; nothing is written after it
}

// maxSpare bounds the buffer kept between writes, so that one large list
// reply does not pin its memory for the life of the connection.
const maxSpare = 64 << 10

// send appends one frame, built by appendFrame, and sees that it is written.
// It returns errNotSent (wrapped) if the frame was refused; any other error
// means the frame may or may not have reached the peer. A nil error does not
// mean the write is done: another sender may still be writing it, and if
// that write fails the connection's reader sees the failure.
func (fw *frameWriter) send(appendFrame func([]byte) []byte) error {
	fw.mu.Lock()
	if fw.err != nil {
		err := fw.err
		fw.mu.Unlock()
		return fmt.Errorf("%w: %w", errNotSent, err)
	}
	fw.queued = appendFrame(fw.queued)
	if fw.writing {
		fw.mu.Unlock()
		return nil
	}
	fw.writing = true
	for len(fw.queued) > 0 && fw.err == nil {
		buf := fw.queued
		fw.queued = fw.spare[:0]
		fw.mu.Unlock()
		_, err := fw.w.Write(buf)
		fw.mu.Lock()
		if cap(buf) <= maxSpare {
			fw.spare = buf[:0]
		} else {
			fw.spare = nil
		}
		if err != nil {
			fw.err = err
		}
	}
	fw.writing = false
	err := fw.err
	fw.mu.Unlock()
	return err
}
