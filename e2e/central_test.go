package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/central/httpapi"
	"github.com/xplore/faceauth/edged"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/facetest"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models/face"
	pb "github.com/xplore/faceauth/proto"
)

// secret is central's SECRET_KEY in these tests, so they can mint tokens.
const secret = "the e2e secret key, long enough"

// centralProc is a running bin/central with its embedded NATS.
type centralProc struct {
	*proc
	url  string
	nats string // nats:// URL of the embedded server
	data string
}

// localEdges are the edge ids central generates NATS credentials for in
// these tests (--nats-local-edges).
const localEdges = "site-1,bench-1,console-edge"

// edgeAuth returns the flags an edge on this host signs in to central's
// embedded NATS with: the NKey seed central generated for edge id.
func (c *centralProc) edgeAuth(id string) []string {
	return []string{"--nats-nkey", filepath.Join(c.data, "nats-auth", id+".nk")}
}

func startCentral(t testing.TB, data, natsAddr string, extra ...string) *centralProc {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"serve", "--listen", addr, "--data", data, "--models-dir", testenv.ModelsDir(t),
		"--nats-listen", natsAddr, "--nats-local-edges", localEdges, "--workers", "1", "--log-level", "debug"}, extra...)
	p := start(t, "central", "central", []string{"SECRET_KEY=" + secret}, args...)
	c := &centralProc{proc: p, url: "http://" + addr, nats: "nats://" + natsAddr, data: data}
	c.waitReady(c.url, 2*time.Minute)
	return c
}

