package waitq

import (
	"testing"
)

func signalled(w *Waiter) bool {
	select {
	case <-w.C():
		return true
	default:
		return false
	}
}

func TestFirstComeFirstServed(t *testing.T) {
	q := New()
	a, first := q.Join("k")
	if !first || !a.IsHead() {
		t.Fatal("first waiter is not the head")
	}
	b, first := q.Join("k")
	c, _ := q.Join("k")
	if first || b.IsHead() || c.IsHead() {
		t.Fatal("later waiters claim the head")
	}
	// A release wakes only the head.
	q.Wake("k")
	if !signalled(a) || signalled(b) || signalled(c) {
		t.Fatal("wake did not go to the head alone")
	}
	// Signals do not pile up.
	q.Wake("k")
	q.Wake("k")
	if !signalled(a) || signalled(a) {
		t.Fatal("signals accumulated")
	}
	// The head leaving hands over to the next in line, and only to it.
	a.Leave()
	if !b.IsHead() || !signalled(b) || signalled(c) {
		t.Fatal("leave did not hand over to the next waiter")
	}
	// A waiter leaving from the middle wakes nobody.
	d, _ := q.Join("k")
	c.Leave()
	if signalled(b) || signalled(d) || !b.IsHead() {
		t.Fatal("a middle leave disturbed the line")
	}
	b.Leave()
	b.Leave() // harmless
	if !d.IsHead() || !signalled(d) || q.Len("k") != 1 {
		t.Fatalf("line after leaves: len %d", q.Len("k"))
	}
	d.Leave()
	if q.Len("k") != 0 || len(q.lines) != 0 {
		t.Fatal("empty line kept")
	}
	q.Wake("k") // no line: nothing happens
}

func TestKeysAreIndependent(t *testing.T) {
	q := New()
	a, _ := q.Join("x")
	b, first := q.Join("y")
	if !first || !b.IsHead() {
		t.Fatal("separate key shares a line")
	}
	q.Wake("y")
	if signalled(a) || !signalled(b) {
		t.Fatal("wake crossed keys")
	}
}
