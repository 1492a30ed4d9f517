// Package loadgen drives Kahuna's REST API as hard as it can while spending
// as little CPU as possible: the load generator usually shares a small
// machine with the server it measures, so every cycle it burns is a cycle the
// server does not get.
package loadgen

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// readBufferSize holds a whole Kahuna reply (status line, headers and body)
// so a reply costs one read syscall.
const readBufferSize = 8 << 10

// defaultTimeout bounds dialing and each request when none is configured.
const defaultTimeout = 10 * time.Second

// Client is a minimal HTTP/1.1 keep-alive client over one TCP connection,
// or one TLS connection over it. net/http allocates and locks far more per
// request than a lock call is worth; this client reuses its buffers and does
// one write and usually one read per request. With TLS the handshake is done
// once, when the connection is dialed; the connection then stays open for
// request after request, each costing only its records' encryption. It is
// not safe for concurrent use: each worker owns one.
type Client struct {
	addr    string // host:port to dial
	host    string // Host header value
	timeout time.Duration
	tls     *tls.Config // nil: plain TCP
	auth    string      // "Authorization: Bearer <token>\r\n", or empty

	conn  net.Conn
	br    *bufio.Reader
	req   []byte // request bytes, reused
	body  []byte // response body, reused
	dials int
	// handshakes counts completed TLS handshakes; resumed of them resumed
	// an earlier session (no certificate exchange).
	handshakes, resumed int
}

// ClientOptions are a Client's settings besides its address.
type ClientOptions struct {
	// Timeout bounds dialing (with the TLS handshake) and each request;
	// zero means 10 s.
	Timeout time.Duration
	// TLS, when set, runs every connection over TLS with this config. It
	// must name the server (ServerName) unless it skips verification, and
	// should have a ClientSessionCache so that a connection dialed again
	// resumes its session instead of a full handshake. The client speaks
	// HTTP/1.1 whatever NextProtos says.
	TLS *tls.Config
	// Token, when set, is sent as "Authorization: Bearer <Token>" with
	// every request.
	Token string
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
	return NewClientWith(addr, host, ClientOptions{Timeout: timeout})
}

// NewClientWith is NewClient with TLS and a bearer token as well.
func NewClientWith(addr, host string, o ClientOptions) *Client {
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	c := &Client{addr: addr, host: host, timeout: o.Timeout}
	if o.TLS != nil {
		c.tls = o.TLS.Clone()
		c.tls.NextProtos = []string{"http/1.1"}
	}
	if o.Token != "" {
		c.auth = "Authorization: Bearer " + o.Token + "\r\n"
	}
	return c
}

// Dials reports how many connections the client has opened.
func (c *Client) Dials() int { return c.dials }

// Handshakes reports how many TLS handshakes the client completed and how
// many of them resumed a session.
func (c *Client) Handshakes() (total, resumed int) { return c.handshakes, c.resumed }

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
	c.req = appendPost(c.req[:0], path, c.host, c.auth, body)
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
	if c.tls != nil {
		if conn, err = c.handshake(conn, deadline); err != nil {
			return err
		}
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, readBufferSize)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

// handshake runs TLS on a dialed connection, bounded by deadline, and
// closes it when the handshake fails.
func (c *Client) handshake(conn net.Conn, deadline time.Time) (net.Conn, error) {
	tc := tls.Client(conn, c.tls)
	if err := tc.SetDeadline(deadline); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("TLS to %s: set deadline: %w", c.addr, err)
	}
	if err := tc.Handshake(); err != nil {
		_ = conn.Close()
		return nil, handshakeError(c.addr, err)
	}
	c.handshakes++
	if tc.ConnectionState().DidResume {
		c.resumed++
	}
	return tc, nil
}

// handshakeError says what a failed handshake most likely means.
func handshakeError(addr string, err error) error {
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	switch {
	case errors.As(err, &verify):
		return fmt.Errorf("TLS handshake with %s: the server's certificate is not trusted (wrong CA?): %w", addr, err)
	case errors.As(err, &record):
		return fmt.Errorf("TLS handshake with %s: the server does not speak TLS (http:// endpoint?): %w", addr, err)
	}
	return fmt.Errorf("TLS handshake with %s: %w", addr, err)
}

// ValidToken reports why token cannot go into an Authorization header, or
// nil: it must be printable ASCII without spaces around it, so that it can
// neither break the header nor be trimmed by the server.
func ValidToken(token string) error {
	if strings.TrimSpace(token) != token {
		return errors.New("token has leading or trailing blanks")
	}
	for i := 0; i < len(token); i++ {
		if b := token[i]; b < 0x20 || b >= 0x7f {
			return fmt.Errorf("token has a control or non-ASCII byte at offset %d", i)
		}
	}
	return nil
}

// appendPost formats a complete POST request with appends only: fmt would
// allocate and parse a format string on every request. auth is a complete
// header line (with its CRLF) or empty.
func appendPost(dst []byte, path, host, auth string, body []byte) []byte {
	dst = append(dst, "POST "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	dst = append(dst, auth...)
	dst = append(dst, "Content-Type: application/json\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}
