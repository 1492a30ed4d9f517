package loadgen

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

func TestScanReply(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		typ      wire.Type
		token    int64
		hasToken bool
		err      bool
	}{
		{"locked", `{"type":0,"servedFrom":"n1","fencingToken":42}`, wire.Locked, 42, true, false},
		{"token first", `{"fencingToken":9007199254740993,"type":0}`, wire.Locked, 9007199254740993, true, false},
		{"max token", `{"type":0,"fencingToken":9223372036854775807}`, wire.Locked, 9223372036854775807, true, false},
		{"whitespace", " \n{ \"type\" :\t3 ,\r\n \"servedFrom\" : \"n1\" }\n", wire.Unlocked, 0, false, false},
		{"busy names holder", `{"type":1,"owner":"o\"ther","fencingToken":5}`, wire.Busy, 5, true, false},
		{"error message with braces", `{"error":"bad {\"type\":0} \\","type":100}`, wire.InvalidInput, 0, false, false},
		{"nested fields are not top level", `{"meta":{"type":4,"fencingToken":1,"x":[{"type":2}]},"type":102}`, wire.LockDoesNotExist, 0, false, false},
		{"nested after", `{"type":0,"fencingToken":3,"expires":{"n":0,"l":1700000000000,"c":0},"arr":[1,"]",{}],"ok":true,"nil":null}`, wire.Locked, 3, true, false},
		{"null token", `{"type":0,"fencingToken":null}`, wire.Locked, 0, false, false},
		{"negative token", `{"type":0,"fencingToken":-7}`, wire.Locked, -7, true, false},
		{"negative type", `{"type":-1}`, wire.Type(-1), 0, false, false},
		{"unknown type", `{"type":7}`, wire.Type(7), 0, false, false},
		{"unicode around", `{"owner":"ü\u00fc","type":103}`, wire.InvalidOwner, 0, false, false},
		{"missing type", `{"servedFrom":"n1","fencingToken":1}`, 0, 0, false, true},
		{"empty object", `{}`, 0, 0, false, true},
		{"string type", `{"type":"0"}`, 0, 0, false, true},
		{"fraction type", `{"type":0.5}`, 0, 0, false, true},
		{"exponent type", `{"type":1e2}`, 0, 0, false, true},
		{"overflowing type", `{"type":99999999999}`, 0, 0, false, true},
		{"overflowing token", `{"type":0,"fencingToken":9223372036854775808}`, wire.Locked, 0, false, false},
		{"not an object", `[{"type":0}]`, 0, 0, false, true},
		{"plain text", `404 page not found`, 0, 0, false, true},
		{"empty", ``, 0, 0, false, true},
		{"truncated", `{"type":0,"fencingToken":4`, 0, 0, false, true},
		{"unterminated string", `{"type":0,"x":"abc`, 0, 0, false, true},
		{"missing colon", `{"type" 0}`, 0, 0, false, true},
		{"garbage between fields", `{"type":0 "x":1}`, 0, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ScanReply([]byte(tt.body))
			if tt.err {
				if err == nil {
					t.Fatalf("want an error, got %+v", r)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if r.Type != tt.typ || r.Token != tt.token || r.HasToken != tt.hasToken {
				t.Fatalf("got %+v, want type %d token %d hasToken %v", r, tt.typ, tt.token, tt.hasToken)
			}
		})
	}
}

