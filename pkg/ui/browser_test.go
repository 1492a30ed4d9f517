package ui_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/kahuna-go/kahuna/internal/testcluster"
	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/server"
)

var docsScreenshot = flag.String("docs-screenshot", "",
	"also write TestDashboardBrowser's overview screenshot to this PNG file (to refresh docs/dashboard.png)")

// browsers are the names Chromium goes by on Debian, Ubuntu and elsewhere.
var browsers = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// findBrowser returns a Chromium to drive, or skips the test loudly: a
// missing browser must never look like a passing dashboard.
func findBrowser(t *testing.T) string {
	t.Helper()
	for _, name := range browsers {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("no Chromium found (looked for %s on PATH): apt-get install chromium to run the dashboard's browser test"+
		" (KAHUNA_REQUIRE_BROWSER=1 makes this a failure)",
		strings.Join(browsers, ", "))
	// go test shows a skip only with -v; where a browser is expected,
	// KAHUNA_REQUIRE_BROWSER=1 makes its absence a failure.
	if os.Getenv("KAHUNA_REQUIRE_BROWSER") != "" {
		t.Fatal(msg)
	}
	t.Skip("SKIP: " + msg)
	return ""
}

// dash is one headless browser tab and what it noticed on the way.
type dash struct {
	t   *testing.T
	ctx context.Context
	// accept answers the next confirm() dialogs; dialogs receives their text.
	accept  atomic.Bool
	dialogs chan string

	mu       sync.Mutex
	problems []string // uncaught exceptions, CSP violations, console errors
}

// openBrowser starts headless Chromium with a window of the given size.
func openBrowser(t *testing.T, width, height int) *dash {
	t.Helper()
	exe := findBrowser(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.WindowSize(width, height))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	d := &dash{t: t, ctx: ctx, dialogs: make(chan string, 16)}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Do starts the browser and ties its life to the context it
	// gets, so it runs without a timeout and a watchdog bounds it instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v", exe, err)
		}
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("%s did not start within 60 s", exe)
	}
	d.watch()
	// Registered after the browser's cleanup, so it runs before it.
	t.Cleanup(d.report)
	return d
}

// watch answers dialogs and collects the page's errors.
func (d *dash) watch() {
	dialogs := chromedp.Events(d.ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			select {
			case d.dialogs <- ev.Message:
			default:
			}
			// The click that opened the dialog waits for this answer.
			params := page.HandleJavaScriptDialogParams{Accept: d.accept.Load()}
			if _, err := chromedp.Call(d.ctx, page.HandleJavaScriptDialog, params); err != nil && d.ctx.Err() == nil {
				d.problem("answering a dialog: %v", err)
			}
		}
	}()
	console := chromedp.Console(d.ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			// Failed requests (401, 403, a killed node) are the
			// network's log entries, and the page shows them itself.
			if m.IsException() || m.Source == "security" || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				d.problem("%s:%d %s", m.URL, m.Line+1, m)
			}
		}
	}()
}

func (d *dash) problem(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.problems = append(d.problems, fmt.Sprintf(format, args...))
}

// report fails the test for every error the page wrote to its console.
func (d *dash) report() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.problems {
		d.t.Errorf("browser console: %s", p)
	}
}

// do runs browser steps with a timeout.
func (d *dash) do(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		d.t.Fatalf("%s: %v\npage says:\n%s", what, err, d.text())
	}
}

// eval evaluates a JavaScript expression in the page, bounded by 10 s.
func eval[T any](d *dash, js string) (T, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js))
}

// text is what the page shows, for failure messages.
func (d *dash) text() string {
	s, err := eval[string](d, `document.body ? document.body.innerText : ""`)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	if len(s) > 4000 {
		s = s[:4000] + "…"
	}
	return s
}

// waitJS waits until the JavaScript expression is true and returns how long
// that took.
func (d *dash) waitJS(what string, timeout time.Duration, js string) time.Duration {
	d.t.Helper()
	return d.eventually(what, timeout, func() (bool, string) {
		ok, err := eval[bool](d, js)
		if err != nil {
			return false, err.Error()
		}
		return ok, ""
	})
}

