package wire

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends r encoded as JSON, exactly as encoding/json would encode
// it (same fields, order and omissions). Lock replies are the hottest path of
// the server, and reflection-free encoding is several times cheaper.
func (r *LockResponse) AppendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = strconv.AppendInt(b, int64(r.Type), 10)
	b = append(b, `,"servedFrom":`...)
	b = AppendString(b, r.ServedFrom)
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = AppendString(b, r.Error)
	}
	if r.FencingToken != nil {
		b = append(b, `,"fencingToken":`...)
		b = strconv.AppendInt(b, *r.FencingToken, 10)
	}
	if r.Owner != "" {
		b = append(b, `,"owner":`...)
		b = AppendString(b, r.Owner)
	}
	if r.Expires != nil {
		b = append(b, `,"expires":{"n":`...)
		b = strconv.AppendInt(b, int64(r.Expires.N), 10)
		b = append(b, `,"l":`...)
		b = strconv.AppendInt(b, r.Expires.L, 10)
		b = append(b, `,"c":`...)
		b = strconv.AppendInt(b, int64(r.Expires.C), 10)
		b = append(b, '}')
	}
	if r.AcquiredAt != "" {
		b = append(b, `,"acquiredAt":`...)
		b = AppendString(b, r.AcquiredAt)
	}
	if r.ExpiresAt != "" {
		b = append(b, `,"expiresAt":`...)
		b = AppendString(b, r.ExpiresAt)
	}
	if r.ExpiresInMs != nil {
		b = append(b, `,"expiresInMs":`...)
		b = strconv.AppendInt(b, *r.ExpiresInMs, 10)
	}
	return append(b, '}')
}

// AppendJSON appends r encoded as JSON, exactly as encoding/json would encode
// it. Every field is omitted when nil, so a comma goes before each field but
// the first written.
func (r *LockRequest) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	open := len(b)
	if r.Resource != nil {
		b = append(b, `"resource":`...)
		b = AppendString(b, *r.Resource)
	}
	if r.Owner != nil {
		if len(b) > open {
			b = append(b, ',')
		}
		b = append(b, `"owner":`...)
		b = AppendString(b, *r.Owner)
	}
	if r.ExpiresMs != nil {
		if len(b) > open {
			b = append(b, ',')
		}
		b = append(b, `"expiresMs":`...)
		b = strconv.AppendInt(b, *r.ExpiresMs, 10)
	}
	if r.Durability != nil {
		if len(b) > open {
			b = append(b, ',')
		}
		b = append(b, `"durability":`...)
		b = strconv.AppendInt(b, int64(*r.Durability), 10)
	}
	if r.WaitMs != nil {
		if len(b) > open {
			b = append(b, ',')
		}
		b = append(b, `"waitMs":`...)
		b = strconv.AppendInt(b, *r.WaitMs, 10)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped the way encoding/json
// escapes it (including <, >, & and U+2028/U+2029, and invalid UTF-8 as
// U+FFFD), so both encoders produce identical bytes.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