// centralFeed returns the feed key central derives from secret, which
// also keys the user tokens of users-stream subjects.
func centralFeed(t testing.TB) *pb.Signer {
	t.Helper()
	s, err := auth.SignerFromSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := s.DeriveSeed(pb.KeyInfo)
	if err != nil {
		t.Fatal(err)
	}
	f, err := pb.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tokens(t testing.TB) (admin, verify string) {
	t.Helper()
	s, err := auth.SignerFromSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	admin, err = s.Issue("e2e-admin", auth.RoleAdmin, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	verify, err = s.Issue("e2e-door", auth.RoleVerify, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return admin, verify
}

// The face engine of the test process, for cutting test frames and
// knowing the embeddings central will compute.
var (
	engineOnce sync.Once
	engineVal  *face.Engine
	engineErr  error
)

func testEngine(t testing.TB) *face.Engine {
	t.Helper()
	dir := testenv.ModelsDir(t)
	engineOnce.Do(func() { engineVal, engineErr = face.New(context.Background(), face.Config{ModelsDir: dir, Workers: 1}) })
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	return engineVal
}

// frame returns a 640x480 JPEG around the dominant face of a test photo.
func frame(t testing.TB, name string) []byte {
	t.Helper()
	return facetest.Frame(t, testEngine(t), name, 640, 480, 2)
}

// vectorBytes is how an edge stores the first values of the embedding
// central computes for img: a pattern to look for in the edge's file.
func vectorBytes(t testing.TB, img []byte) []byte {
	t.Helper()
	a, err := testEngine(t).Analyze(context.Background(), img, faceauth.Request{Purpose: faceauth.PurposeEnroll})
	if err != nil {
		t.Fatal(err)
	}
	return testenv.FloatBytes(a.Embedding, 16)
}

// request builds a multipart POST.
func request(t testing.TB, url, token string, fields map[string]string, img []byte) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if img != nil {
		fw, _ := mw.CreateFormFile("image", "frame.jpg")
		fw.Write(img)
	}
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, url, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

func register(t testing.TB, c *centralProc, admin, id string, img []byte) uint64 {
	t.Helper()
	status, body := httpDo(t, request(t, c.url+"/api/register", admin, map[string]string{"user_id": id, "name": "E2E " + id}, img))
	var r httpapi.RegisterResponse
	if status != http.StatusCreated || json.Unmarshal(body, &r) != nil || r.Revision == 0 {
		t.Fatalf("register %s: %d %s", id, status, body)
	}
	return r.Revision
}

func verify(t testing.TB, url, token, id string, img []byte) (int, map[string]any) {
	t.Helper()
	status, body := httpDo(t, request(t, url+"/api/verify", token, map[string]string{"user_id": id}, img))
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("verify answered %d %q", status, body)
	}
	return status, m
}

// waitApplied waits until the edge has applied revision rev.
func waitApplied(t testing.TB, e *edge, rev uint64) {
	t.Helper()
	waitFor(t, 30*time.Second, "the edge to apply the change", func() bool {
		r := e.ready()
		return r != nil && r.AppliedRevision >= rev && r.TokenKeyID != ""
	})
}

// TestCentralToEdge registers at central and verifies at the edge, with
// the same answers as central's; then takes central (and its NATS) away,
// restarts the edge offline, changes users while the edge is down, and
// checks that the erased user leaves the edge's file.
func TestCentralToEdge(t *testing.T) {
	admin, verifyTok := tokens(t)
	alice, bob := frame(t, "sample1.jpg"), frame(t, "sample2.jpg")
	aliceVec := vectorBytes(t, alice)
	const aliceID = "alice-e2e@example.org"

	cdata, edata := t.TempDir(), t.TempDir()
	natsAddr := freeAddr(t)
	c := startCentral(t, cdata, natsAddr)
	requiresNATSAuth(t, natsAddr)
	e := startEdge(t, "site-1", edata, c.nats, c.edgeAuth("site-1")...)

	rev := register(t, c, admin, aliceID, alice)
	waitApplied(t, e, rev)
	if b, _ := os.ReadFile(filepath.Join(edata, edged.DBFileName)); !bytes.Contains(b, aliceVec) || !bytes.Contains(b, []byte(aliceID)) {
		t.Fatal("the embedding central computed is not in the edge's file: the erasure check below would prove nothing")
	}

	t.Run("same answers as central", func(t *testing.T) {
		cases := []struct {
			name   string
			path   string
			token  string
			fields map[string]string
			img    []byte
		}{
			{"verify match", "/api/verify", verifyTok, map[string]string{"user_id": aliceID}, alice},
			{"verify other face", "/api/verify", verifyTok, map[string]string{"user_id": aliceID}, bob},
			{"verify unknown user", "/api/verify", verifyTok, map[string]string{"user_id": "nobody"}, alice},
			{"verify bad user id", "/api/verify", verifyTok, map[string]string{"user_id": "-x"}, alice},
			{"verify no image", "/api/verify", verifyTok, map[string]string{"user_id": aliceID}, nil},
			{"verify not an image", "/api/verify", verifyTok, map[string]string{"user_id": aliceID}, []byte("not a photo")},
			{"verify no token", "/api/verify", "", map[string]string{"user_id": aliceID}, alice},
			{"identify", "/api/identify", verifyTok, nil, alice},
			{"identify nobody", "/api/identify", verifyTok, nil, bob},
			{"identify bad limit", "/api/identify", verifyTok, map[string]string{"limit": "0"}, alice},
		}
		for _, tc := range cases {
			cs, cb := httpDo(t, request(t, c.url+tc.path, tc.token, tc.fields, tc.img))
			es, eb := httpDo(t, request(t, e.url+tc.path, tc.token, tc.fields, tc.img))
			var cm, em map[string]any
			json.Unmarshal(cb, &cm)
			json.Unmarshal(eb, &em)
			// An edge stores no names, so its identify matches carry none.
			if ms, ok := cm["matches"].([]any); ok {
				for _, m := range ms {
					delete(m.(map[string]any), "name")
				}
			}
			if cs != es || !reflect.DeepEqual(cm, em) {
				t.Errorf("%s: central %d %s, edge %d %s", tc.name, cs, cb, es, eb)
			}
		}
		if _, m := verify(t, e.url, verifyTok, aliceID, alice); m["verified"] != true {
			t.Errorf("the edge does not verify the enrolled face: %v", m)
		}
	})

	t.Run("central and NATS down", func(t *testing.T) {
		c.stop()
		waitFor(t, 10*time.Second, "the edge to notice", func() bool { r := e.ready(); return r != nil && !r.NATSConnected })
		if status, m := verify(t, e.url, verifyTok, aliceID, alice); status != 200 || m["verified"] != true {
			t.Fatalf("verify with central down: %d %v", status, m)
		}
		e.stop()
		e = startEdge(t, "site-1", edata, c.nats, c.edgeAuth("site-1")...)
		if status, m := verify(t, e.url, verifyTok, aliceID, alice); status != 200 || m["verified"] != true {
			t.Fatalf("verify after a restart with central down: %d %v", status, m)
		}
		if status, _ := verify(t, e.url, "", aliceID, alice); status != http.StatusUnauthorized {
			t.Fatalf("no token after an offline restart: %d", status)
		}
		e.stop()
	})

	t.Run("changes while the edge was down", func(t *testing.T) {
		c = startCentral(t, cdata, natsAddr)
		bobRev := register(t, c, admin, "bob-e2e", bob)
		status, body := httpDo(t, func() *http.Request {
			req, _ := http.NewRequest(http.MethodDelete, c.url+"/api/users/"+aliceID, nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			return req
		}())
		var del httpapi.DeleteResponse
		if status != 200 || json.Unmarshal(body, &del) != nil {
			t.Fatalf("delete: %d %s", status, body)
		}
		e = startEdge(t, "site-1", edata, c.nats, c.edgeAuth("site-1")...)
		waitApplied(t, e, max(bobRev, del.Revision))
		if status, m := verify(t, e.url, verifyTok, "bob-e2e", bob); status != 200 || m["verified"] != true {
			t.Fatalf("bob at the edge: %d %v", status, m)
		}
		// The erased user is unknown: the answer of a wrong face.
		if status, m := verify(t, e.url, verifyTok, aliceID, alice); status != 200 || m["verified"] != false {
			t.Fatalf("the erased user at the edge: %d %v", status, m)
		}
		// Erasure: the receipt reaches central, and the edge's file
		// ends without the user's id or embedding.
		waitFor(t, 30*time.Second, "central to list the edge's receipt", func() bool {
			req, _ := http.NewRequest(http.MethodGet, c.url+"/api/deletions", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			status, body := httpDo(t, req)
			var r httpapi.DeletionsResponse
			if status != 200 || json.Unmarshal(body, &r) != nil {
				return false
			}
			for _, d := range r.Deletions {
				if d.UserID == aliceID && slices.Contains(d.Purged, "site-1") {
					return true
				}
			}
			return false
		})
		waitFor(t, 30*time.Second, "the erased user to leave the edge's file", func() bool {
			b, err := os.ReadFile(filepath.Join(edata, edged.DBFileName))
			return err == nil && !bytes.Contains(b, []byte(aliceID)) && !bytes.Contains(b, aliceVec)
		})
		// Central sees the edge in sync through its heartbeats.
		waitFor(t, 30*time.Second, "central to see the edge in sync", func() bool {
			req, _ := http.NewRequest(http.MethodGet, c.url+"/api/edges", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			status, body := httpDo(t, req)
			var r httpapi.EdgesResponse
			if status != 200 || json.Unmarshal(body, &r) != nil {
				return false
			}
			for _, es := range r.Edges {
				if es.ID == "site-1" && es.State == "in_sync" && es.UserCount == 1 {
					return true
				}
			}
			return false
		})
	})

	t.Run("revoked token", func(t *testing.T) {
		c = startCentral(t, cdata, natsAddr)
		e = startEdge(t, "site-1", edata, c.nats, c.edgeAuth("site-1")...)
		if status, _ := verify(t, e.url, verifyTok, "bob-e2e", bob); status != 200 {
			t.Fatalf("verify before the revocation: %d", status)
		}
		cmd := exec.Command(filepath.Join(binDir, "central"), "token", "revoke", "--reason", "lost door", "--url", c.url, "--token", admin, "e2e-door")
		if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte(`revoked the tokens of "e2e-door"`)) {
			t.Fatalf("central token revoke: %v\n%s", err, out)
		}
		refused := func(url string) bool {
			status, m := verify(t, url, verifyTok, "bob-e2e", bob)
			return status == http.StatusUnauthorized && m["code"] == "token_revoked"
		}
		if !refused(c.url) {
			t.Fatal("central accepts the revoked token")
		}
		waitFor(t, 30*time.Second, "the edge to refuse the revoked token", func() bool { return refused(e.url) })
		get := func(path string, out any) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, c.url+path, nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			status, body := httpDo(t, req)
			if status != 200 || json.Unmarshal(body, out) != nil {
				t.Fatalf("GET %s: %d %s", path, status, body)
			}
		}
		var list httpapi.RevocationsResponse
		get("/api/revocations", &list)
		waitFor(t, 30*time.Second, "central to see the edge hold the revocation", func() bool {
			var r httpapi.EdgesResponse
			get("/api/edges", &r)
			return slices.ContainsFunc(r.Edges, func(es fleet.EdgeState) bool { return es.ID == "site-1" && es.TokenRevocations == list.Version })
		})
		if v, err := strconv.ParseFloat(e.metric("faceauth_edge_token_revocations_version"), 64); err != nil || v != float64(list.Version) {
			t.Fatalf("edge metric faceauth_edge_token_revocations_version = %v (%v), want %d", v, err, list.Version)
		}
		// Offline: central gone, the edge restarted; the revocation holds.
		c.stop()
		e.stop()
		e = startEdge(t, "site-1", edata, c.nats, c.edgeAuth("site-1")...)
		if !refused(e.url) {
			t.Fatal("the edge accepts the revoked token after an offline restart")
		}
		e.stop()
	})
}

// requiresNATSAuth checks that the NATS server at addr, a default
// `central serve`'s embedded one, says in its INFO that authentication is
// required and refuses a client without credentials.
func requiresNATSAuth(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	info, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if err != nil || !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"auth_required":true`) {
		t.Fatalf("the embedded NATS server's INFO: %q, %v", info, err)
	}
	if nc, err := nats.Connect("nats://" + addr); err == nil {
		nc.Close()
		t.Fatal("the embedded NATS server accepted a client without credentials")
	}
}

// TestEdgeNATSPermissions runs central's embedded NATS with per-edge NKeys
// (pb.EdgePermissions): the edge must sync, fetch the token key, send
// heartbeats and receipts with no more than its own permissions.
func TestEdgeNATSPermissions(t *testing.T) {
	admin, verifyTok := tokens(t)
	alice := frame(t, "sample1.jpg")
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	keys, secrets := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(keys, "site-nk.pub"), []byte(pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seedFile := filepath.Join(secrets, "edge.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	natsAddr := freeAddr(t)
	c := startCentral(t, t.TempDir(), natsAddr, "--nats-edge-keys", keys)

	// Without credentials the edge serves but cannot sync.
	anon := startEdge(t, "site-nk", t.TempDir(), c.nats)
	time.Sleep(time.Second)
	if r := anon.ready(); r == nil || r.NATSConnected || r.TokenKeyID != "" {
		t.Fatalf("an edge without credentials got in: %+v", r)
	}
	anon.stop()

	e := startEdge(t, "site-nk", t.TempDir(), c.nats, "--nats-nkey", seedFile)
	rev := register(t, c, admin, "alice-nk", alice)
	waitApplied(t, e, rev)
	if status, m := verify(t, e.url, verifyTok, "alice-nk", alice); status != 200 || m["verified"] != true {
		t.Fatalf("verify: %d %v", status, m)
	}
	req, _ := http.NewRequest(http.MethodDelete, c.url+"/api/users/alice-nk", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	if status, body := httpDo(t, req); status != 200 {
		t.Fatalf("delete: %d %s", status, body)
	}
	waitFor(t, 30*time.Second, "the receipt and a heartbeat to reach central", func() bool {
		req, _ := http.NewRequest(http.MethodGet, c.url+"/api/deletions", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		_, body := httpDo(t, req)
		var dr httpapi.DeletionsResponse
		json.Unmarshal(body, &dr)
		purged := false
		for _, d := range dr.Deletions {
			purged = purged || (d.UserID == "alice-nk" && slices.Contains(d.Purged, "site-nk"))
		}
		req, _ = http.NewRequest(http.MethodGet, c.url+"/api/edges", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		_, body = httpDo(t, req)
		var er httpapi.EdgesResponse
		json.Unmarshal(body, &er)
		seen := false
		for _, es := range er.Edges {
			seen = seen || (es.ID == "site-nk" && es.State == "in_sync")
		}
		return purged && seen
	})
	if r := e.ready(); r == nil || r.LastError != "" {
		t.Fatalf("the edge reports an error: %+v", r)
	}

	// The device is taken out of service: the operator forgets it with
	// the CLI, and it leaves the edge list.
	e.stop()
	cmd := exec.Command(filepath.Join(binDir, "central"), "edges", "forget", "--url", c.url, "--token", admin, "site-nk")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "edge site-nk forgotten") {
		t.Fatalf("central edges forget: %v\n%s", err, out)
	}
	req, _ = http.NewRequest(http.MethodGet, c.url+"/api/edges", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	_, body := httpDo(t, req)
	var er httpapi.EdgesResponse
	json.Unmarshal(body, &er)
	for _, es := range er.Edges {
		if es.ID == "site-nk" {
			t.Fatalf("site-nk is still listed after it was forgotten: %+v", er.Edges)
		}
	}
	cmd = exec.Command(filepath.Join(binDir, "central"), "edges", "forget", "--url", c.url, "--token", admin, "site-nk")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "No edge") {
		t.Fatalf("forgetting an unknown edge: %v\n%s", err, out)
	}
}