// eventually polls cond until it holds; got describes the last miss.
func (d *dash) eventually(what string, timeout time.Duration, cond func() (ok bool, got string)) time.Duration {
	d.t.Helper()
	start := time.Now()
	var got string
	for {
		var ok bool
		if ok, got = cond(); ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			d.t.Fatalf("timed out after %v waiting until %s (last: %s)\npage says:\n%s", timeout, what, got, d.text())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// strings evaluates an expression that yields an array of strings.
func (d *dash) strings(js string) ([]string, string) {
	v, err := eval[[]string](d, js)
	if err != nil {
		return nil, err.Error()
	}
	return v, fmt.Sprint(v)
}

// screenshot saves a full-page PNG as a test artifact and returns its bytes.
func (d *dash) screenshot(name string) []byte {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		d.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifactDir(d.t), d.t.Name()+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		d.t.Fatalf("saving screenshot: %v", err)
	}
	d.t.Logf("screenshot %s (%d KB)", path, len(png)/1024)
	return png
}

// artifactDir is where screenshots go: $KAHUNA_ARTIFACTS when set, else
// the test's artifact directory (kept by go test -artifacts, in
// -outputdir), else a temporary directory.
func artifactDir(t *testing.T) string {
	if dir := os.Getenv("KAHUNA_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("KAHUNA_ARTIFACTS: %v", err)
		}
		return dir
	}
	// T.ArtifactDir is new in Go 1.26 and go.mod says 1.25: reach it
	// through an interface so older toolchains still build the test.
	if a, ok := any(t).(interface{ ArtifactDir() string }); ok {
		return a.ArtifactDir()
	}
	return t.TempDir()
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// rowsJS lists one data attribute of a table's rows.
func rowsJS(table, attr string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#%s tbody tr')].map(r => r.dataset.%s)`, table, attr)
}

func visibleJS(id string) string {
	return fmt.Sprintf(`!document.getElementById(%s).hidden`, jsString(id))
}

func dataJS(id, attr string) string {
	return fmt.Sprintf(`document.getElementById(%s).dataset.%s`, jsString(id), attr)
}

// search fills in the lock search form and submits it.
func (d *dash) search(prefix string) {
	d.t.Helper()
	// Not chromedp.SetValue: v0.23.1 reports a failure when it sets "".
	d.do("search for "+prefix, 10*time.Second,
		chromedp.Evaluate[chromedp.Void](`document.getElementById('prefix').value = `+jsString(prefix)),
		chromedp.Click(chromedp.ID("search")))
}

// waitLocks waits until the lock table lists exactly these resources.
func (d *dash) waitLocks(what string, want ...string) {
	d.t.Helper()
	d.eventually(what, 10*time.Second, func() (bool, string) {
		got, desc := d.strings(rowsJS("locks", "resource"))
		return got != nil && slices.Equal(got, want), desc
	})
}

// forceUnlock clicks a lock's force-unlock button, answers its
// confirmation, and waits for the outcome the page shows.
func (d *dash) forceUnlock(resource string, accept bool, wantOutcome string) {
	d.t.Helper()
	for len(d.dialogs) > 0 {
		<-d.dialogs
	}
	d.accept.Store(accept)
	// Clear the last outcome so that the wait below sees this one.
	if _, err := eval[chromedp.Void](d, `document.getElementById('action-result').dataset.outcome = ''`); err != nil {
		d.t.Fatal(err)
	}
	sel := fmt.Sprintf(`#locks button[data-action="force-unlock"][data-resource=%s]`, jsString(resource))
	d.click("force-unlock of "+resource, sel)
	select {
	case msg := <-d.dialogs:
		if !strings.Contains(msg, resource) {
			d.t.Errorf("confirmation %q does not name the lock %s", msg, resource)
		}
	case <-time.After(10 * time.Second):
		d.t.Fatalf("force-unlock of %s asked for no confirmation", resource)
	}
	wants := []string{wantOutcome}
	if wantOutcome == "Unlocked" {
		// The page retries MustRetry; when a leader change hid the first
		// attempt's outcome, the retry finds the lock gone. The API check
		// after this is what counts.
		wants = append(wants, "LockDoesNotExist")
	}
	wantsJSON, _ := json.Marshal(wants)
	d.waitJS(fmt.Sprintf("the page shows the force-unlock outcome %v", wants), 25*time.Second,
		fmt.Sprintf(`%s.includes(%s) && %s`, wantsJSON, dataJS("action-result", "outcome"), visibleJS("action-result")))
	if got, _ := eval[string](d, dataJS("action-result", "outcome")); got != wantOutcome {
		d.t.Logf("force-unlock of %s showed %s: %s", resource, got, d.text())
	}
}

// click clicks the element sel finds with the mouse. The page redraws
// rows every 2 s when what they show changes, and a row redrawn between
// finding the button and clicking it fails the click before any mouse
// event: that is retried. Once a dialog opened, the click landed.
func (d *dash) click(what, sel string) {
	d.t.Helper()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(d.ctx, 20*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			return
		}
		if attempt == 3 || len(d.dialogs) > 0 || d.ctx.Err() != nil {
			d.t.Fatalf("click %s: %v\npage says:\n%s", what, err, d.text())
		}
		draws, _ := eval[string](d, `document.getElementById('locks').dataset.draws`)
		d.t.Logf("click %s: %v (lock rows drawn %s times); again", what, err, draws)
		time.Sleep(200 * time.Millisecond)
	}
}

