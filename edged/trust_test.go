package edged

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	pb "github.com/xplore/faceauth/proto"
)

// TestForgedFeed is the attack of issue 9: a client with publish rights
// on NATS (a broker administrator, or anyone when NATS is open) publishes
// an unsigned upsert carrying the attacker's face for bob, alice's genuine
// message rewritten for bob, alice's older genuine message replayed, and a
// token key of the attacker's. The edge applies none of them, goes on
// verifying the real users, applies the next genuine change, and reports
// the rejects in its metrics, its heartbeat and so in central's view.
func TestForgedFeed(t *testing.T) {
	aliceImg := personJPEG(t, "alice", 640, 480)
	bobImg := personJPEG(t, "bob", 640, 480)
	model := testEngine(t).Info().Model
	aliceVec, bobVec := embed(t, testEngine(t), aliceImg), embed(t, testEngine(t), bobImg)

	tokens, _ := auth.SignerFromSecret("the token key of the forged feed test")
	attacker, _ := auth.SignerFromSecret("the attacker's own token key, 1234")
	attackerFeed, _ := pb.SignerFromSecret([]byte("the attacker's own feed key, 1234"))
	goodTok, _ := tokens.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())
	evilTok, _ := attacker.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())

	n := startNATS(t)
	js := n.client(t)
	ctx := context.Background()
	// Central's genuine history: alice at 1, bob at 2, alice again at 3.
	aliceOld := signedChange(t, upsert("alice", 1, model, aliceVec))
	if _, err := js.PublishMsg(ctx, aliceOld); err != nil {
		t.Fatal(err)
	}
	publish(t, js, upsert("bob", 2, model, bobVec), upsert("alice", 3, model, aliceVec))
	publishConfig(t, js, pb.TokenKeySubject, pb.KindTokenKey, &pb.TokenKey{KeyId: tokens.KeyID(), PublicKey: tokens.PublicKey()}, 10)

	e := startEdge(t, t.TempDir(), n.url)
	want := map[string]uint64{"alice": 3, "bob": 2}
	waitFor(t, 20*time.Second, "the genuine set", func() bool {
		return maps.Equal(contents(t, e.Edge), want) && e.Ready().TokenKeyID == tokens.KeyID()
	})

	// Central's view of the edge, from its heartbeats on the real server.
	cnc, err := nats.Connect(n.url)
	if err != nil {
		t.Fatal(err)
	}
	defer cnc.Close()
	mon, err := fleet.New(cnc, fleet.Options{Model: model, HeartbeatInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	go mon.Run(mctx)
	state := func() fleet.EdgeState {
		for _, es := range mon.Edges(time.Now()) {
			if es.ID == "edge-1" {
				return es
			}
		}
		return fleet.EdgeState{}
	}
	waitFor(t, 20*time.Second, "central to see the edge in sync", func() bool { return state().State == fleet.StateInSync })

	// The attack.
	attacks := []struct {
		name string
		msg  func() *nats.Msg
	}{
		{"unsigned upsert of bob with alice's face", func() *nats.Msg {
			data, _ := proto.Marshal(upsert("bob", 10_000_000, model, aliceVec))
			m := nats.NewMsg(testFeed.UserSubject("bob", ""))
			m.Data = data
			m.Header.Set(pb.RevisionHeader, "10000000")
			m.Header.Set(pb.OpHeader, pb.OpUpsert)
			return m
		}},
		{"alice's genuine message rewritten for bob", func() *nats.Msg {
			m := signedChange(t, upsert("alice", 4, model, aliceVec))
			var c pb.UserChange
			proto.Unmarshal(m.Data, &c)
			c.GetUpsert().UserId = "bob"
			m.Data, _ = proto.Marshal(&c)
			m.Subject = testFeed.UserSubject("bob", "")
			return m
		}},
		{"alice's older genuine message replayed", func() *nats.Msg { return aliceOld }},
		{"the attacker's token key, signed with the attacker's feed key", func() *nats.Msg {
			data, _ := proto.Marshal(&pb.TokenKey{KeyId: attacker.KeyID(), PublicKey: attacker.PublicKey()})
			m := nats.NewMsg(pb.TokenKeySubject)
			m.Data = data
			attackerFeed.Sign(m, pb.KindTokenKey, "", 1<<62)
			return m
		}},
	}
	for i, a := range attacks {
		if _, err := js.PublishMsg(ctx, a.msg()); err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		waitFor(t, 20*time.Second, "the edge to reject "+a.name, func() bool { return e.Status().GetFeedRejected() >= uint64(i+1) })
	}
	if got := contents(t, e.Edge); !maps.Equal(got, want) {
		t.Fatalf("after the attack the edge holds %v, want %v", got, want)
	}
	if e.Ready().TokenKeyID != tokens.KeyID() {
		t.Fatalf("the edge took token key %q", e.Ready().TokenKeyID)
	}

	// It goes on verifying the real users, and only with genuine tokens.
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	verify := []struct {
		name     string
		token    string
		user     string
		img      []byte
		status   int
		verified bool
	}{
		{"alice", goodTok, "alice", aliceImg, 200, true},
		{"bob", goodTok, "bob", bobImg, 200, true},
		{"the attacker's face as bob", goodTok, "bob", aliceImg, 200, false},
		{"a token of the forged key", evilTok, "alice", aliceImg, 401, false},
	}
	for _, v := range verify {
		t.Run(v.name, func(t *testing.T) {
			status, body := post(t, srv.URL+"/api/verify", v.token, map[string]string{"user_id": v.user}, v.img)
			var r api.VerifyResponse
			json.Unmarshal(body, &r)
			if status != v.status || r.Verified != v.verified {
				t.Fatalf("status %d verified %v, want %d %v: %s", status, r.Verified, v.status, v.verified, body)
			}
		})
	}

	// The rejects are reported: metric, heartbeat, central's state.
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "faceauth_edge_feed_rejected_total 4") {
		t.Errorf("metrics lack 4 rejects:\n%s", metrics)
	}
	if r := e.Ready(); r.FeedRejected != 4 || r.LastReject == "" || r.FeedKeyID != testFeed.KeyID() {
		t.Errorf("readyz: %+v", r)
	}
	waitFor(t, 20*time.Second, "central to see the rejects", func() bool {
		es := state()
		return es.State == fleet.StateRejecting && es.FeedRejected == 4 && es.LastReject != ""
	})

	// The next genuine change to bob replaces the forgery on its subject
	// and is applied.
	publish(t, js, upsert("bob", 5, model, bobVec))
	want["bob"] = 5
	waitFor(t, 20*time.Second, "the genuine change after the attack", func() bool { return maps.Equal(contents(t, e.Edge), want) })
	if got := e.Status().GetFeedRejected(); got != 4 {
		t.Errorf("%d rejects after a genuine change, want 4", got)
	}
}

