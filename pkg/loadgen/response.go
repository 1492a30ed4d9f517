package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
)

// maxBodyBytes caps a reply body; a Kahuna lock reply is a few hundred bytes,
// so anything near this is a broken or hostile peer.
const maxBodyBytes = 4 << 20

var errMalformed = errors.New("malformed HTTP response")

// readResponse reads one reply and reports whether the connection may be
// reused for the next request.
func (c *Client) readResponse() (Response, bool, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return Response{}, false, fmt.Errorf("read status line: %w", err)
	}
	status, http10, ok := parseStatusLine(line)
	if !ok {
		return Response{}, false, fmt.Errorf("status line %q: %w", trimCRLF(line), errMalformed)
	}
	keepAlive := !http10
	contentLength := int64(-1)
	chunked := false
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return Response{}, false, fmt.Errorf("read header: %w", err)
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return Response{}, false, fmt.Errorf("header %q: %w", line, errMalformed)
		}
		name, value := line[:colon], trimSpace(line[colon+1:])
		switch {
		case equalFold(name, "content-length"):
			n, ok := parseDecimal(value)
			if !ok {
				return Response{}, false, fmt.Errorf("content-length %q: %w", value, errMalformed)
			}
			contentLength = n
		case equalFold(name, "transfer-encoding"):
			chunked = hasToken(value, "chunked")
		case equalFold(name, "connection"):
			if hasToken(value, "close") {
				keepAlive = false
			} else if hasToken(value, "keep-alive") {
				keepAlive = true
			}
		}
	}

	var body []byte
	switch {
	case status < 200 || status == 204 || status == 304:
		body = c.body[:0]
	case chunked:
		body, err = c.readChunked()
	case contentLength >= 0:
		body, err = c.readN(contentLength)
	default:
		// No length: the body runs to EOF and the connection is spent.
		body, err = c.readToEOF()
		keepAlive = false
	}
	if err != nil {
		return Response{}, false, err
	}
	return Response{Status: status, Body: body}, keepAlive, nil
}

func (c *Client) readN(n int64) ([]byte, error) {
	if n > maxBodyBytes {
		return nil, fmt.Errorf("body of %d bytes: %w", n, errMalformed)
	}
	c.body = slices.Grow(c.body[:0], int(n))[:n]
	if _, err := io.ReadFull(c.br, c.body); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return c.body, nil
}

func (c *Client) readChunked() ([]byte, error) {
	body := c.body[:0]
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return nil, fmt.Errorf("read chunk size: %w", err)
		}
		size, ok := parseChunkSize(line)
		if !ok || len(body)+size > maxBodyBytes {
			return nil, fmt.Errorf("chunk size %q: %w", trimCRLF(line), errMalformed)
		}
		if size == 0 {
			break
		}
		n := len(body)
		body = slices.Grow(body, size)[:n+size]
		if _, err := io.ReadFull(c.br, body[n:]); err != nil {
			return nil, fmt.Errorf("read chunk: %w", err)
		}
		if err := c.readEmptyLine(); err != nil {
			return nil, err
		}
	}
	// Trailers, if any, end with an empty line.
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return nil, fmt.Errorf("read trailer: %w", err)
		}
		if len(trimCRLF(line)) == 0 {
			break
		}
	}
	c.body = body
	return body, nil
}

func (c *Client) readEmptyLine() error {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read chunk end: %w", err)
	}
	if len(trimCRLF(line)) != 0 {
		return fmt.Errorf("chunk end %q: %w", line, errMalformed)
	}
	return nil
}

func (c *Client) readToEOF() ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(c.br, maxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxBodyBytes {
		return nil, fmt.Errorf("body over %d bytes: %w", maxBodyBytes, errMalformed)
	}
	c.body = body
	return body, nil
}

// parseStatusLine accepts "HTTP/1.x NNN reason".
func parseStatusLine(line []byte) (status int, http10, ok bool) {
	line = trimCRLF(line)
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, false
	}
	if len(line) > 12 && line[12] != ' ' {
		return 0, false, false
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, false, false
		}
		status = status*10 + int(d-'0')
	}
	return status, line[7] == '0', true
}

// parseChunkSize reads the hex size of a chunk-size line, ignoring extensions.
func parseChunkSize(line []byte) (int, bool) {
	line = trimCRLF(line)
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = trimSpace(line)
	if len(line) == 0 || len(line) > 8 {
		return 0, false
	}
	n := 0
	for _, c := range line {
		switch {
		case c >= '0' && c <= '9':
			n = n<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			n = n<<4 | int(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// equalFold compares an ASCII header name with a lower-case literal.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated header value holds token,
// ignoring case.
func hasToken(value []byte, token string) bool {
	for len(value) > 0 {
		part := value
		if i := bytes.IndexByte(value, ','); i >= 0 {
			part, value = value[:i], value[i+1:]
		} else {
			value = nil
		}
		if equalFold(trimSpace(part), token) {
			return true
		}
	}
	return false
}

func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
