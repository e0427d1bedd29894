package edged

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth/internal/api"
)

// TestStatusPage: the edge's page at / shows the sync state, the users
// count, the last change and the model, under a script-free CSP, and
// names no user; it reports offline once NATS is gone.
func TestStatusPage(t *testing.T) {
	n := startNATS(t)
	js := n.client(t)
	model := testEngine(t).Info().Model
	publish(t, js, upsert("alice.secret-id", 1, model, vec(edgeDims, 1)), upsert("bob.secret-id", 2, model, vec(edgeDims, 2)))
	e := startEdge(t, t.TempDir(), n.url)
	waitFor(t, 20*time.Second, "the edge to sync", func() bool { r := e.Ready(); return r.Synced && r.Users == 2 })
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()

	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := get("/")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("status page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get("Content-Security-Policy"); got != api.StatusPageCSP || !strings.Contains(got, "default-src 'none'") {
		t.Errorf("CSP %q", got)
	}
	// The page escapes a fusion's "+" (&#43;); compare the text a browser shows.
	shown := html.UnescapeString(page)
	for _, want := range []string{`id="state" class="state ok">in sync<`, `<td id="users">2</td>`, `revision 2`, model, "edge-1", `<td id="feed-rejected">0</td>`} {
		if !strings.Contains(shown, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	for _, bad := range []string{"secret-id", "<script", "style="} {
		if strings.Contains(page, bad) {
			t.Errorf("the page has %q", bad)
		}
	}
	if resp, css := get("/status.css"); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(css, "font-family") {
		t.Errorf("status.css: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, _ := get("/nothing"); resp.StatusCode != 404 {
		t.Errorf("/nothing: %d", resp.StatusCode)
	}

	n.stop()
	waitFor(t, 10*time.Second, "the edge to see NATS gone", func() bool { return !e.Ready().NATSConnected })
	waitFor(t, 10*time.Second, "the page to say offline", func() bool {
		_, page := get("/")
		return strings.Contains(page, ">offline<") || strings.Contains(page, `<td id="nats">no</td>`)
	})
}