// getInfo asks the API about a persistent lock.
func getInfo(t *testing.T, c *testutil.Client, resource string) testutil.Reply {
	t.Helper()
	return getInfoD(t, c, resource, testutil.Persistent)
}

func getInfoD(t *testing.T, c *testutil.Client, resource string, durability int) testutil.Reply {
	t.Helper()
	return retry(t, "get-info "+resource, func() (testutil.Reply, error) {
		return c.GetInfo(testcluster.Ctx(t), testutil.LockRequest{Resource: resource, Durability: durability})
	})
}

func lock(t *testing.T, c *testutil.Client, resource, owner string, durability int) testutil.Reply {
	t.Helper()
	r := retry(t, "try-lock "+resource, func() (testutil.Reply, error) {
		return c.TryLock(testcluster.Ctx(t), testutil.LockRequest{Resource: resource, Owner: owner, ExpiresMs: 600_000, Durability: durability})
	})
	if r.Type != testutil.Locked {
		t.Fatalf("try-lock %s: %v", resource, r)
	}
	return r
}

// retry repeats a request that answered MustRetry, as the contract tells
// clients to: a loaded test machine sees leader changes.
func retry(t *testing.T, what string, do func() (testutil.Reply, error)) testutil.Reply {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := do()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if r.Type != testutil.MustRetry || time.Now().After(deadline) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDashboardBrowser drives the dashboard in headless Chromium against a
// real 3-node cluster: the cluster view, lock search, paging, both
// durabilities, force-unlock, a leader's death and a lost quorum.
func TestDashboardBrowser(t *testing.T) {
	findBrowser(t)
	start := time.Now()
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	api := c.Node(1).Client() // locks go in through another node than the page's
	alpha := lock(t, api, "ui-test/alpha", "worker-1", testutil.Persistent)
	lock(t, api, "orders/2026-12-04/batch-17", "billing-worker-3", testutil.Persistent)
	lock(t, api, "deploy/prod", "ci-runner-12", testutil.Persistent)
	var pageLocks []string
	for i := range 12 {
		r := fmt.Sprintf("page/lock-%02d", i)
		lock(t, api, r, "pager", testutil.Persistent)
		pageLocks = append(pageLocks, r)
	}

	d := openBrowser(t, 1280, 900)
	base := "http://" + c.Node(0).HTTP
	// "/" redirects to the page.
	d.do("open the dashboard", 30*time.Second, chromedp.Navigate(base+"/"))
	if u, err := eval[string](d, `location.pathname`); err != nil || u != "/ui/" {
		t.Errorf("/ led to %q (%v), want /ui/", u, err)
	}

	// The cluster: three live voters, every partition with its leader.
	d.waitJS("the page lists 3 alive voters", 15*time.Second,
		`(r => r.length === 3 && r.every(x => x.dataset.state === 'alive' && x.dataset.role === 'voter'))([...document.querySelectorAll('#nodes tbody tr')])`)
	d.eventually("the page shows every partition's leader", 15*time.Second, func() (bool, string) {
		got, desc := d.strings(rowsJS("partitions", "leader"))
		want := c.Leaders()
		return slices.Equal(got, want) && !slices.Contains(want, ""), fmt.Sprintf("page %s, cluster %v", desc, want)
	})
	d.waitJS("ready, fresh, no leaderless banner", 10*time.Second,
		dataJS("ready-banner", "ready")+` === 'true' && `+dataJS("last-refresh", "state")+` === 'ok' && !`+visibleJS("leaderless-banner")+` && !`+visibleJS("stale-banner"))
	if got, _ := eval[string](d, dataJS("served-from", "node")); got != c.Node(0).ID {
		t.Errorf("page says it talks to %q, want %s", got, c.Node(0).ID)
	}
	numbers, _ := d.strings(`[...document.querySelectorAll('#partitions tbody tr')].map(r => ['term','commit','applied','locks','voters'].map(f => r.querySelector('[data-field='+f+']').textContent).join(' '))`)
	t.Logf("partitions as the page shows them (term commit applied locks voters): %q", numbers)

	// Prefix search: the lock taken through the API, with its owner and
	// fencing token.
	d.search("ui-test/")
	d.waitLocks("prefix ui-test/ finds the persistent lock", "ui-test/alpha")
	cells, _ := d.strings(`[...document.querySelectorAll('#locks tbody tr[data-resource="ui-test/alpha"] td')].map(td => td.textContent)`)
	if len(cells) < 4 || cells[1] != "worker-1" || cells[2] != fmt.Sprint(alpha.Token()) || !strings.HasPrefix(cells[3], "in ") {
		t.Errorf("lock row %q, want owner worker-1, fencing token %d and an expiry", cells, alpha.Token())
	}
	// Taken only now: Chromium's start on a small machine can cost a
	// partition its leader, and an ephemeral lock with it.
	lock(t, api, "ui-test/session-1", "web-7", testutil.Ephemeral)
	d.do("switch to ephemeral", 10*time.Second, chromedp.Click(chromedp.ID("durability-ephemeral")))
	d.eventually("the ephemeral switch lists the ephemeral lock", 20*time.Second, func() (bool, string) {
		got, desc := d.strings(rowsJS("locks", "resource"))
		if slices.Equal(got, []string{"ui-test/session-1"}) {
			return true, ""
		}
		// An ephemeral lock lives in its partition leader's memory and
		// goes with a leader change, which a loaded machine can bring.
		if r := getInfoD(t, api, "ui-test/session-1", testutil.Ephemeral); r.Type == testutil.LockDoesNotExist {
			t.Logf("the ephemeral lock went with a leader change (leaders now %v); taking it again", c.Leaders())
			lock(t, api, "ui-test/session-1", "web-7", testutil.Ephemeral)
		}
		return false, desc
	})
	d.do("switch to persistent", 10*time.Second, chromedp.Click(chromedp.ID("durability-persistent")))
	d.waitLocks("back to persistent", "ui-test/alpha")

	// Paging: 12 locks, 10 a page.
	d.do("10 per page", 10*time.Second, chromedp.Evaluate[chromedp.Void](
		`(s => { s.value = '10'; s.dispatchEvent(new Event('change')); })(document.getElementById('page-size'))`))
	d.search("page/")
	d.waitLocks("page 1 of page/", pageLocks[:10]...)
	d.waitJS("next is enabled and previous is not", 5*time.Second,
		`!document.getElementById('next-page').disabled && document.getElementById('prev-page').disabled`)
	d.do("next page", 10*time.Second, chromedp.Click(chromedp.ID("next-page")))
	d.waitLocks("page 2 of page/", pageLocks[10:]...)
	d.waitJS("the last page has no next", 5*time.Second,
		`document.getElementById('next-page').disabled && document.getElementById('page-info').textContent === 'page 2'`)
	d.do("previous page", 10*time.Second, chromedp.Click(chromedp.ID("prev-page")))
	d.waitLocks("back on page 1", pageLocks[:10]...)

	// The overview, as in the docs.
	d.search("")
	d.waitLocks("every persistent lock, first page",
		append([]string{"deploy/prod", "orders/2026-12-04/batch-17"}, pageLocks[:8]...)...)
	d.waitJS("a fresh refresh", 5*time.Second, dataJS("last-refresh", "state")+` === 'ok'`)
	png := d.screenshot("overview")
	if *docsScreenshot != "" {
		if err := os.WriteFile(*docsScreenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d KB)", *docsScreenshot, len(png)/1024)
	}

	// A phone: the page reflows and never scrolls sideways as a whole.
	d.do("phone viewport", 10*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	d.waitJS("no sideways scrolling on a phone", 5*time.Second, `document.documentElement.scrollWidth <= window.innerWidth + 1`)
	d.screenshot("phone")
	d.do("laptop viewport", 10*time.Second, chromedp.EmulateViewport(1280, 900))

	// Force-unlock: a dismissed confirmation changes nothing; an accepted
	// one releases the lock, and the page and the API agree.
	d.search("ui-test/")
	d.waitLocks("the lock to force-unlock", "ui-test/alpha")
	d.forceUnlock("ui-test/alpha", false, "cancelled")
	if r := getInfo(t, api, "ui-test/alpha"); r.Type != testutil.Got {
		t.Fatalf("after a dismissed force-unlock: %v, want the lock still held", r)
	}
	d.forceUnlock("ui-test/alpha", true, "Unlocked")
	d.waitLocks("the force-unlocked lock leaves the list")
	if r := getInfo(t, api, "ui-test/alpha"); r.Type != testutil.LockDoesNotExist {
		t.Fatalf("after force-unlock the API says %v, want LockDoesNotExist", r)
	}

	// A partition leader dies: the page stops naming it within a few
	// seconds, then shows the new leader and the node's state.
	p, victim := -1, -1
	for i := range c.Leaders() {
		if li := c.LeaderIndex(i); li > 0 {
			p, victim = i, li
			break
		}
	}
	if p < 0 {
		t.Fatalf("no partition led by another node than the page's: %v", c.Leaders())
	}
	dead := c.Node(victim).ID
	row := fmt.Sprintf(`document.querySelector('#partitions tr[data-partition="%d"]')`, p)
	c.Kill(victim)
	took := d.waitJS(fmt.Sprintf("partition %d stops naming the killed leader %s", p, dead), 10*time.Second,
		fmt.Sprintf(`%s.dataset.leader !== %s`, row, jsString(dead)))
	t.Logf("the page dropped %s as partition %d's leader %v after the kill", dead, p, took.Round(10*time.Millisecond))
	took = d.waitJS(fmt.Sprintf("partition %d shows a new leader", p), 15*time.Second,
		fmt.Sprintf(`(l => l !== '' && l !== %s)(%s.dataset.leader)`, jsString(dead), row))
	t.Logf("the page showed partition %d's new leader %v later", p, took.Round(10*time.Millisecond))
	d.waitJS(dead+" is no longer alive on the page", 15*time.Second,
		fmt.Sprintf(`document.querySelector('#nodes tr[data-node=%s]').dataset.state !== 'alive'`, jsString(dead)))
	d.screenshot("leader-killed")

	// The quorum goes: the page's node is not ready and no partition has
	// a leader, and the page says so.
	for _, i := range c.Running() {
		if i != 0 {
			c.Kill(i)
		}
	}
	d.waitJS("the not-ready banner", 20*time.Second,
		dataJS("ready-banner", "ready")+` === 'false' && `+visibleJS("ready-banner"))
	d.waitJS("every partition marked leaderless", 20*time.Second,
		`(r => r.length === 3 && r.every(x => x.dataset.leader === '' && x.classList.contains('leaderless')))([...document.querySelectorAll('#partitions tbody tr')]) && `+
			visibleJS("leaderless-banner"))
	d.waitJS("the lock list reports it cannot list", 20*time.Second, visibleJS("locks-error"))
	d.screenshot("no-quorum")
	t.Logf("browser test took %v", time.Since(start).Round(time.Second))
}

// TestDashboardAuth drives the page on a cluster with --auth-file: no token
// and a wrong one show 401, a read token sees everything but may not
// force-unlock (403), an admin token may, and the token lives in the tab's
// sessionStorage only.
func TestDashboardAuth(t *testing.T) {
	findBrowser(t)
	const readToken, adminToken = "viewer-7f3a9c", "ops-51d2e8b0"
	sum := sha256.Sum256([]byte(adminToken))
	file := filepath.Join(t.TempDir(), "auth.json")
	tokens := fmt.Sprintf(`{"tokens":[{"name":"viewer","token":%q,"role":"read"},{"name":"ops","sha256":%q,"role":"admin"}]}`,
		readToken, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(file, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testcluster.Start(t, testcluster.Options{Nodes: 3, Mutate: func(_ int, cfg *server.Config) { cfg.AuthFile = file }})
	admin := c.Node(1).Client()
	admin.Token = adminToken
	lock(t, admin, "auth/held", "batch-9", testutil.Persistent)

	d := openBrowser(t, 1280, 900)
	d.do("open the dashboard", 30*time.Second, chromedp.Navigate("http://"+c.Node(0).HTTP+"/ui/"))
	authIs := func(status, text string) string {
		return fmt.Sprintf(`%s && %s === %s && document.getElementById('auth-banner').textContent.includes(%s)`,
			visibleJS("auth-banner"), dataJS("auth-banner", "status"), jsString(status), jsString(text))
	}
	d.waitJS("no token: 401 shown as a refused token", 10*time.Second,
		authIs("401", "Token refused")+` && document.querySelectorAll('#nodes tbody tr').length === 0`)

	useToken := func(token string) {
		t.Helper()
		d.do("enter a token", 10*time.Second,
			chromedp.SetValue(chromedp.ID("token"), token),
			chromedp.Click(chromedp.ID("token-save")))
	}
	useToken("not-a-token")
	d.waitJS("a wrong token: 401", 10*time.Second, authIs("401", "does not know this token"))

	useToken(readToken)
	d.waitJS("a read token sees the cluster", 10*time.Second,
		`!`+visibleJS("auth-banner")+` && document.querySelectorAll('#nodes tbody tr').length === 3`)
	stored, err := eval[[]any](d, `[sessionStorage.getItem('kahuna.token'), localStorage.length, document.getElementById('token').value]`)
	if err != nil || len(stored) != 3 || stored[0] != readToken || stored[1] != 0.0 || stored[2] != "" {
		t.Errorf("sessionStorage token, localStorage entries, token field: %v (%v); want the token in sessionStorage only", stored, err)
	}
	d.search("auth/")
	d.waitLocks("a read token lists locks", "auth/held")
	d.forceUnlock("auth/held", true, "403")
	d.waitJS("403 worded as the role's limit", 5*time.Second,
		`document.getElementById('action-result').textContent.includes("this token's role may not force-unlock")`)
	if r := getInfo(t, admin, "auth/held"); r.Type != testutil.Got || r.Owner != "batch-9" {
		t.Fatalf("after a refused force-unlock the API says %v, want the lock still held by batch-9", r)
	}
	d.waitJS("force-unlock disabled for this token", 10*time.Second,
		`document.querySelector('#locks button[data-action="force-unlock"]').disabled`)

	useToken(adminToken)
	d.waitJS("the admin token re-enables force-unlock", 10*time.Second,
		`!document.querySelector('#locks button[data-action="force-unlock"]').disabled`)
	d.forceUnlock("auth/held", true, "Unlocked")
	if r := getInfo(t, admin, "auth/held"); r.Type != testutil.LockDoesNotExist {
		t.Fatalf("after the admin's force-unlock the API says %v, want LockDoesNotExist", r)
	}
	d.screenshot("admin")

	d.do("forget the token", 10*time.Second, chromedp.Click(chromedp.ID("token-clear")))
	d.waitJS("forgotten: 401 again and nothing stored", 10*time.Second,
		authIs("401", "Token refused")+` && sessionStorage.getItem('kahuna.token') === null`)
}
