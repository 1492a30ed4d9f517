// Package loadgen drives Kahuna's REST API as hard as it can while spending
// as little CPU as possible: the load generator usually shares a small
// machine with the server it measures, so every cycle it burns is a cycle the
// server does not get.
package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// readBufferSize holds a whole Kahuna reply (status line, headers and body)
// so a reply costs one read syscall.
const readBufferSize = 8 << 10

// defaultTimeout bounds dialing and each request when none is configured.
const defaultTimeout = 10 * time.Second

// Client is a minimal HTTP/1.1 keep-alive client over one TCP connection.
// net/http allocates and locks far more per request than a lock call is
// worth; this client reuses its buffers and does one write and usually one
// read per request. It is not safe for concurrent use: each worker owns one.
type Client struct {
	addr    string // host:port to dial
	host    string // Host header value
	timeout time.Duration

	conn  net.Conn
	br    *bufio.Reader
	req   []byte // request bytes, reused
	body  []byte // response body, reused
	dials int
}

// Response is one HTTP reply. Body aliases the client's buffer and is only
// valid until the next request.
type Response struct {
	Status int
	Body   []byte
}

// NewClient returns a client that dials addr (host:port) on first use and
// sends host as the Host header. timeout bounds dialing and each request;
// zero means 10 s.
func NewClient(addr, host string, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return &Client{addr: addr, host: host, timeout: timeout}
}

// Dials reports how many connections the client has opened.
func (c *Client) Dials() int { return c.dials }

// Close drops the connection; the next request dials a new one.
func (c *Client) Close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// Post sends a JSON body to path and reads the reply. Any transport or
// protocol error closes the connection so the next call starts clean.
func (c *Client) Post(path string, body []byte) (Response, error) {
	return c.post(path, body, time.Time{})
}

// errDeadline means an operation's deadline passed before an attempt could
// start.
var errDeadline = errors.New("operation deadline passed")

// post is Post bounded by by as well as by the client's timeout, whichever
// comes first; a zero by means the timeout alone.
func (c *Client) post(path string, body []byte, by time.Time) (Response, error) {
	deadline := time.Now().Add(c.timeout)
	if !by.IsZero() && by.Before(deadline) {
		deadline = by
	}
	if c.conn == nil {
		if err := c.dial(deadline); err != nil {
			return Response{}, err
		}
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		c.Close()
		return Response{}, fmt.Errorf("set deadline: %w", err)
	}
	c.req = appendPost(c.req[:0], path, c.host, body)
	if _, err := c.conn.Write(c.req); err != nil {
		c.Close()
		return Response{}, fmt.Errorf("write request: %w", err)
	}
	resp, keepAlive, err := c.readResponse()
	if err != nil {
		c.Close()
		return Response{}, err
	}
	if !keepAlive {
		c.Close()
	}
	return resp, nil
}

func (c *Client) dial(deadline time.Time) error {
	timeout := time.Until(deadline)
	if timeout <= 0 {
		return fmt.Errorf("dial %s: %w", c.addr, errDeadline)
	}
	conn, err := net.DialTimeout("tcp", c.addr, timeout)
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.addr, err)
	}
	c.dials++
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, readBufferSize)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

// appendPost formats a complete POST request with appends only: fmt would
// allocate and parse a format string on every request.
func appendPost(dst []byte, path, host string, body []byte) []byte {
	dst = append(dst, "POST "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}
