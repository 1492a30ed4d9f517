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

// serverReplies are replies of every outcome shaped as the server makes
// them; the fast path must take each one as AppendJSON writes it.
var serverReplies = []LockResponse{
	{Type: Locked, ServedFrom: "node-1", FencingToken: i64(42)},
	{Type: Busy, ServedFrom: "node-1", Owner: "Zm9vYmFyYmF6cXV4MTIzNA=="},
	{Type: Extended, ServedFrom: "node-2", FencingToken: i64(7)},
	{Type: Unlocked, ServedFrom: "node-3"},
	{Type: Got, ServedFrom: "node-1", Owner: "o", FencingToken: i64(9), Expires: &HLC{L: 1767323105006},
		AcquiredAt: "2026-01-02T03:04:05.006Z", ExpiresAt: "2026-01-02T03:05:05.006Z", ExpiresInMs: i64(60000)},
	{Type: LockDoesNotExist, ServedFrom: "node-1"},
	{Type: InvalidOwner, ServedFrom: "node-1"},
	{Type: InvalidInput, ServedFrom: "node-1", Error: "the lock service rejected the try-lock command"},
	{Type: MustRetry, ServedFrom: "node-1", Error: "router: partition 3 has no leader"},
	{Type: Errored, ServedFrom: "node-1", Error: "unexpected outcome 12"},
}

var replySeeds = []string{
	`{"type":0,"servedFrom":"n1","fencingToken":42}`,
	` { "type" : 4 , "servedFrom" : "ü" , "expires" : { "n" : 0 , "l" : -5 , "c" : 0 } , "expiresInMs" : -0 } `,
	`{}`, `null`, `[]`, `"x"`, `0`, `{"type":null,"servedFrom":null,"fencingToken":null,"expires":null}`,
	`{"type":1,"type":2}`, `{"owner":"a","owner":null}`, `{"fencingToken":1,"fencingToken":null}`,
	`{"expires":{"n":1},"expires":{"l":2}}`, `{"expires":{"n":1},"expires":null,"expires":{"l":2}}`,
	`{"expires":{}}`, `{"expires":{"l":null}}`, `{"expires":{"x":1}}`, `{"expires":{"L":1}}`, `{"expires":[]}`,
	`{"expires":{"l":1,}}`, `{"expires":{"l":1}`, `{"expires":1}`,
	`{"Type":1}`, `{"servedfrom":"x"}`, `{"extra":{"nested":[1,2]},"type":1}`,
	`{"servedFrom":"esc\"aped"}`, `{"owner":"a\u00e9"}`, "{\"owner\":\"bad\xff\"}", "{\"owner\":\"tab\there\"}",
	`{"type":1.5}`, `{"type":1e3}`, `{"type":01}`, `{"type":-1}`, `{"type":"1"}`, `{"type":true}`,
	`{"fencingToken":9223372036854775807}`, `{"fencingToken":9223372036854775808}`, `{"expiresInMs":-9223372036854775808}`,
	`{"fencingToken":"100"}`, `{"servedFrom":1}`, `{"type":0} trailing`, `{"type":0,}`, `{"type":0`, `{`, ``,
}

func equalReplies(a, b LockResponse) bool { return reflect.DeepEqual(a, b) }

// TestDecodeLockResponseMatchesEncodingJSON checks DecodeLockResponse
// against encoding/json on replies the fast path takes and ones it must
// hand over.
func TestDecodeLockResponseMatchesEncodingJSON(t *testing.T) {
	seeds := append([]string(nil), replySeeds...)
	for _, r := range serverReplies {
		seeds = append(seeds, string(r.AppendJSON(nil)))
	}
	fastTaken := 0
	for _, s := range seeds {
		var want, got LockResponse
		wantErr := json.Unmarshal([]byte(s), &want)
		gotErr := DecodeLockResponse([]byte(s), &got)
		if (wantErr == nil) != (gotErr == nil) || !equalReplies(got, want) {
			t.Errorf("%q: got %+v (%v), encoding/json %+v (%v)", s, got, gotErr, want, wantErr)
		}
		if wantErr != nil && gotErr.Error() != wantErr.Error() {
			t.Errorf("%q: error %q, encoding/json %q", s, gotErr, wantErr)
		}
		var fast LockResponse
		if decodeReply([]byte(s), &fast) {
			fastTaken++
		}
	}
	if fastTaken < len(serverReplies)+10 {
		t.Fatalf("fast path took only %d seed replies", fastTaken)
	}
}

// TestDecodeLockResponseFastPathTakesServerReplies: replies as the server
// writes them never need reflection.
func TestDecodeLockResponseFastPathTakesServerReplies(t *testing.T) {
	for _, want := range serverReplies {
		body := want.AppendJSON(nil)
		var got LockResponse
		if !decodeReply(body, &got) {
			t.Errorf("fast path refused %s", body)
			continue
		}
		if !equalReplies(got, want) {
			t.Errorf("%s: decoded %+v, want %+v", body, got, want)
		}
	}
}

func FuzzDecodeLockResponse(f *testing.F) {
	for _, s := range replySeeds {
		f.Add([]byte(s))
	}
	for _, r := range serverReplies {
		f.Add(r.AppendJSON(nil))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast LockResponse
		if !decodeReply(data, &fast) {
			return
		}
		var want LockResponse
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%q: fast path accepted what encoding/json rejects: %v", data, err)
		}
		if !equalReplies(fast, want) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", data, fast, want)
		}
	})
}

func BenchmarkDecodeLockResponse(b *testing.B) {
	for _, c := range []struct {
		name string
		r    LockResponse
	}{{"locked", serverReplies[0]}, {"unlocked", serverReplies[3]}, {"got", serverReplies[4]}} {
		body := c.r.AppendJSON(nil)
		b.Run(c.name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r LockResponse
				DecodeLockResponse(body, &r)
			}
		})
		b.Run(c.name+"/encoding/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r LockResponse
				json.Unmarshal(body, &r)
			}
		})
	}
}
