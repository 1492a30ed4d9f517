package wire

import (
	"bytes"
	"encoding/json"
	"testing"
)

func i64(v int64) *int64 { return &v }

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	cases := []LockResponse{
		{},
		{Type: Locked, ServedFrom: "n1", FencingToken: i64(42)},
		{Type: Busy, ServedFrom: "n1", Owner: "alice"},
		{Type: MustRetry, ServedFrom: "n1", Error: "partition 3 has no leader \"yet\"\n"},
		{Type: Got, ServedFrom: "n-ü", FencingToken: i64(0), Owner: "<b>&\x00\x1f\u2028\u2029ünïcode\\", Expires: &HLC{L: 1700000000123},
			AcquiredAt: "2026-01-02T03:04:05.006Z", ExpiresAt: "2026-01-02T03:05:05.006Z", ExpiresInMs: i64(-5)},
		{Type: InvalidOwner, ServedFrom: "x", Owner: "bad\xffutf8\xc3"},
	}
	for _, c := range cases {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "\x00\x01\x7f", "<>&", "\u2028\u2029", "ü€𝄞", "\xff\xfe", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
	})
}
