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
		if r.Type != resp.Type || r.HasToken != hasToken || (hasToken && r.Token != *resp.FencingToken) {
			t.Fatalf("%s: got %+v", b, r)
		}
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
