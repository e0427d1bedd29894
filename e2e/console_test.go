package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/facetest"
	"github.com/xplore/faceauth/internal/testenv"
)

// TestConsoleInBrowser drives central's web console in Debian's chromium,
// headless, against real bin/central and bin/edged processes: sign in,
// register a user into a site from a photo (and look at a camera frame), find them,
// verify, put them in two sites and then move them to one on their page (the API agrees),
// move them off the edge's sites while it is down and see the site change pending on the
// erasure page until the restarted edge confirms it, see
// the edge's sites, watch the edge reach in_sync, erase them and watch the edge's
// purge receipt arrive, mint a verify token and see it refused on an admin
// page, revoke its subject and see it refused at sign-in. Each page is saved as a screenshot under test-output/console/.
// Every request the browser makes must go to central or the edge, and no
// script may break the Content-Security-Policy.
func TestConsoleInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("skipping the console browser test: Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
	}
	root, err := testenv.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	shots := filepath.Join(root, "test-output", "console")
	if err := os.RemoveAll(shots); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("console screenshots: %s", shots)

	// Photos: one framing to register from, another to verify with.
	dir := t.TempDir()
	regPhoto, tryPhoto := filepath.Join(dir, "ada.jpg"), filepath.Join(dir, "ada-door.jpg")
	if err := os.WriteFile(regPhoto, frame(t, "sample1.jpg"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tryPhoto, facetest.Frame(t, testEngine(t), "sample1.jpg", 640, 480, 3), 0o644); err != nil {
		t.Fatal(err)
	}

	// The edge serves both sites the user is put in, so it keeps the user
	// (and sends the purge receipt at the end) wherever they are moved; its
	// NATS permissions name them (<id>.sites beside its key).
	cdata := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cdata, "nats-auth"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cdata, "nats-auth", "console-edge.sites"), []byte("hall-a,hall-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCentral(t, cdata, freeAddr(t))
	admin, _ := tokens(t)
	edata, edgeArgs := t.TempDir(), append(c.edgeAuth("console-edge"), "--sites", "hall-a,hall-b")
	e := startEdge(t, "console-edge", edata, c.nats, edgeArgs...)
	// userSites is the user's sites as the API has them, comma-separated.
	userSites := func(id string) string {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, c.url+"/api/users/"+id, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		code, body := httpDo(t, req)
		var u struct {
			Sites []string `json:"sites"`
		}
		if err := json.Unmarshal(body, &u); code != http.StatusOK || err != nil {
			t.Fatalf("GET /api/users/%s: %d %s (%v)", id, code, body, err)
		}
		return strings.Join(u.Sites, ",")
	}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// A synthetic camera, allowed without a prompt, for getUserMedia.
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()

	// Start the browser on the test's context: the steps' shorter ones
	// would close it when they end.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}

	// Every request, the page's CSP header, and any script error or CSP
	// violation.
	var (
		mu       sync.Mutex
		requests []string
		csp      []string
		problems []string
	)
	chromedp.ListenTarget(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *network.EventResponseReceived:
			if ev.Type == network.ResourceTypeDocument && strings.HasPrefix(ev.Response.URL, c.url) {
				v, _ := ev.Response.Headers["Content-Security-Policy"].(string)
				csp = append(csp, v)
			}
		case *cdplog.EventEntryAdded:
			// CSP violations are reported here, as security errors.
			e := ev.Entry
			if e.Source == cdplog.SourceSecurity || e.Source == cdplog.SourceJavascript || strings.Contains(e.Text, "Content Security Policy") {
				problems = append(problems, fmt.Sprintf("browser %s %s: %s", e.Source, e.Level, e.Text))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "script exception: "+ev.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			for _, a := range ev.Args {
				if s := string(a.Value); strings.Contains(s, "Content Security Policy") {
					problems = append(problems, "CSP violation: "+s)
				}
			}
		}
	})

	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var png []byte
			if err := chromedp.FullScreenshot(&png, 100).Do(ctx); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	step := func(name string, actions ...chromedp.Action) {
		t.Helper()
		// Generous: the machine may be busy; a step that cannot happen
		// still fails well before the test's deadline.
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := chromedp.Run(sctx, actions...); err != nil {
			var body string
			chromedp.Run(ctx, chromedp.Text("body", &body, chromedp.ByQuery), shot("failed-"+name))
			t.Fatalf("%s: %v\nthe page says:\n%s", name, err, body)
		}
	}
	visible := func(sel string) chromedp.Action { return chromedp.WaitVisible(sel, chromedp.ByQuery) }
	poll := func(expr string) chromedp.Action {
		return chromedp.Poll(expr, nil, chromedp.WithPollingInterval(100*time.Millisecond))
	}

	step("sign in page", network.Enable(), cdplog.Enable(), chromedp.Navigate(c.url+"/"), visible("#signin"), shot("1-signin"))
	step("sign in as admin",
		chromedp.SendKeys("#token", admin, chromedp.ByQuery),
		chromedp.Click("#signin-submit", chromedp.ByQuery),
		visible("#users"), poll(`document.querySelector('#who').textContent.includes('e2e-admin (admin)')`))

	step("register: analyse a photo",
		chromedp.Navigate(c.url+"/#/register"), visible("#reg-id"),
		chromedp.SendKeys("#reg-id", "ada", chromedp.ByQuery),
		chromedp.SendKeys("#reg-name", "Ada Lovelace", chromedp.ByQuery),
		chromedp.SendKeys("#reg-sites", "hall-a", chromedp.ByQuery),
		chromedp.SetUploadFiles("#reg-files", []string{regPhoto}, chromedp.ByQuery),
		visible("#previews .verdict .ok"),
		poll(`document.querySelector('#previews canvas').dataset.drawn === '1'`),
		poll(`!document.querySelector('#reg-save').disabled`),
		shot("2-register-analysed"))
	var verdict string
	step("register: save, and the saved sites are shown",
		chromedp.Text("#previews .verdict", &verdict, chromedp.ByQuery),
		chromedp.Click("#reg-save", chromedp.ByQuery),
		visible("#reg-result .msg.success"),
		poll(`(document.querySelector('#reg-sites-saved') || {}).textContent === 'hall-a'`),
		shot("3-register-saved"))
	if !strings.Contains(verdict, "Usable") || !strings.Contains(verdict, "quality") {
		t.Errorf("the analysis said %q", verdict)
	}
	if got := userSites("ada"); got != "hall-a" {
		t.Errorf("registered into the site hall-a, the API says the user's sites are %q", got)
	}
	step("register: a camera frame is analysed",
		chromedp.Click("#cam-start", chromedp.ByQuery),
		poll(`!document.querySelector('#cam-capture').disabled && document.querySelector('video.camera').videoWidth > 0`),
		chromedp.Click("#cam-capture", chromedp.ByQuery),
		visible("#previews .verdict span"), shot("4-register-camera"))
	step("register: the camera's synthetic frame holds no face",
		poll(`document.querySelector('#previews .verdict').textContent.includes('Refused')`),
		poll(`document.querySelector('#reg-save').disabled`))

	step("users: search",
		chromedp.Navigate(c.url+"/#/users"), visible("#user-search"),
		chromedp.SendKeys("#user-search", "lovelace", chromedp.ByQuery),
		visible(`#users tr[data-user="ada"]`),
		poll(`document.querySelectorAll('#users tbody tr').length === 1`),
		poll(`[...document.querySelectorAll('#users tr[data-user="ada"] td')].some((td) => td.textContent === 'hall-a')`),
		// Filtered by another site alone the list is empty, and says no
		// user matches (not that there are none); by the user's site it is
		// back.
		chromedp.Evaluate(`(() => {
			document.querySelector('#user-search').value = '';
			const f = document.querySelector('#user-site-filter');
			f.value = 'hall-z';
			f.dispatchEvent(new Event('input'));
			return true;
		})()`, nil),
		poll(`document.querySelector('#users tbody').textContent === 'No user matches.'`),
		chromedp.SetValue("#user-site-filter", "hall-a", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('#user-site-filter').dispatchEvent(new Event('input'))`, nil),
		visible(`#users tr[data-user="ada"]`),
		shot("5-users"))
	step("users: the user's page shows the reference photo",
		chromedp.Click(`#users tr[data-user="ada"] a`, chromedp.ByQuery),
		visible("#thumbs img"),
		poll(`(() => { const i = document.querySelector('#thumbs img'); return i.complete && i.naturalWidth > 0 && i.src.startsWith('blob:'); })()`),
		shot("6-user"))

	var result string
	step("try it: verify",
		chromedp.Navigate(c.url+"/#/try"), visible("#try-id"),
		chromedp.SendKeys("#try-id", "ada", chromedp.ByQuery),
		chromedp.SetUploadFiles("#try-file", []string{tryPhoto}, chromedp.ByQuery),
		visible("#try-verdict"),
		chromedp.Text("#try-result", &result, chromedp.ByQuery),
		shot("7-try"))
	if !strings.Contains(result, "Verified") || !strings.Contains(result, "Model") || strings.Contains(result, "Not verified") {
		t.Errorf("verify showed %q", result)
	}

	var matches string
	step("try it: identify",
		chromedp.SetValue("#try-mode", "identify", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('#try-mode').dispatchEvent(new Event('change'))`, nil),
		chromedp.SetUploadFiles("#try-file", []string{tryPhoto}, chromedp.ByQuery),
		poll(`(document.querySelector('#try-verdict') || {}).textContent?.includes('ada (Ada Lovelace)')`),
		chromedp.Text("#try-verdict", &matches, chromedp.ByQuery),
		shot("7b-identify"))
	if !strings.HasPrefix(matches, "ada (Ada Lovelace) 0.") {
		t.Errorf("identify showed %q", matches)
	}

	step("user: rename",
		chromedp.Navigate(c.url+"/#/users/ada"), visible("#rename"),
		chromedp.SetValue("#rename", "Augusta Ada King", chromedp.ByQuery),
		chromedp.Click("#rename-submit", chromedp.ByQuery),
		poll(`[...document.querySelectorAll('.msg.success')].some((m) => m.textContent.includes('Augusta Ada King'))`))

	step("user: put in two sites",
		chromedp.Navigate(c.url+"/#/users/ada"), visible("#sites"),
		poll(`document.querySelector('#user-sites').textContent === 'hall-a'`),
		chromedp.SetValue("#sites", "hall-b, hall-a", chromedp.ByQuery),
		chromedp.Click("#sites-submit", chromedp.ByQuery),
		poll(`[...document.querySelectorAll('.msg.success')].some((m) => m.textContent.startsWith('Sites set to hall-a, hall-b'))`),
		poll(`document.querySelector('#user-sites').textContent === 'hall-a, hall-b'`),
		// Adding a site makes no edge erase the user.
		poll(`!document.querySelector('#sites-left')`),
		shot("8-user-sites"))
	if got := userSites("ada"); got != "hall-a,hall-b" {
		t.Errorf("after putting the user in hall-a and hall-b on their page, the API says the sites are %q", got)
	}
	step("user: move to one site; the page says which edges erase the user",
		chromedp.SetValue("#sites", "hall-b", chromedp.ByQuery),
		chromedp.Click("#sites-submit", chromedp.ByQuery),
		poll(`[...document.querySelectorAll('.msg.success')].some((m) => m.textContent.startsWith('Sites set to hall-b:'))`),
		poll(`document.querySelector('#user-sites').textContent === 'hall-b'`),
		poll(`(document.querySelector('#sites-left') || {}).textContent?.startsWith('The edges of hall-a that serve none of hall-b erase ada')`),
		poll(`document.querySelector('#sites-left a').getAttribute('href') === '#/erasure'`))
	if got := userSites("ada"); got != "hall-b" {
		t.Errorf("after moving the user to hall-b on their page, the API says the sites are %q", got)
	}
	step("user: a bad site is refused with the server's sentence",
		chromedp.SetValue("#sites", "hall b!", chromedp.ByQuery),
		chromedp.Click("#sites-submit", chromedp.ByQuery),
		visible("main .msg.error"),
		poll(`document.querySelector('#user-sites').textContent === 'hall-b'`))
	if got := userSites("ada"); got != "hall-b" {
		t.Errorf("after a refused site, the API says the sites are %q", got)
	}

	// A site change the edge owes a receipt for (it serves hall-b, not
	// hall-c), made while it is down so that it stays pending: the erasure
	// page must tell it from an erasure, with where the user remains.
	e.stop()
	step("user: move off the edge's sites while it is down",
		chromedp.SetValue("#sites", "hall-c", chromedp.ByQuery),
		chromedp.Click("#sites-submit", chromedp.ByQuery),
		poll(`document.querySelector('#user-sites').textContent === 'hall-c'`),
		poll(`document.querySelector('#erase-where').textContent === 'the edges of hall-c'`),
		poll(`(document.querySelector('#sites-left') || {}).textContent?.startsWith('The edges of hall-b that serve none of hall-c erase ada')`))
	const moved = `#pending tr[data-user="ada"][data-change="moved"]`
	step("erasure: the site change is pending, told from an erasure",
		chromedp.Click("#sites-left a", chromedp.ByQuery),
		visible(moved),
		poll(`document.querySelector('`+moved+` td.change').textContent === 'site change'`),
		poll(`document.querySelector('`+moved+` td.left').textContent === 'hall-b'`),
		poll(`document.querySelector('`+moved+` td.remains').textContent === 'hall-c'`),
		poll(`[...document.querySelectorAll('`+moved+` td')].some((td) => td.textContent === 'console-edge')`),
		shot("8a-erasure-site-change"))
	e = startEdge(t, "console-edge", edata, c.nats, edgeArgs...)
	step("erasure: the restarted edge confirms the site change",
		poll(`!document.querySelector('#pending tr[data-user="ada"]') && document.querySelector('#pending tbody').textContent.includes('No erasure or site change is waiting')`))

	step("user: clear the sites",
		chromedp.Navigate(c.url+"/#/users/ada"), visible("#sites"),
		poll(`document.querySelector('#user-sites').textContent === 'hall-c'`),
		chromedp.Click("#sites-clear", chromedp.ByQuery),
		poll(`[...document.querySelectorAll('.msg.success')].some((m) => m.textContent.startsWith('Sites cleared'))`),
		poll(`document.querySelector('#user-sites').textContent === '— (every edge)'`),
		// Sent to every edge: no edge erases the user.
		poll(`!document.querySelector('#sites-left')`))
	if got := userSites("ada"); got != "" {
		t.Errorf("after clearing the user's sites, the API says they are %q", got)
	}

	step("edges: the edge reaches in_sync",
		chromedp.Navigate(c.url+"/#/edges"),
		visible(`#edges tr[data-edge="console-edge"][data-state="in_sync"]`),
		poll(`document.querySelector('#edges tr[data-edge="console-edge"] td.sites').textContent === 'hall-a, hall-b'`),
		poll(`document.querySelectorAll('#lag-chart polyline').length === 1`),
		shot("8b-edges"))

	step("erasure: delete and watch the receipt",
		chromedp.Navigate(c.url+"/#/users/ada"), visible("#delete-user"),
		chromedp.Click("#delete-user", chromedp.ByQuery),
		chromedp.Click("#confirm-delete", chromedp.ByQuery),
		visible("#receipt"),
		visible(`#receipt-edges tr[data-edge="console-edge"][data-purged="true"]`),
		poll(`document.querySelector('#receipt-change').textContent.startsWith('User ada erased from every edge (no site) at revision ')`),
		shot("9-erasure"))

	var minted string
	step("tokens: mint a verify token",
		chromedp.Navigate(c.url+"/#/tokens"), visible("#tok-subject"),
		chromedp.SendKeys("#tok-subject", "door-7", chromedp.ByQuery),
		chromedp.SetValue("#tok-ttl", "1h", chromedp.ByQuery),
		chromedp.Click("#tok-mint", chromedp.ByQuery),
		visible("#minted-token"),
		chromedp.Text("#minted-token", &minted, chromedp.ByQuery),
		shot("10-tokens"))
	if !strings.HasPrefix(minted, "fa1.") {
		t.Fatalf("minted %q", minted)
	}

	var links []string
	var refusal string
	step("wrong role: a verify token sees only the try-out page and is refused the rest",
		chromedp.Click("#signout", chromedp.ByQuery), visible("#signin"),
		chromedp.SendKeys("#token", minted, chromedp.ByQuery),
		// Signing out renders the sign-in page once: a second render would
		// drop the notice and the token typed into the first form.
		poll(`document.querySelector('main').textContent.includes('Signed out.') && document.querySelector('#token').value !== ''`),
		chromedp.Click("#signin-submit", chromedp.ByQuery),
		visible("#try-mode"),
		chromedp.Evaluate(`[...document.querySelectorAll('#nav a')].filter((a) => !a.hidden).map((a) => a.textContent)`, &links),
		chromedp.Navigate(c.url+"/#/users"),
		poll(`[...document.querySelectorAll('.msg.error')].some((m) => m.textContent.includes('this endpoint needs an admin token'))`),
		chromedp.Text("main", &refusal, chromedp.ByQuery),
		shot("11-wrong-role"))
	if !slices.Equal(links, []string{"Try it"}) {
		t.Errorf("a verify token sees the pages %v", links)
	}
	if !strings.Contains(refusal, "This token has the verify role") {
		t.Errorf("the users page with a verify token says %q", refusal)
	}

	var refused string
	step("tokens: revoke the minted token's subject; it can no longer sign in",
		chromedp.Click("#signout", chromedp.ByQuery), visible("#signin"),
		chromedp.SendKeys("#token", admin, chromedp.ByQuery),
		chromedp.Click("#signin-submit", chromedp.ByQuery), visible("#users"),
		chromedp.Navigate(c.url+"/#/tokens"), visible("#rev-subject"),
		chromedp.SendKeys("#rev-subject", "door-7", chromedp.ByQuery),
		chromedp.SendKeys("#rev-reason", "console test", chromedp.ByQuery),
		chromedp.Click("#rev-submit", chromedp.ByQuery),
		poll(`[...document.querySelectorAll('#revocations td')].some((td) => td.textContent === 'door-7')`),
		shot("12-revoked"),
		chromedp.Click("#signout", chromedp.ByQuery), visible("#signin"),
		chromedp.SendKeys("#token", minted, chromedp.ByQuery),
		chromedp.Click("#signin-submit", chromedp.ByQuery),
		visible("main .msg.error"),
		chromedp.Text("main .msg.error", &refused, chromedp.ByQuery))
	if !strings.HasPrefix(refused, "Sign-in refused: ") || !strings.Contains(refused, "revoked") {
		t.Errorf("signing in with the revoked token says %q", refused)
	}

	var status string
	step("edge status page",
		chromedp.Navigate(e.url+"/"), visible("#state"),
		chromedp.Text("main", &status, chromedp.ByQuery),
		shot("13-edge-status"))
	if !strings.Contains(status, "in sync") || !strings.Contains(status, "Users this edge can verify") {
		t.Errorf("the edge status page says %q", status)
	}
	resp, err := http.Get(e.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Security-Policy"); got != api.StatusPageCSP {
		t.Errorf("edge status page CSP %q", got)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(csp) == 0 {
		t.Error("no document response from central was seen")
	}
	for _, v := range csp {
		if v != api.ConsoleCSP {
			t.Errorf("console CSP %q, want %q", v, api.ConsoleCSP)
		}
	}
	allowed := map[string]bool{origin(c.url): true, origin(e.url): true}
	for _, r := range requests {
		if strings.HasPrefix(r, "blob:"+c.url) || strings.HasPrefix(r, "data:") {
			continue
		}
		if !allowed[origin(r)] {
			t.Errorf("the browser requested %s, outside central and the edge", r)
		}
	}
	if !t.Failed() {
		t.Logf("the browser made %d requests, all to central (%s) or the edge (%s)", len(requests), c.url, e.url)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// origin returns scheme://host:port of a URL.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}
