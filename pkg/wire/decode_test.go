package wire

import (
	"encoding/json"
	"reflect"
	"testing"
)

var decodeSeeds = []string{
	`{"resource":"a","owner":"b","expiresMs":1000,"durability":1}`,
	`{"resource":"a","owner":"b","expiresMs":1000,"durability":0,"waitMs":5}`,
	` { "resource" : "ü/x" , "owner":"o" } `,
	`{}`, `null`, `[]`, `"x"`, `{"resource":null,"durability":null}`,
	`{"resource":"a","resource":"b"}`,
	`{"Resource":"case"}`, `{"extra":{"nested":[1,2]},"resource":"a"}`,
	`{"resource":"esc\"aped"}`, `{"resource":"a\u00e9"}`, "{\"resource\":\"bad\xff\"}",
	`{"expiresMs":1.5}`, `{"expiresMs":1e3}`, `{"expiresMs":-0}`, `{"expiresMs":01}`,
	`{"expiresMs":9223372036854775807}`, `{"expiresMs":9223372036854775808}`,
	`{"expiresMs":"100"}`, `{"durability":true}`, `{"resource":1}`,
	`{"resource":"a"} trailing`, `{"resource":"a",}`, `{"resource":"a"`, `{`, ``,
	"{\"resource\":\"tab\there\"}",
}

func equalRequests(a, b LockRequest) bool { return reflect.DeepEqual(a, b) }

// TestDecodeLockRequestMatchesEncodingJSON checks the fast path against
// encoding/json on bodies it takes and bodies it must hand over.
func TestDecodeLockRequestMatchesEncodingJSON(t *testing.T) {
	fastTaken := 0
	for _, s := range decodeSeeds {
		var want, got LockRequest
		wantErr := json.Unmarshal([]byte(s), &want)
		gotErr := DecodeLockRequest([]byte(s), &got)
		if (wantErr == nil) != (gotErr == nil) || !equalRequests(got, want) {
			t.Errorf("%q: got %+v (%v), encoding/json %+v (%v)", s, got, gotErr, want, wantErr)
		}
		var fast LockRequest
		if decodeFlat([]byte(s), &fast) {
			fastTaken++
		}
	}
	if fastTaken < 5 {
		t.Fatalf("fast path took only %d seed bodies", fastTaken)
	}
}

func FuzzDecodeLockRequest(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast LockRequest
		if !decodeFlat(data, &fast) {
			return
		}
		var want LockRequest
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%q: fast path accepted what encoding/json rejects: %v", data, err)
		}
		if !equalRequests(fast, want) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", data, fast, want)
		}
	})
}

func BenchmarkDecodeLockRequest(b *testing.B) {
	body := []byte(`{"resource":"bench-1234","owner":"kahuna-bench-1-7","expiresMs":10000,"durability":1}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r LockRequest
			DecodeLockRequest(body, &r)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r LockRequest
			json.Unmarshal(body, &r)
		}
	})
}
