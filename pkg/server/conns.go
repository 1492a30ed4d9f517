package server

import (
	"net"
	"net/http"
	"sync"
)

// freshConns remembers HTTP connections that have not sent a request yet.
// http.Server.Shutdown waits up to 5 s for such a connection before it counts
// it as idle, so a load-balancer pre-connect or a port probe would otherwise
// stall every shutdown; Close closes them at once instead.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// track is an http.Server ConnState hook.
func (f *freshConns) track(c net.Conn, st http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == http.StateNew {
		if f.conns == nil {
			f.conns = make(map[net.Conn]struct{})
		}
		f.conns[c] = struct{}{}
		return
	}
	delete(f.conns, c)
}

func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}
