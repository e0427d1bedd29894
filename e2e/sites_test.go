package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/central/httpapi"
	"github.com/xplore/faceauth/edged"
	"github.com/xplore/faceauth/internal/natsconn"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

// TestSiteScopedDistribution runs central with the edges of two sites. A
// user registered in site A is verifiable at A's edge and unknown at B's,
// whose file never holds the embedding; a user of no site reaches both; a
// user of sites A and B is verifiable at both, and removed from A it is
// erased from A's edge (A's receipt, none expected from B, no trace in A's
// file) and still verifiable at B; `central edges` shows each edge's
// sites; erasing another user of A and B expects and gets both edges'
// receipts; moving the site-A user out of A erases it from A's edge, with the
// receipt central expects from A alone, and leaves no trace in A's file.
func TestSiteScopedDistribution(t *testing.T) {
	admin, verifyTok := tokens(t)
	alice, bob, carol := frame(t, "sample1.jpg"), frame(t, "sample2.jpg"), frame(t, "sample3.jpg")
	aliceVec, bobVec, carolVec := vectorBytes(t, alice), vectorBytes(t, bob), vectorBytes(t, carol)
	const aliceID, bobID, carolID, daveID = "alice-site-a", "bob-everywhere", "carol-sites-a-b", "dave-sites-a-b"
	dave := frame(t, "sample4.jpg")

	// Each edge's NATS permissions name its sites (<id>.sites beside its
	// key); edge-c has none, so it may read only the users of no site.
	cdata := t.TempDir()
	for id, sites := range map[string]string{"edge-a": "site-a", "edge-b": "site-b"} {
		os.MkdirAll(filepath.Join(cdata, "nats-auth"), 0o700)
		if err := os.WriteFile(filepath.Join(cdata, "nats-auth", id+".sites"), []byte(sites+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := startCentral(t, cdata, freeAddr(t), "--nats-local-edges", "edge-a,edge-b,edge-c")
	dataA, dataB := t.TempDir(), t.TempDir()
	edgeA := startEdge(t, "edge-a", dataA, c.nats, append(c.edgeAuth("edge-a"), "--sites", "site-a")...)
	edgeB := startEdge(t, "edge-b", dataB, c.nats, append(c.edgeAuth("edge-b"), "--sites", "site-b")...)

	register(t, c, admin, bobID, bob)
	status, body := httpDo(t, request(t, c.url+"/api/register", admin, map[string]string{"user_id": aliceID, "name": "Alice", "sites": "site-a"}, alice))
	var reg httpapi.RegisterResponse
	if status != http.StatusCreated || json.Unmarshal(body, &reg) != nil {
		t.Fatalf("register in site-a: %d %s", status, body)
	}
	status, body = httpDo(t, request(t, c.url+"/api/register", admin, map[string]string{"user_id": carolID, "name": "Carol", "sites": "site-b,site-a"}, carol))
	var regC httpapi.RegisterResponse
	if status != http.StatusCreated || json.Unmarshal(body, &regC) != nil {
		t.Fatalf("register in site-a and site-b: %d %s", status, body)
	}
	status, body = httpDo(t, request(t, c.url+"/api/register", admin, map[string]string{"user_id": daveID, "sites": "site-a,site-b"}, dave))
	if status != http.StatusCreated || json.Unmarshal(body, &regC) != nil {
		t.Fatalf("register in site-a and site-b: %d %s", status, body)
	}
	waitApplied(t, edgeA, regC.Revision)
	waitApplied(t, edgeB, regC.Revision)
	edgesInSync(t, c, admin, regC.Revision)

	if status, m := verify(t, edgeA.url, verifyTok, aliceID, alice); status != http.StatusOK || m["verified"] != true {
		t.Fatalf("verify at site A's edge: %d %v", status, m)
	}
	// Unknown at B: not verified (the answer does not say whether the user
	// exists, so as not to enumerate users; the file check below does).
	if status, m := verify(t, edgeB.url, verifyTok, aliceID, alice); m["verified"] == true || (status != http.StatusOK && status != http.StatusNotFound) {
		t.Fatalf("verify at site B's edge: %d %v, want not verified", status, m)
	}
	for _, e := range []*edge{edgeA, edgeB} {
		if status, m := verify(t, e.url, verifyTok, bobID, bob); status != http.StatusOK || m["verified"] != true {
			t.Fatalf("verify the user of no site at %s: %d %v", e.id, status, m)
		}
		if status, m := verify(t, e.url, verifyTok, carolID, carol); status != http.StatusOK || m["verified"] != true {
			t.Fatalf("verify the user of sites A and B at %s: %d %v", e.id, status, m)
		}
	}
	// Identify at B searches B's users only: alice's face finds nobody.
	status, body = httpDo(t, request(t, edgeB.url+"/api/identify", verifyTok, nil, alice))
	if status != http.StatusOK || bytes.Contains(body, []byte(aliceID)) {
		t.Fatalf("identify at site B's edge: %d %s", status, body)
	}
	status, body = httpDo(t, request(t, edgeA.url+"/api/identify", verifyTok, nil, alice))
	if status != http.StatusOK || !bytes.Contains(body, []byte(aliceID)) {
		t.Fatalf("identify at site A's edge: %d %s", status, body)
	}

	// With B's NATS key, none of the ways to read A's user works (the
	// server refuses them), while B's own scope can be read.
	bnc, err := natsconn.Connect(t.Context(), natsconn.ConnectOptions{URL: c.nats,
		NKeySeedFile: filepath.Join(cdata, "nats-auth", "edge-b.nk"), InboxPrefix: pb.EdgeInboxPrefix("edge-b")})
	if err != nil {
		t.Fatal(err)
	}
	defer bnc.Close()
	aliceSubject := centralFeed(t).UserSubject(aliceID, "site-a")
	for _, a := range natstest.Allowed(bnc, natstest.SiteReadAttempts("site-b", aliceSubject), 3*time.Second) {
		t.Errorf("site B's key read site A's user with %s (%s %s)", a.What, a.Subject, a.Body)
	}
	own := natstest.SiteReadAttempts("site-a", centralFeed(t).UserSubject(bobID, "site-b"))[0]
	if len(natstest.Allowed(bnc, []natstest.ReadAttempt{own}, 10*time.Second)) != 1 {
		t.Fatalf("site B's key cannot create a consumer of site B (%s)", own.Subject)
	}
	// An edge asking for a site its key does not name says what to fix.
	// (site-z has no user, so that central expects no receipt from it.)
	edgeC := startEdge(t, "edge-c", t.TempDir(), c.nats, append(c.edgeAuth("edge-c"), "--sites", "site-z")...)
	waitFor(t, 30*time.Second, "edge-c to say its key does not name site-z", func() bool {
		return edgeC.logHas(`does not let edge \"edge-c\" read site \"site-z\": add the site to edge-c.sites`)
	})
	edgeC.stop()

	// central edges shows each edge's scope.
	out, err := exec.Command(filepath.Join(binDir, "central"), "edges", "--url", c.url, "--token", admin).CombinedOutput()
	if err != nil || !lineHas(string(out), "edge-a", "site-a") || !lineHas(string(out), "edge-b", "site-b") {
		t.Fatalf("central edges: %v\n%s", err, out)
	}

	// Carol out of site A: A's edge erases her and confirms; B, which
	// still serves her, owes no receipt and keeps verifying her.
	req := request(t, c.url+"/api/users/"+carolID+"/sites", admin, map[string]string{"sites": "site-b"}, nil)
	req.Method = http.MethodPut
	status, body = httpDo(t, req)
	var sr httpapi.SitesResponse
	if status != http.StatusOK || json.Unmarshal(body, &sr) != nil || !slices.Equal(sr.Sites, []string{"site-b"}) || !sr.Changed {
		t.Fatalf("remove the user of sites A and B from A: %d %s", status, body)
	}
	waitFor(t, 30*time.Second, "site A's edge to forget the user removed from A", func() bool {
		status, m := verify(t, edgeA.url, verifyTok, carolID, carol)
		return m["verified"] != true && (status == http.StatusOK || status == http.StatusNotFound)
	})
	waitReceipts(t, c, admin, carolID, []string{"edge-a"})
	waitApplied(t, edgeB, sr.Revision)
	if status, m := verify(t, edgeB.url, verifyTok, carolID, carol); status != http.StatusOK || m["verified"] != true {
		t.Fatalf("verify the user removed from A at B's edge: %d %v", status, m)
	}
	waitFor(t, 30*time.Second, "the user removed from A to leave site A's edge file", func() bool {
		if edgeA.ready() == nil {
			return false
		}
		b, err := os.ReadFile(filepath.Join(dataA, edged.DBFileName))
		return err == nil && !bytes.Contains(b, carolVec) && !bytes.Contains(b, []byte(carolID))
	})

	// Erasing dave, of sites A and B, expects (and gets) the receipts of
	// both sites' edges.
	if status, m := verify(t, edgeB.url, verifyTok, daveID, dave); status != http.StatusOK || m["verified"] != true {
		t.Fatalf("verify the other user of sites A and B at B's edge: %d %v", status, m)
	}
	if status, body := httpDo(t, authed(t, http.MethodDelete, c.url+"/api/users/"+daveID, admin)); status != http.StatusOK {
		t.Fatalf("erase the user of sites A and B: %d %s", status, body)
	}
	waitReceipts(t, c, admin, daveID, []string{"edge-a", "edge-b"})
	for _, e := range []*edge{edgeA, edgeB} {
		if status, m := verify(t, e.url, verifyTok, daveID, dave); m["verified"] == true || (status != http.StatusOK && status != http.StatusNotFound) {
			t.Fatalf("verify the erased user of sites A and B at %s: %d %v", e.id, status, m)
		}
	}

	// B's file never held alice: neither her embedding nor her id.
	edgeB.stop()
	if b, err := os.ReadFile(filepath.Join(dataB, edged.DBFileName)); err != nil || bytes.Contains(b, aliceVec) || bytes.Contains(b, []byte(aliceID)) {
		t.Fatalf("site B's edge file holds site A's user (read error %v)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dataA, edged.DBFileName)); !bytes.Contains(b, aliceVec) || !bytes.Contains(b, bobVec) {
		t.Fatal("site A's edge file lacks the embeddings: the checks of B's file prove nothing")
	}
	if b, _ := os.ReadFile(filepath.Join(dataB, edged.DBFileName)); !bytes.Contains(b, carolVec) {
		t.Fatal("site B's edge file lacks the user of sites A and B: the check of A's file proves nothing")
	}

	// Out of site A (into a site with no edge): A's edge erases her.
	req = request(t, c.url+"/api/users/"+aliceID+"/sites", admin, map[string]string{"sites": "site-c"}, nil)
	req.Method = http.MethodPut
	status, body = httpDo(t, req)
	if status != http.StatusOK || json.Unmarshal(body, &sr) != nil || !slices.Equal(sr.Sites, []string{"site-c"}) || !sr.Changed {
		t.Fatalf("move to site-c: %d %s", status, body)
	}
	waitFor(t, 30*time.Second, "site A's edge to forget the moved user", func() bool {
		status, m := verify(t, edgeA.url, verifyTok, aliceID, alice)
		return m["verified"] != true && (status == http.StatusOK || status == http.StatusNotFound)
	})
	waitReceipts(t, c, admin, aliceID, []string{"edge-a"})
	waitFor(t, 30*time.Second, "the moved user to leave site A's edge file", func() bool {
		r := edgeA.ready()
		if r == nil {
			return false
		}
		b, err := os.ReadFile(filepath.Join(dataA, edged.DBFileName))
		return err == nil && !bytes.Contains(b, aliceVec) && !bytes.Contains(b, []byte(aliceID))
	})
	if status, m := verify(t, edgeA.url, verifyTok, bobID, bob); status != http.StatusOK || m["verified"] != true {
		t.Fatalf("the user of no site at A after the move: %d %v", status, m)
	}
}

// waitReceipts waits until GET /api/deletions lists a deletion of user id
// confirmed by exactly the edges purged and pending at none.
func waitReceipts(t testing.TB, c *centralProc, admin, id string, purged []string) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("central to list the receipts of %v for %s and expect no other", purged, id), func() bool {
		status, body := httpDo(t, authed(t, http.MethodGet, c.url+"/api/deletions", admin))
		var dr httpapi.DeletionsResponse
		if status != http.StatusOK || json.Unmarshal(body, &dr) != nil {
			return false
		}
		for _, d := range dr.Deletions {
			if d.UserID == id && slices.Equal(d.Purged, purged) && len(d.Pending) == 0 {
				return true
			}
		}
		return false
	})
}

// edgesInSync waits until central reports every edge in_sync at or past
// revision rev.
func edgesInSync(t testing.TB, c *centralProc, admin string, rev uint64) {
	t.Helper()
	var last []byte
	defer func() {
		if t.Failed() {
			t.Logf("GET /api/edges: %s", last)
		}
	}()
	waitFor(t, time.Minute, "central to report every edge in_sync", func() bool {
		status, body := httpDo(t, authed(t, http.MethodGet, c.url+"/api/edges", admin))
		last = body
		var er httpapi.EdgesResponse
		if status != http.StatusOK || json.Unmarshal(body, &er) != nil || len(er.Edges) == 0 {
			return false
		}
		for _, e := range er.Edges {
			if e.State != fleet.StateInSync || e.AppliedRevision < rev {
				return false
			}
		}
		return true
	})
}

// lineHas reports whether a line of out holds every word.
func lineHas(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			return true
		}
	}
	return false
}
