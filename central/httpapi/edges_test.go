package httpapi

import (
	"context"
	"encoding/json"
	"math"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/central/natsd"
	"github.com/xplore/faceauth/central/publish"
	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/natsconn"
	pb "github.com/xplore/faceauth/proto"
)

// TestEdgesAndDeletions runs the registry, the feed's publisher and
// monitor on a real embedded NATS server, with edges that report over it.
func TestEdgesAndDeletions(t *testing.T) {
	ctx := t.Context()
	srvNATS, err := natsd.Start(ctx, natsd.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srvNATS.Shutdown)
	nc, err := natsconn.Connect(ctx, natsconn.ConnectOptions{URL: srvNATS.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	pub, err := publish.New(nc, publish.Options{Log: quiet, Signer: testFeedSigner(t)})
	if err != nil {
		t.Fatal(err)
	}
	eng := centraltest.Engine(t)
	reg := central.NewRegistry(central.Config{Store: centraltest.Backends[0].Open(t), Engine: eng, Info: eng.Info(), Publisher: pub, Log: quiet})
	mon, err := fleet.New(nc, fleet.Options{Model: reg.Model(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go pub.Run(rctx, reg)
	go mon.Run(rctx)
	<-mon.Ready()

	crops := centraltest.FaceCrops(t)
	for _, id := range []string{"ann.lee@example.com", "bo", "cy"} {
		if _, err := reg.Register(ctx, id, "", []central.Image{{Data: crops[0]}}); err != nil {
			t.Fatal(err)
		}
	}
	var dels []uint64
	for _, id := range []string{"ann.lee@example.com", "cy"} {
		res, err := reg.Delete(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		dels = append(dels, res.Revision)
	}
	rev, _ := reg.Revision(ctx)

	srv := NewServer(Config{Registry: reg, Edges: mon, Log: quiet})
	get := func(target string, v any) int {
		t.Helper()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", target, nil)
		switch {
		case target == "/api/edges":
			srv.answer(srv.listEdges)(rec, req)
		default:
			srv.answer(srv.listDeletions)(rec, req)
		}
		if v != nil && rec.Code == 200 {
			if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
				t.Fatalf("%s: %v: %s", target, err, rec.Body)
			}
		}
		return rec.Code
	}

	// site-1 has applied everything and purged ann; site-2 runs another
	// model and has purged nothing.
	deadline := time.Now().Add(20 * time.Second)
	var edges EdgesResponse
	for {
		uplink.PublishStatus(nc, &pb.EdgeStatus{EdgeId: "site-1", Model: reg.Model(), AppliedRevision: rev, SentAt: timestamppb.Now()})
		uplink.PublishStatus(nc, &pb.EdgeStatus{EdgeId: "site-2", Model: "other", AppliedRevision: rev, SentAt: timestamppb.Now()})
		if get("/api/edges", &edges) != 200 {
			t.Fatal("GET /api/edges failed")
		}
		if len(edges.Edges) == 2 && edges.Edges[0].State == fleet.StateInSync && edges.Edges[1].State == fleet.StateModelMismatch &&
			edges.Edges[0].CentralRevision == rev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edges: %+v", edges)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := uplink.PublishReceipt(ctx, js, &pb.DeleteReceipt{EdgeId: "site-1", UserId: "ann.lee@example.com", Revision: dels[0]}); err != nil {
		t.Fatal(err)
	}
	var page DeletionsResponse
	for {
		if code := get("/api/deletions", &page); code != 200 {
			t.Fatalf("GET /api/deletions: %d", code)
		}
		if len(page.Deletions) == 2 && len(page.Deletions[0].Purged) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deletions: %+v", page)
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := []fleet.DeletionState{
		{UserID: "ann.lee@example.com", Revision: dels[0], Purged: []string{"site-1"}, Pending: []string{"site-2"}},
		{UserID: "cy", Revision: dels[1], Purged: []string{}, Pending: []string{"site-1", "site-2"}},
	}
	for i, d := range page.Deletions {
		if d.UserID != want[i].UserID || d.Revision != want[i].Revision || d.DeletedAt.IsZero() ||
			!slices.Equal(d.Purged, want[i].Purged) || !slices.Equal(d.Pending, want[i].Pending) {
			t.Fatalf("deletion %d = %+v, want %+v", i, d, want[i])
		}
	}
	if page.Next != "" {
		t.Fatalf("one page, yet next = %q", page.Next)
	}

	// The same view on /metrics, for the dashboard and the alert rules
	// (deploy/): edges by state, each edge's state, the erasures waiting
	// for a receipt and when the oldest was made.
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`faceauth_central_edges{state="in_sync"} 1`,
		`faceauth_central_edges{state="model_mismatch"} 1`,
		`faceauth_central_edges{state="offline"} 0`,
		`faceauth_central_edge_state{edge="site-2",state="model_mismatch"} 1`,
		`faceauth_central_edge_state{edge="site-2",state="in_sync"} 0`,
		`faceauth_central_edge_lag{edge="site-1"} 0`,
		"faceauth_central_deletions_pending 2",
		"faceauth_central_store_up 1",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(rec.Body.String(), want+"\n") && !strings.Contains(rec.Body.String(), "\n"+want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The oldest pending is ann's deletion.
	_, v, _ := strings.Cut(rec.Body.String(), "\nfaceauth_central_deletions_oldest_pending_timestamp_seconds ")
	v, _, _ = strings.Cut(v, "\n")
	if ts, err := strconv.ParseFloat(v, 64); err != nil || math.Abs(ts-float64(page.Deletions[0].DeletedAt.UnixNano())/1e9) > 0.01 {
		t.Errorf("oldest pending deletion at %q, want %s", v, page.Deletions[0].DeletedAt)
	}

	// Paging: one per page, the cursor leads to the second.
	var p1, p2 DeletionsResponse
	get("/api/deletions?limit=1", &p1)
	get("/api/deletions?limit=1&after="+p1.Next, &p2)
	if len(p1.Deletions) != 1 || p1.Deletions[0].UserID != "ann.lee@example.com" || len(p2.Deletions) != 1 || p2.Deletions[0].UserID != "cy" {
		t.Fatalf("pages %+v then %+v", p1, p2)
	}
	// Once every edge confirmed ann, only cy is pending.
	if err := uplink.PublishReceipt(ctx, js, &pb.DeleteReceipt{EdgeId: "site-2", UserId: "ann.lee@example.com", Revision: dels[0]}); err != nil {
		t.Fatal(err)
	}
	for {
		var pend DeletionsResponse
		get("/api/deletions?pending=true", &pend)
		if len(pend.Deletions) == 1 && pend.Deletions[0].UserID == "cy" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending deletions: %+v", pend)
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, bad := range []string{"/api/deletions?limit=0", "/api/deletions?limit=x", "/api/deletions?after=-1", "/api/deletions?pending=maybe"} {
		if code := get(bad, nil); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	// Forgetting site-2 (taken out of service) drops it from both lists.
	forget := func(id string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("DELETE", "/api/edges/"+id, nil)
		req.SetPathValue("id", id)
		srv.answer(srv.forgetEdge)(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := forget("site-2"); code != 200 || !strings.Contains(body, `"forgotten":true`) {
		t.Fatalf("forget site-2: %d %s", code, body)
	}
	get("/api/edges", &edges)
	if len(edges.Edges) != 1 || edges.Edges[0].ID != "site-1" {
		t.Fatalf("edges after forgetting site-2: %+v", edges.Edges)
	}
	var pend DeletionsResponse
	get("/api/deletions?pending=true", &pend)
	if len(pend.Deletions) != 1 || pend.Deletions[0].UserID != "cy" || !slices.Equal(pend.Deletions[0].Pending, []string{"site-1"}) {
		t.Fatalf("pending after forgetting site-2: %+v", pend.Deletions)
	}
	for _, c := range []struct {
		id   string
		code int
	}{{"site-2", 404}, {"never-seen", 404}, {"bad.id", 400}} {
		if code, body := forget(c.id); code != c.code {
			t.Errorf("forget %q: %d %s, want %d", c.id, code, body, c.code)
		}
	}

	// An edge that refused forged feed messages is not in sync, whatever
	// it has applied, until an hour after the last one.
	deadline = time.Now().Add(20 * time.Second)
	for {
		uplink.PublishStatus(nc, &pb.EdgeStatus{EdgeId: "site-3", Model: reg.Model(), AppliedRevision: rev, SentAt: timestamppb.Now(),
			FeedRejected: 2, LastRejectAt: timestamppb.Now(), LastReject: "feed message rejected: not signed"})
		get("/api/edges", &edges)
		if len(edges.Edges) == 2 && edges.Edges[1].ID == "site-3" && edges.Edges[1].State == fleet.StateRejecting {
			if e := edges.Edges[1]; e.FeedRejected != 2 || e.LastReject == "" || e.LastRejectAt.IsZero() {
				t.Fatalf("site-3: %+v", e)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edges with site-3: %+v", edges.Edges)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Without the feed the endpoints say so.
	off := NewServer(Config{Registry: reg, Log: quiet})
	for _, h := range []func(*httptest.ResponseRecorder){
		func(w *httptest.ResponseRecorder) {
			off.answer(off.listEdges)(w, httptest.NewRequest("GET", "/api/edges", nil))
		},
		func(w *httptest.ResponseRecorder) {
			off.answer(off.listDeletions)(w, httptest.NewRequest("GET", "/api/deletions", nil))
		},
		func(w *httptest.ResponseRecorder) {
			req := httptest.NewRequest("DELETE", "/api/edges/site-1", nil)
			req.SetPathValue("id", "site-1")
			off.answer(off.forgetEdge)(w, req)
		},
	} {
		rec := httptest.NewRecorder()
		h(rec)
		if rec.Code != 503 {
			t.Errorf("without a monitor: %d %s", rec.Code, rec.Body)
		}
	}
	// All are admin-only.
	for _, r := range srv.Routes() {
		if (r.Pattern == "GET /api/edges" || r.Pattern == "GET /api/deletions" || r.Pattern == "DELETE /api/edges/{id}") && r.Role != auth.RoleAdmin {
			t.Errorf("%s has role %q", r.Pattern, r.Role)
		}
	}
}

// testFeedSigner is a feed key for tests that run a publisher.
func testFeedSigner(t testing.TB) *pb.Signer {
	s, err := pb.SignerFromSecret([]byte("central tests' feed secret"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