// TestScanReplyMatchesWire checks the scanner against bodies the server's
// own types produce.
func TestScanReplyMatchesWire(t *testing.T) {
	token := int64(12345)
	expires := int64(500)
	for _, resp := range []wire.LockResponse{
		{Type: wire.Locked, ServedFrom: "node-1", FencingToken: &token},
		{Type: wire.Locked, ServedFrom: "n\"ü<&>\\\u2028", FencingToken: &token},
		{Type: wire.Unlocked},
		{Type: wire.Busy, ServedFrom: "node-2", FencingToken: &token, Owner: "someone"},
		{Type: wire.Got, ServedFrom: "n", FencingToken: &token, Owner: "o", Expires: &wire.HLC{L: 1}, AcquiredAt: "2024-01-01T00:00:00.000Z", ExpiresInMs: &expires},
		{Type: wire.MustRetry, ServedFrom: "n", Error: `no leader for "x"`},
	} {
		b, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ScanReply(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		hasToken := resp.FencingToken != nil
		if r.Type != resp.Type || r.HasToken != hasToken || (hasToken && r.Token != *resp.FencingToken) ||
			r.ServedFrom == nil || DecodeServedFrom(r.ServedFrom) != resp.ServedFrom {
			t.Fatalf("%s: got %+v", b, r)
		}
	}
}

func TestScanReplyServedFrom(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		raw     string // as it appears between the quotes
		decoded string
		present bool
		err     bool // any error other than ErrNoType
	}{
		{"plain", `{"type":0,"servedFrom":"node-1","fencingToken":4}`, "node-1", "node-1", true, false},
		{"first field", `{"servedFrom":"n2","type":3}`, "n2", "n2", true, false},
		{"escaped quotes", `{"type":0,"servedFrom":"a\"b\\c\"","fencingToken":1}`, `a\"b\\c\"`, `a"b\c"`, true, false},
		{"ends in an escaped backslash", `{"type":0,"servedFrom":"n\\"}`, `n\\`, `n\`, true, false},
		{"unicode escape", `{"type":0,"servedFrom":"n\u00fc"}`, `n\u00fc`, "nü", true, false},
		{"empty name", `{"type":0,"servedFrom":""}`, "", "", true, false},
		{"whitespace", "{ \"type\" : 0 , \"servedFrom\" :\t\"n1\" }", "n1", "n1", true, false},
		{"missing", `{"type":0,"fencingToken":4}`, "", "", false, false},
		{"nested only", `{"type":0,"meta":{"servedFrom":"x","in":{"servedFrom":"y"}},"arr":[{"servedFrom":"z"}]}`, "", "", false, false},
		{"nested before and after", `{"meta":{"servedFrom":"x"},"servedFrom":"top","arr":[{"servedFrom":"z"}],"type":1}`, "top", "top", true, false},
		{"inside a string", `{"error":"\"servedFrom\":\"x\"","type":100}`, "", "", false, false},
		{"as a value", `{"owner":"servedFrom","type":1}`, "", "", false, false},
		{"null", `{"type":0,"servedFrom":null}`, "", "", false, false},
		{"number", `{"type":0,"servedFrom":7}`, "", "", false, false},
		{"object", `{"type":0,"servedFrom":{"servedFrom":"x"}}`, "", "", false, false},
		{"repeated, last wins", `{"servedFrom":"a","type":0,"servedFrom":"b"}`, "b", "b", true, false},
		{"repeated, last is null", `{"servedFrom":"a","type":0,"servedFrom":null}`, "", "", false, false},
		{"no type", `{"servedFrom":"n1","error":"boom"}`, "n1", "n1", true, false},
		{"unterminated", `{"type":0,"servedFrom":"n1`, "", "", false, true},
		{"escaped end quote only", `{"type":0,"servedFrom":"n1\"}`, "", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ScanReply([]byte(tt.body))
			if tt.err {
				if err == nil || errors.Is(err, ErrNoType) {
					t.Fatalf("want a malformed-JSON error, got %v", err)
				}
				return
			}
			if err != nil && !errors.Is(err, ErrNoType) {
				t.Fatalf("unexpected error %v", err)
			}
			if (r.ServedFrom != nil) != tt.present || string(r.ServedFrom) != tt.raw {
				t.Fatalf("got %q (present %v), want %q (present %v)", r.ServedFrom, r.ServedFrom != nil, tt.raw, tt.present)
			}
			if tt.present {
				if got := DecodeServedFrom(r.ServedFrom); got != tt.decoded {
					t.Fatalf("decoded %q, want %q", got, tt.decoded)
				}
			}
		})
	}
}

func TestDecodeServedFromInvalidEscape(t *testing.T) {
	if got := DecodeServedFrom([]byte(`a\qb`)); got != `a\qb` {
		t.Fatalf("got %q", got)
	}
}

func TestScanReplyErrNoType(t *testing.T) {
	if _, err := ScanReply([]byte(`{"servedFrom":"n"}`)); !errors.Is(err, ErrNoType) {
		t.Fatalf("got %v, want ErrNoType", err)
	}
}

func TestScanReplyDoesNotAllocate(t *testing.T) {
	body := []byte(`{"type":0,"servedFrom":"node-1","fencingToken":42,"expires":{"n":0,"l":1,"c":0}}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = ScanReply(body) }); n != 0 {
		t.Fatalf("ScanReply allocates %.0f times per call", n)
	}
}

func BenchmarkScanReply(b *testing.B) {
	body := []byte(`{"type":0,"servedFrom":"node-1","fencingToken":42}`)
	for b.Loop() {
		if _, err := ScanReply(body); err != nil {
			b.Fatal(err)
		}
	}
}
