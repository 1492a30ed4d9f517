package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/logging"
	"github.com/kahuna-go/kahuna/pkg/partition"
	"github.com/kahuna-go/kahuna/pkg/server"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// startServer runs a real single node in-process on free ports.
func startServer(t *testing.T, mutate ...func(*server.Config)) string {
	t.Helper()
	cfg := server.Config{
		NodeID:     "api-test",
		DataDir:    t.TempDir(),
		HTTPAddr:   "127.0.0.1:0",
		RaftAddr:   "127.0.0.1:0",
		GossipAddr: "127.0.0.1:0",
		Partitions: 3,
		Logger:     logging.Discard(),
		Raft:       partition.FastRaftTimings(),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	base := "http://" + srv.HTTPAddr()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + wire.PathReadyz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type client struct {
	t    *testing.T
	base string
}

// post sends a raw body and returns the status and decoded JSON object.
func (c client) post(path, body string) (int, map[string]any) {
	c.t.Helper()
	resp, err := http.Post(c.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decode(c.t, resp.Body)
}

func (c client) get(path string) (int, map[string]any) {
	c.t.Helper()
	resp, err := http.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decode(c.t, resp.Body)
}

func decode(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("reply is not a JSON object: %q", raw)
	}
	return m
}

// op posts a JSON-encoded request and checks the reply type.
func (c client) op(path string, req map[string]any, wantType wire.Type) map[string]any {
	c.t.Helper()
	b, _ := json.Marshal(req)
	status, m := c.post(path, string(b))
	if status != http.StatusOK || m["type"] != float64(wantType) {
		c.t.Fatalf("%s %s: status %d reply %v, want type %d", path, b, status, m, wantType)
	}
	if m["servedFrom"] != "api-test" {
		c.t.Fatalf("servedFrom = %v", m["servedFrom"])
	}
	return m
}

func keys(m map[string]any) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return fmt.Sprint(len(out), out)
}

func TestLockLifecycleOverHTTP(t *testing.T) {
	c := client{t, startServer(t)}
	for _, d := range []int{1, 0} {
		res := fmt.Sprint("orders/", d)
		lock := c.op(wire.PathTryLock, map[string]any{"resource": res, "owner": "alice", "expiresMs": 60000, "durability": d}, wire.Locked)
		tok := lock["fencingToken"].(float64)
		if tok < 1 || len(lock) != 3 {
			t.Fatalf("lock reply %v (fields %s)", lock, keys(lock))
		}
		busy := c.op(wire.PathTryLock, map[string]any{"resource": res, "owner": "bob", "expiresMs": 60000, "durability": d}, wire.Busy)
		if busy["owner"] != "alice" {
			t.Fatalf("busy reply %v", busy)
		}
		again := c.op(wire.PathTryLock, map[string]any{"resource": res, "owner": "alice", "expiresMs": 60000, "durability": d}, wire.Locked)
		if again["fencingToken"] != tok {
			t.Fatalf("idempotent retry changed the token: %v", again)
		}
		ext := c.op(wire.PathTryExtend, map[string]any{"resource": res, "owner": "alice", "expiresMs": 120000, "durability": d}, wire.Extended)
		if ext["fencingToken"] != tok {
			t.Fatalf("extend reply %v", ext)
		}
		c.op(wire.PathTryExtend, map[string]any{"resource": res, "owner": "bob", "expiresMs": 1, "durability": d}, wire.InvalidOwner)
		info := c.op(wire.PathGetInfo, map[string]any{"resource": res, "durability": d}, wire.Got)
		if info["owner"] != "alice" || info["fencingToken"] != tok {
			t.Fatalf("get-info %v", info)
		}
		in := info["expiresInMs"].(float64)
		if in < 110_000 || in > 120_000 {
			t.Fatalf("expiresInMs %v", in)
		}
		exp, err := time.Parse(time.RFC3339Nano, info["expiresAt"].(string))
		if err != nil || !strings.HasSuffix(info["expiresAt"].(string), "Z") {
			t.Fatalf("expiresAt %v: %v", info["expiresAt"], err)
		}
		hlc := info["expires"].(map[string]any)
		if int64(hlc["l"].(float64)) != exp.UnixMilli() || hlc["n"] != 0.0 || hlc["c"] != 0.0 {
			t.Fatalf("expires %v vs expiresAt %v", hlc, exp)
		}
		if _, err := time.Parse(time.RFC3339Nano, info["acquiredAt"].(string)); err != nil {
			t.Fatalf("acquiredAt %v", info["acquiredAt"])
		}
		c.op(wire.PathTryUnlock, map[string]any{"resource": res, "owner": "bob", "durability": d}, wire.InvalidOwner)
		c.op(wire.PathTryUnlock, map[string]any{"resource": res, "owner": "alice", "durability": d}, wire.Unlocked)
		c.op(wire.PathTryUnlock, map[string]any{"resource": res, "owner": "alice", "durability": d}, wire.LockDoesNotExist)
		c.op(wire.PathGetInfo, map[string]any{"resource": res, "durability": d}, wire.LockDoesNotExist)
		c.op(wire.PathTryExtend, map[string]any{"resource": res, "owner": "alice", "expiresMs": 10, "durability": d}, wire.LockDoesNotExist)
		next := c.op(wire.PathTryLock, map[string]any{"resource": res, "owner": "bob", "expiresMs": 60000, "durability": d}, wire.Locked)
		if next["fencingToken"].(float64) <= tok {
			t.Fatalf("token did not grow: %v after %v", next["fencingToken"], tok)
		}
		c.op(wire.PathForceUnlock, map[string]any{"resource": res, "durability": d}, wire.Unlocked)
		c.op(wire.PathForceUnlock, map[string]any{"resource": res, "durability": d}, wire.LockDoesNotExist)
	}
}

func TestDurabilityDefaultsToPersistent(t *testing.T) {
	c := client{t, startServer(t)}
	c.op(wire.PathTryLock, map[string]any{"resource": "d", "owner": "o", "expiresMs": 60000}, wire.Locked)
	c.op(wire.PathGetInfo, map[string]any{"resource": "d", "durability": 1}, wire.Got)
	c.op(wire.PathGetInfo, map[string]any{"resource": "d", "durability": 0}, wire.LockDoesNotExist)
	// Unknown fields are ignored.
	c.op(wire.PathGetInfo, map[string]any{"resource": "d", "color": "blue", "nested": map[string]any{"x": []int{1}}}, wire.Got)
}

// TestBadInput sends malformed requests to every endpoint and checks each
// gets a clear error and changes nothing.
func TestBadInput(t *testing.T) {
	c := client{t, startServer(t)}
	c.op(wire.PathTryLock, map[string]any{"resource": "victim", "owner": "holder", "expiresMs": 600000}, wire.Locked)

	long := func(n int) string { return strings.Repeat("x", n) }
	type tc struct {
		name    string
		path    string
		body    string
		status  int
		errPart string
	}
	var cases []tc
	lockPaths := []string{wire.PathTryLock, wire.PathTryExtend, wire.PathTryUnlock, wire.PathGetInfo, wire.PathForceUnlock}
	for _, p := range lockPaths {
		cases = append(cases,
			tc{"empty body", p, "", 400, "empty"},
			tc{"not JSON", p, "{resource: victim", 400, "not valid JSON"},
			tc{"invalid UTF-8", p, "{\"resource\":\"vic\xfftim\",\"owner\":\"o\",\"expiresMs\":5}", 400, "UTF-8"},
			tc{"array body", p, `[1,2]`, 200, "JSON object"},
			tc{"string body", p, `"victim"`, 200, "JSON object"},
			tc{"missing resource", p, `{"owner":"o","expiresMs":5}`, 200, "resource is required"},
			tc{"empty resource", p, `{"resource":"","owner":"o","expiresMs":5}`, 200, "resource is required"},
			tc{"resource not a string", p, `{"resource":42,"owner":"o","expiresMs":5}`, 200, "resource must be a string"},
			tc{"resource too long", p, `{"resource":"` + long(1025) + `","owner":"o","expiresMs":5}`, 200, "1024"},
			tc{"durability 2", p, `{"resource":"victim","owner":"holder","expiresMs":5,"durability":2}`, 200, "durability"},
			tc{"durability a string", p, `{"resource":"victim","owner":"holder","expiresMs":5,"durability":"1"}`, 200, "durability must be an integer"},
		)
	}
	for _, p := range []string{wire.PathTryLock, wire.PathTryExtend, wire.PathTryUnlock} {
		cases = append(cases,
			tc{"missing owner", p, `{"resource":"victim","expiresMs":5}`, 200, "owner is required"},
			tc{"owner too long", p, `{"resource":"victim","owner":"` + long(257) + `","expiresMs":5}`, 200, "256"},
			tc{"owner a number", p, `{"resource":"victim","owner":7,"expiresMs":5}`, 200, "owner must be a string"},
		)
	}
	for _, p := range []string{wire.PathTryLock, wire.PathTryExtend} {
		cases = append(cases,
			tc{"missing expiresMs", p, `{"resource":"victim","owner":"holder"}`, 200, "expiresMs is required"},
			tc{"zero expiresMs", p, `{"resource":"victim","owner":"holder","expiresMs":0}`, 200, "expiresMs must be between"},
			tc{"negative expiresMs", p, `{"resource":"victim","owner":"holder","expiresMs":-1}`, 200, "expiresMs must be between"},
			tc{"huge expiresMs", p, `{"resource":"victim","owner":"holder","expiresMs":2147483648}`, 200, "expiresMs must be between"},
			tc{"enormous expiresMs", p, `{"resource":"victim","owner":"holder","expiresMs":1e300}`, 200, "expiresMs must be an integer"},
			tc{"fractional expiresMs", p, `{"resource":"victim","owner":"holder","expiresMs":1.5}`, 200, "expiresMs must be an integer"},
			tc{"expiresMs a string", p, `{"resource":"victim","owner":"holder","expiresMs":"100"}`, 200, "expiresMs must be an integer"},
		)
	}
	cases = append(cases,
		tc{"negative waitMs", wire.PathTryLock, `{"resource":"victim","owner":"x","expiresMs":5,"waitMs":-1}`, 200, "waitMs"},
		tc{"huge waitMs", wire.PathTryLock, `{"resource":"victim","owner":"x","expiresMs":5,"waitMs":3600001}`, 200, "waitMs"},
		tc{"10 MB body", wire.PathTryLock, `{"resource":"` + long(10<<20) + `"}`, 413, "1 MiB"},
		tc{"unknown path", "/v1/locks/try-steal", `{}`, 404, "no such endpoint"},
	)
	for _, tc := range cases {
		t.Run(tc.path+"/"+tc.name, func(t *testing.T) {
			status, m := c.post(tc.path, tc.body)
			msg, _ := m["error"].(string)
			if status != tc.status || m["type"] != float64(wire.InvalidInput) || !strings.Contains(msg, tc.errPart) {
				t.Fatalf("status %d reply %v; want status %d, type 100, error containing %q", status, m, tc.status, tc.errPart)
			}
		})
	}
	// The limit is exact, whether the length is declared up front or the
	// body is chunked: 1 MiB is served, one byte more is refused.
	padded := func(n int) string {
		b := `{"resource":"victim"}`
		return b + strings.Repeat(" ", n-len(b))
	}
	for _, chunked := range []bool{false, true} {
		for _, size := range []int{wire.MaxBodyBytes, wire.MaxBodyBytes + 1} {
			t.Run(fmt.Sprintf("body of %d bytes, chunked %v", size, chunked), func(t *testing.T) {
				var body io.Reader = strings.NewReader(padded(size))
				if chunked {
					body = io.MultiReader(body) // hides the length from net/http
				}
				resp, err := http.Post(c.base+wire.PathGetInfo, "application/json", body)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				m := decode(t, resp.Body)
				want, wantType := http.StatusOK, float64(wire.Got)
				if size > wire.MaxBodyBytes {
					want, wantType = http.StatusRequestEntityTooLarge, float64(wire.InvalidInput)
				}
				if resp.StatusCode != want || m["type"] != wantType {
					t.Fatalf("status %d reply %v; want %d and type %v", resp.StatusCode, m, want, wantType)
				}
			})
		}
	}
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(m, c.base+wire.PathTryLock, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got := decode(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || got["type"] != float64(wire.InvalidInput) || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("%s try-lock: %d %v allow %q", m, resp.StatusCode, got, resp.Header.Get("Allow"))
		}
	}
	// Nothing above changed the lock.
	info := c.op(wire.PathGetInfo, map[string]any{"resource": "victim"}, wire.Got)
	if info["owner"] != "holder" || info["fencingToken"] != 1.0 || info["expiresInMs"].(float64) < 590_000 {
		t.Fatalf("bad input changed the lock: %v", info)
	}
	_, list := c.get(wire.PathList)
	if locks := list["locks"].([]any); len(locks) != 1 {
		t.Fatalf("bad input created locks: %v", list)
	}
}

func TestListPagesAcrossPartitions(t *testing.T) {
	c := client{t, startServer(t)}
	want := []string{}
	for i := range 25 {
		res := fmt.Sprintf("app/%02d", i)
		want = append(want, res)
		c.op(wire.PathTryLock, map[string]any{"resource": res, "owner": "o" + res, "expiresMs": 60000}, wire.Locked)
	}
	c.op(wire.PathTryLock, map[string]any{"resource": "other", "owner": "o", "expiresMs": 60000}, wire.Locked)
	c.op(wire.PathTryLock, map[string]any{"resource": "app/eph", "owner": "o", "expiresMs": 60000, "durability": 0}, wire.Locked)

	var got []string
	cursor := ""
	pages := 0
	for {
		status, m := c.get(wire.PathList + "?prefix=app/&limit=10&cursor=" + cursor)
		if status != 200 || m["type"] != float64(wire.Got) {
			t.Fatalf("list: %d %v", status, m)
		}
		pages++
		for _, l := range m["locks"].([]any) {
			e := l.(map[string]any)
			if e["owner"] != "o"+e["resource"].(string) || e["durability"] != 1.0 || e["fencingToken"].(float64) < 1 || e["expiresInMs"].(float64) <= 0 {
				t.Fatalf("entry %v", e)
			}
			got = append(got, e["resource"].(string))
		}
		next, ok := m["nextCursor"].(string)
		if !ok {
			break
		}
		cursor = next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 3 {
		t.Fatalf("%d pages: %v", pages, got)
	}
	_, m := c.get(wire.PathList + "?durability=0")
	if locks := m["locks"].([]any); len(locks) != 1 || locks[0].(map[string]any)["resource"] != "app/eph" {
		t.Fatalf("ephemeral list %v", m)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "durability=5", "cursor=%%%", "cursor=!!"} {
		status, m := c.get(wire.PathList + "?" + q)
		if status != 200 || m["type"] != float64(wire.InvalidInput) || m["error"] == "" {
			t.Fatalf("list?%s: %d %v", q, status, m)
		}
	}
}

// TestBlockingAcquire covers waitMs over HTTP: a waiter is granted the lock
// when it is released, and a waiter whose client hangs up is not.
func TestBlockingAcquire(t *testing.T) {
	c := client{t, startServer(t)}
	c.op(wire.PathTryLock, map[string]any{"resource": "q", "owner": "first", "expiresMs": 600000}, wire.Locked)

	// A client that gives up after 200 ms.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.base+wire.PathTryLock,
		strings.NewReader(`{"resource":"q","owner":"quitter","expiresMs":600000,"waitMs":60000}`))
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("request outlived its context")
	}

	done := make(chan map[string]any)
	go func() {
		_, m := c.post(wire.PathTryLock, `{"resource":"q","owner":"patient","expiresMs":600000,"waitMs":10000}`)
		done <- m
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	c.op(wire.PathTryUnlock, map[string]any{"resource": "q", "owner": "first"}, wire.Unlocked)
	m := <-done
	if m["type"] != float64(wire.Locked) || time.Since(start) > 2*time.Second {
		t.Fatalf("waiter: %v after %v", m, time.Since(start))
	}
	info := c.op(wire.PathGetInfo, map[string]any{"resource": "q"}, wire.Got)
	if info["owner"] != "patient" {
		t.Fatalf("lock went to %v, not the waiter that stayed", info["owner"])
	}
	// A wait that runs out answers Busy with the holder.
	begin := time.Now()
	busy := c.op(wire.PathTryLock, map[string]any{"resource": "q", "owner": "late", "expiresMs": 1000, "waitMs": 300}, wire.Busy)
	if busy["owner"] != "patient" || time.Since(begin) < 300*time.Millisecond {
		t.Fatalf("timed-out wait: %v after %v", busy, time.Since(begin))
	}
}

func TestHealthAndStatus(t *testing.T) {
	c := client{t, startServer(t)}
	if status, m := c.get(wire.PathLivez); status != 200 || m["status"] != "live" {
		t.Fatalf("livez %d %v", status, m)
	}
	if status, m := c.get(wire.PathReadyz); status != 200 || m["status"] != "ready" {
		t.Fatalf("readyz %d %v", status, m)
	}
	for _, p := range []string{wire.PathLivez, wire.PathReadyz} {
		resp, err := http.Head(c.base + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("HEAD %s: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
	status, m := c.get(wire.PathClusterStatus)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	var st wire.ClusterStatus
	b, _ := json.Marshal(m)
	json.Unmarshal(b, &st)
	if st.Node.ID != "api-test" || len(st.Nodes) != 1 || len(st.Partitions) != 3 {
		t.Fatalf("status %+v", st)
	}
	for _, p := range st.Partitions {
		if p.Leader != "api-test" || p.Term < 1 || p.CommitIndex < 1 || p.AppliedIndex < 1 || fmt.Sprint(p.Voters) != "[api-test]" || p.State != "leader" {
			t.Fatalf("partition %+v", p)
		}
	}
	var buf bytes.Buffer
	json.Indent(&buf, b, "", " ")
	t.Logf("status: %s", buf.String())
}

// TestBodyTimeoutSparesWaiters checks both sides of the body timeout: a
// client trickling its body is cut off, while a request that has sent its
// body and waits for a lock far longer than the timeout is not.
func TestBodyTimeoutSparesWaiters(t *testing.T) {
	base := startServer(t, func(c *server.Config) { c.BodyTimeout = 300 * time.Millisecond })
	c := client{t, base}
	c.op(wire.PathTryLock, map[string]any{"resource": "slow", "owner": "holder", "expiresMs": 60000}, wire.Locked)
	done := make(chan map[string]any)
	go func() {
		_, m := c.post(wire.PathTryLock, `{"resource":"slow","owner":"waiter","expiresMs":60000,"waitMs":5000}`)
		done <- m
	}()
	time.Sleep(1200 * time.Millisecond) // four body timeouts
	c.op(wire.PathTryUnlock, map[string]any{"resource": "slow", "owner": "holder"}, wire.Unlocked)
	if m := <-done; m["type"] != float64(wire.Locked) {
		t.Fatalf("waiter after a long wait: %v", m)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n{\"resource\":", wire.PathTryLock)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	reply, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(reply), "HTTP/1.1 400") || time.Since(start) > 3*time.Second {
		t.Fatalf("trickled body after %v: %q", time.Since(start), reply)
	}
}
