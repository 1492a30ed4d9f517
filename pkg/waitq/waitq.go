// Package waitq keeps first-come-first-served lines of waiters per key. Only
// the head of a line is ever woken, so a release wakes exactly one waiter.
package waitq

import "sync"

// Queue holds one line per key. The zero value is not usable; call New.
type Queue struct {
	mu    sync.Mutex
	lines map[string][]*Waiter
}

// New returns an empty queue.
func New() *Queue { return &Queue{lines: make(map[string][]*Waiter)} }

// Waiter is one place in a line.
type Waiter struct {
	q    *Queue
	key  string
	wake chan struct{}
	left bool
}

// Join appends a waiter to key's line. first reports whether the line was
// empty, i.e. the new waiter is the head.
func (q *Queue) Join(key string) (w *Waiter, first bool) {
	w = &Waiter{q: q, key: key, wake: make(chan struct{}, 1)}
	q.mu.Lock()
	defer q.mu.Unlock()
	line := q.lines[key]
	q.lines[key] = append(line, w)
	return w, len(line) == 0
}

// Len is the number of waiters in key's line.
func (q *Queue) Len(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.lines[key])
}

// Total is the number of waiters in every line.
func (q *Queue) Total() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, line := range q.lines {
		n += len(line)
	}
	return n
}

// Wake signals the head of key's line, if any. Signals do not pile up: a
// head that has not yet consumed one is not signalled twice.
func (q *Queue) Wake(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if line := q.lines[key]; len(line) > 0 {
		line[0].signal()
	}
}

func (w *Waiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// C is signalled when the waiter should look again: a release happened while
// it was the head, or it just became the head.
func (w *Waiter) C() <-chan struct{} { return w.wake }

// IsHead reports whether the waiter is first in its line.
func (w *Waiter) IsHead() bool {
	w.q.mu.Lock()
	defer w.q.mu.Unlock()
	line := w.q.lines[w.key]
	return len(line) > 0 && line[0] == w
}

// Leave removes the waiter from its line; if it was the head, the next
// waiter is signalled so it can take over. Calling Leave twice is harmless.
func (w *Waiter) Leave() {
	q := w.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if w.left {
		return
	}
	w.left = true
	line := q.lines[w.key]
	for i, x := range line {
		if x != w {
			continue
		}
		line = append(line[:i], line[i+1:]...)
		if len(line) == 0 {
			delete(q.lines, w.key)
			return
		}
		q.lines[w.key] = line
		if i == 0 {
			line[0].signal()
		}
		return
	}
}
