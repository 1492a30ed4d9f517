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

func strp(s string) *string { return &s }

func intp(v int) *int { return &v }

func TestAppendLockRequestMatchesEncodingJSON(t *testing.T) {
	cases := []LockRequest{
		{},
		{Resource: strp("r")},
		{Owner: strp("o")},
		{WaitMs: i64(0)},
		{Durability: intp(0), WaitMs: i64(5)},
		{Resource: strp("db-migration"), Owner: strp("Zm9vYmFyYmF6cXV4MTIzNA=="), ExpiresMs: i64(60000), Durability: intp(1)},
		{Resource: strp("jobs/ü"), Owner: strp("o"), ExpiresMs: i64(1000), Durability: intp(0), WaitMs: i64(30000)},
		{Resource: strp(""), Owner: strp(""), ExpiresMs: i64(-9223372036854775808), Durability: intp(-1), WaitMs: i64(9223372036854775807)},
		{Resource: strp("<b>&\"\\\n\x00\u2028bad\xff"), Owner: strp("a\xc3")},
	}
	for _, c := range cases {
		want, err := json.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
		// Appending keeps what the buffer held.
		if got := c.AppendJSON([]byte("x")); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("appended to a prefix: %s", got)
		}
	}
}

// FuzzAppendLockRequest sets the fields that set's low five bits select.
func FuzzAppendLockRequest(f *testing.F) {
	f.Add(uint8(0x1f), "res", "owner", int64(1000), 1, int64(5))
	f.Add(uint8(0x0b), "ü<&>", "\x00\xff", int64(-1), -7, int64(0))
	f.Add(uint8(0x10), "", "", int64(0), 0, int64(-9223372036854775808))
	f.Fuzz(func(t *testing.T, set uint8, resource, owner string, expiresMs int64, durability int, waitMs int64) {
		var r LockRequest
		if set&1 != 0 {
			r.Resource = &resource
		}
		if set&2 != 0 {
			r.Owner = &owner
		}
		if set&4 != 0 {
			r.ExpiresMs = &expiresMs
		}
		if set&8 != 0 {
			r.Durability = &durability
		}
		if set&16 != 0 {
			r.WaitMs = &waitMs
		}
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("%+v:\n got %s\nwant %s", r, got, want)
		}
	})
}

func BenchmarkAppendLockRequest(b *testing.B) {
	r := LockRequest{Resource: strp("bench-1234"), Owner: strp("kahuna-bench-1-7"), ExpiresMs: i64(10000), Durability: intp(1)}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		var body []byte
		for b.Loop() {
			// A buffer of its own per request, sized as the client does.
			body = r.AppendJSON(make([]byte, 0, 96+len(*r.Resource)+len(*r.Owner)))
		}
		_ = body
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(&r)
		}
	})
}