// TestFeedKeyTrust covers how the edge comes to trust a feed key: pinned on
// first use when none is provisioned, moved by a rotation signed by the
// trusted key, and never by an announcement signed by another key.
func TestFeedKeyTrust(t *testing.T) {
	next, _ := pb.SignerFromSecret([]byte("the next feed key of the trust test"))
	rogue, _ := pb.SignerFromSecret([]byte("a rogue feed key of the trust test"))
	n := startNATS(t)
	js := n.client(t)
	model := testEngine(t).Info().Model
	announce := func(k, by *pb.Signer, rev uint64) {
		t.Helper()
		data, _ := proto.Marshal(&pb.TokenKey{KeyId: k.KeyID(), PublicKey: k.PublicKey()})
		m := nats.NewMsg(pb.FeedKeySubject)
		m.Data = data
		by.Sign(m, pb.KindFeedKey, "", rev)
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	announce(testFeed, testFeed, 1)
	publish(t, js, upsert("alice", 1, model, vec(edgeDims, 1)))

	// No key provisioned: the announced one is pinned and used.
	dir := t.TempDir()
	e := startEdge(t, dir, n.url, func(c *Config) { c.FeedPublicKey = nil })
	waitFor(t, 20*time.Second, "the pinned key to verify the feed", func() bool {
		return maps.Equal(contents(t, e.Edge), map[string]uint64{"alice": 1})
	})
	if got := e.Status().GetFeedKeyId(); got != testFeed.KeyID() {
		t.Fatalf("pinned %q, want %q", got, testFeed.KeyID())
	}

	// An announcement signed by another key is refused.
	announce(rogue, rogue, 2)
	waitFor(t, 20*time.Second, "the rogue announcement to be refused", func() bool { return e.Status().GetFeedRejected() == 1 })
	if got := e.Status().GetFeedKeyId(); got != testFeed.KeyID() {
		t.Fatalf("a rogue announcement moved the edge to %q", got)
	}

	// A rotation signed by the trusted key moves it; changes signed by
	// the new key apply, even when they arrive before the edge polled.
	announce(next, testFeed, 3)
	m := nats.NewMsg(next.UserSubject("bob", ""))
	c := upsert("bob", 2, model, vec(edgeDims, 2))
	m.Data, _ = proto.Marshal(c)
	m.Header.Set(pb.OpHeader, pb.OpUpsert)
	next.Sign(m, pb.OpUpsert, "bob", 2)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the change signed by the rotated key", func() bool {
		return maps.Equal(contents(t, e.Edge), map[string]uint64{"alice": 1, "bob": 2})
	})
	if got := e.Status().GetFeedKeyId(); got != next.KeyID() {
		t.Fatalf("after the rotation the edge trusts %q, want %q", got, next.KeyID())
	}
	e.stop()

	// The rotated key survives a restart; provisioning another key
	// replaces it (the operator's decision).
	e2, err := Open(Config{EdgeID: "edge-1", DataDir: dir, Engine: testEngine(t), Info: testEngine(t).Info(), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if got := e2.trust.keyID(); got != next.KeyID() {
		t.Fatalf("after a restart the edge trusts %q, want %q", got, next.KeyID())
	}
	e2.Close()
	e3, err := Open(Config{EdgeID: "edge-1", DataDir: dir, Engine: testEngine(t), Info: testEngine(t).Info(), Log: quietLog(), FeedPublicKey: rogue.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer e3.Close()
	if got := e3.trust.keyID(); got != rogue.KeyID() {
		t.Fatalf("a newly provisioned key is not trusted: %q", got)
	}
	if _, err := e3.trust.FeedKey(next.KeyID()); !errors.Is(err, pb.ErrUnknownKey) {
		t.Fatalf("the replaced key is still trusted: %v", err)
	}
}
