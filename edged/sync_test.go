package edged

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	pb "github.com/xplore/faceauth/proto"
)

// users returns n upserts of synthetic users "<prefix>NNNN" at revision
// rev0+i, with vectors of model.
func users(prefix string, n int, rev0 uint64, model string) []*pb.UserChange {
	cs := make([]*pb.UserChange, n)
	for i := range cs {
		cs[i] = upsert(fmt.Sprintf("%s%04d", prefix, i), rev0+uint64(i), model, vec(edgeDims, rev0+uint64(i)))
	}
	return cs
}

// floatBytes is the stored form of v's first 16 values: a pattern to look
// for in the raw file.
func floatBytes(v []float32) []byte {
	var b []byte
	for _, f := range v[:16] {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

func receiptOf(t *testing.T, js jetstream.JetStream, edgeID, userID string) *pb.DeleteReceipt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, pb.ReceiptsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, pb.ReceiptSubject(edgeID, userID))
	if err != nil {
		return nil
	}
	var r pb.DeleteReceipt
	if err := proto.Unmarshal(m.Data, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestSyncFollowsFeed(t *testing.T) {
	n := startNATS(t)
	js := n.client(t)
	model := testEngine(t).Info().Model
	cs := users("u", 50, 1, model)
	cs = append(cs, upsert("old-model-user", 100, "Other@00000000", vec(edgeDims, 100)))
	publish(t, js, cs...)

	// Heartbeats arrive on the edge's subject.
	nc, err := nats.Connect(n.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	beats := make(chan *pb.EdgeStatus, 100)
	if _, err := nc.Subscribe(pb.EdgeStatusSubject("edge-1"), func(m *nats.Msg) {
		var st pb.EdgeStatus
		if err := protojson.Unmarshal(m.Data, &st); err == nil {
			select {
			case beats <- &st:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	e := startEdge(t, dir, n.url)
	waitFor(t, 20*time.Second, "the bootstrap", func() bool { return e.Users() == 50 && e.Ready().Synced })
	if got := contents(t, e.Edge); len(got) != 50 || got["u0007"] != 8 {
		t.Fatalf("after bootstrap: %d users, u0007 at %d", len(got), got["u0007"])
	}
	st := e.Status()
	if !slices.Equal(st.RefusedModels, []string{"Other@00000000"}) || st.UserCount != 50 || st.Model != model || st.AppliedRevision != 100 || st.AppliedSequence != 51 {
		t.Fatalf("status %v", st)
	}
	if _, err := (edgeGallery{e.Edge}).Embeddings(context.Background(), "old-model-user", model); faceauth.KindOf(err) != faceauth.KindUnavailable {
		t.Fatalf("a refused user: %v", err)
	}
	if _, err := (edgeGallery{e.Edge}).Embeddings(context.Background(), "nobody", model); faceauth.KindOf(err) != faceauth.KindNotFound {
		t.Fatalf("an unknown user: %v", err)
	}
	var beat *pb.EdgeStatus
	waitFor(t, 5*time.Second, "a heartbeat with the bootstrapped set", func() bool {
		select {
		case beat = <-beats:
			return beat.UserCount == 50 && beat.AppliedSequence == 51
		default:
			return false
		}
	})
	if beat.EdgeId != "edge-1" || !slices.Equal(beat.RefusedModels, []string{"Other@00000000"}) || beat.Resyncing || beat.LastSync == nil {
		t.Fatalf("heartbeat %v", beat)
	}

	// Live changes: an update, an older copy of it (ignored), a delete.
	nv := vec(edgeDims, 1000)
	publish(t, js, upsert("u0001", 200, model, nv))
	waitFor(t, 5*time.Second, "the update", func() bool { r, _ := e.db.lookup("u0001"); return r != nil && r.Revision == 200 })
	// An older state arriving later (the stream then holds it) is ignored.
	publish(t, js, upsert("u0001", 150, model, vec(edgeDims, 1001)))
	victim := vec(edgeDims, 3) // u0002's vector
	if !bytes.Contains(mustRead(t, dbPath(dir)), floatBytes(victim)) {
		t.Fatal("the victim's vector is not in the file before the delete")
	}
	publish(t, js, del("u0002", 201))
	waitFor(t, 5*time.Second, "the delete", func() bool { return !e.gallery.Has("u0002") })
	r, err := e.db.lookup("u0001")
	if err != nil || r.Revision != 200 || !slices.Equal(r.Vecs[0], nv) {
		t.Fatalf("u0001 after the update: revision %d, %v", r.Revision, err)
	}
	// The receipt comes once the file has been compacted, and the file
	// ends without the user's id or vector.
	waitFor(t, 10*time.Second, "the delete receipt", func() bool { return receiptOf(t, js, "edge-1", "u0002") != nil })
	rc := receiptOf(t, js, "edge-1", "u0002")
	if rc.Revision != 201 || rc.PurgedAt == nil {
		t.Fatalf("receipt %v", rc)
	}
	waitFor(t, 10*time.Second, "the file to be scrubbed", func() bool {
		b := mustRead(t, dbPath(dir))
		return !bytes.Contains(b, []byte("u0002")) && !bytes.Contains(b, floatBytes(victim))
	})
	waitFor(t, 5*time.Second, "no receipts owed", func() bool { return e.Ready().ReceiptsOwed == 0 })
	if got := contents(t, e.Edge); len(got) != 49 || got["u0001"] != 200 {
		t.Fatalf("after the changes: %v", got)
	}
}

// TestSyncScrubsReplacedVectors: a running edge compacts its file after an
// update that replaced a user's vectors (registered again with new photos),
// with no delete to trigger it, so the old embedding leaves the door.
func TestSyncScrubsReplacedVectors(t *testing.T) {
	n := startNATS(t)
	js := n.client(t)
	model := testEngine(t).Info().Model
	publish(t, js, users("u", 20, 1, model)...)
	dir := t.TempDir()
	e := startEdge(t, dir, n.url)
	waitFor(t, 20*time.Second, "the bootstrap", func() bool { return e.Users() == 20 && e.Ready().Synced })
	old := vec(edgeDims, 4) // u0003's vector
	if !bytes.Contains(mustRead(t, dbPath(dir)), floatBytes(old)) {
		t.Fatal("u0003's vector is not in the file before the update")
	}
	nv := vec(edgeDims, 2000)
	publish(t, js, upsert("u0003", 100, model, nv))
	waitFor(t, 20*time.Second, "the file to be scrubbed of the replaced vector", func() bool {
		b := mustRead(t, dbPath(dir))
		return !bytes.Contains(b, floatBytes(old)) && bytes.Contains(b, floatBytes(nv))
	})
	if r, err := e.db.lookup("u0003"); err != nil || r == nil || r.Revision != 100 || !slices.Equal(r.Vecs[0], nv) {
		t.Fatalf("u0003 after the update: %+v, %v", r, err)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSyncOutages: NATS goes away while the edge runs, and the edge goes
// away while central keeps changing users.
func TestSyncOutages(t *testing.T) {
	n := startNATS(t)
	js := n.client(t)
	model := testEngine(t).Info().Model
	publish(t, js, users("a", 20, 1, model)...)
	dir := t.TempDir()
	e := startEdge(t, dir, n.url)
	waitFor(t, 20*time.Second, "the bootstrap", func() bool { return e.Users() == 20 && e.Ready().Synced })

	// NATS down: the edge keeps serving from its file.
	n.stop()
	waitFor(t, 5*time.Second, "the edge to notice the outage", func() bool { return !e.Ready().NATSConnected })
	if _, err := (edgeGallery{e.Edge}).Embeddings(context.Background(), "a0003", model); err != nil {
		t.Fatalf("verify lookup during the outage: %v", err)
	}
	if ms := e.gallery.Search(vec(edgeDims, 4), 1, 0.99); len(ms) != 1 || ms[0].UserID != "a0003" {
		t.Fatalf("identify during the outage: %v", ms)
	}
	time.Sleep(time.Second) // let the sync loop fail and back off

	// NATS back with changes made meanwhile: they arrive.
	n.start(t)
	js = n.client(t)
	publish(t, js, upsert("a0001", 100, model, vec(edgeDims, 100)), del("a0002", 101), upsert("b0000", 102, model, vec(edgeDims, 102)))
	waitFor(t, 30*time.Second, "the changes after the outage", func() bool {
		c := contents(t, e.Edge)
		_, gone := c["a0002"]
		return c != nil && c["a0001"] == 100 && !gone && c["b0000"] == 102
	})
	if e.resyncs() != 1 {
		t.Fatalf("%d full resyncs; the outage should have resumed, not rebuilt", e.resyncs())
	}

	// The edge down while changes happen: it resumes from its position.
	e.stop()
	publish(t, js, upsert("a0005", 200, model, vec(edgeDims, 200)), del("a0006", 201))
	e = startEdge(t, dir, n.url)
	<-e.loaded
	if e.Users() != 20 { // 20 - a0002 + b0000, straight from the file
		t.Fatalf("%d users on restart", e.Users())
	}
	waitFor(t, 30*time.Second, "the changes made while the edge was down", func() bool {
		c := contents(t, e.Edge)
		_, gone := c["a0006"]
		return c != nil && c["a0005"] == 200 && !gone
	})
	if e.resyncs() != 0 {
		t.Fatal("the restart rebuilt the set instead of resuming")
	}
	waitFor(t, 10*time.Second, "the receipt of a delete made while the edge was down", func() bool {
		return receiptOf(t, js, "edge-1", "a0006") != nil && receiptOf(t, js, "edge-1", "a0002") != nil
	})
}

// TestSyncGaps: a stream that lost messages the edge never saw, and a
// stream re-created under a running edge, both lead to a full resync that
// drops users the stream no longer has.
func TestSyncGaps(t *testing.T) {
	n := startNATS(t)
	js := n.client(t)
	model := testEngine(t).Info().Model
	publish(t, js, users("g", 30, 1, model)...)
	dir := t.TempDir()
	e := startEdge(t, dir, n.url)
	waitFor(t, 20*time.Second, "the bootstrap", func() bool { return e.Users() == 30 && e.Ready().Synced })
	e.stop()

	// Changes the edge never saw, purged while it was away, then two users
	// published: the stream now starts after the edge's position. (A purge
	// of messages the edge had already applied is no gap: deletions come
	// as tombstones, and central republishes its users after a purge.)
	publish(t, js, upsert("g0002", 50, model, vec(edgeDims, 50)), del("g0003", 51))
	ctx := context.Background()
	s, err := js.Stream(ctx, pb.UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	publish(t, js, upsert("g0001", 100, model, vec(edgeDims, 100)), upsert("h0000", 101, model, vec(edgeDims, 101)))
	e = startEdge(t, dir, n.url)
	<-e.loaded
	if e.Users() != 30 {
		t.Fatalf("the old set is not served while resyncing: %d users", e.Users())
	}
	want := map[string]uint64{"g0001": 100, "h0000": 101}
	waitFor(t, 20*time.Second, "the resync after the purge", func() bool { return maps.Equal(contents(t, e.Edge), want) })
	if e.resyncs() != 1 {
		t.Fatalf("%d resyncs", e.resyncs())
	}
	// The dropped set is scrubbed from the file.
	waitFor(t, 10*time.Second, "the old set to leave the file", func() bool {
		return !bytes.Contains(mustRead(t, dbPath(dir)), []byte("g0007"))
	})

	// The stream deleted and re-created under the running edge, then
	// refilled in bursts, as `central resync --recreate` does: the edge
	// serves the old set until the new one is complete, never a part.
	if err := js.DeleteStream(ctx, pb.UsersStream); err != nil {
		t.Fatal(err)
	}
	js = n.client(t)
	newSet := map[string]uint64{}
	refilled := make(chan error, 1)
	go func() {
		for burst := range 5 {
			for i := range 4 {
				id := fmt.Sprintf("k%d%d", burst, i)
				rev := uint64(300 + 4*burst + i)
				if _, err := js.PublishMsg(ctx, signedChange(t, upsert(id, rev, model, vec(edgeDims, rev)))); err != nil {
					refilled <- err
					return
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
		refilled <- nil
	}()
	for burst := range 5 {
		for i := range 4 {
			newSet[fmt.Sprintf("k%d%d", burst, i)] = uint64(300 + 4*burst + i)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for c := contents(t, e.Edge); !maps.Equal(c, newSet); c = contents(t, e.Edge) {
		if c != nil && !maps.Equal(c, want) {
			t.Fatalf("a partial set was served during the refill: %d users", len(c))
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the resync after the re-creation")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := <-refilled; err != nil {
		t.Fatal(err)
	}
	if e.resyncs() != 2 {
		t.Fatalf("%d resyncs", e.resyncs())
	}
}

// TestEdgesConverge: two edges, one started late and one restarted in the
// middle, end with the same set as the stream while changes keep coming.
func TestEdgesConverge(t *testing.T) {
	n := startNATS(t)
	js := n.client(t)
	model := testEngine(t).Info().Model
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]uint64{}
	rev := uint64(0)
	step := func(k int) {
		var cs []*pb.UserChange
		for range k {
			rev++
			id := fmt.Sprintf("c%03d", rng.IntN(150))
			if rng.IntN(4) == 0 {
				cs = append(cs, del(id, rev))
				delete(want, id)
			} else {
				cs = append(cs, upsert(id, rev, model, vec(edgeDims, rev)))
				want[id] = rev
			}
		}
		publish(t, js, cs...)
	}
	step(300)
	e1 := startEdge(t, t.TempDir(), n.url)
	step(100)
	dir2 := t.TempDir()
	e2 := startEdge(t, dir2, n.url, func(c *Config) { c.EdgeID = "edge-2" })
	step(100)
	e2.stop()
	step(100)
	e2 = startEdge(t, dir2, n.url, func(c *Config) { c.EdgeID = "edge-2" })
	step(100)
	for _, e := range []*runningEdge{e1, e2} {
		waitFor(t, 30*time.Second, e.EdgeID()+" to converge", func() bool { return maps.Equal(contents(t, e.Edge), want) })
	}
	// The stopped edge's file holds the same, as Inspect reads it.
	if _, err := Inspect(dir2, true); err == nil {
		t.Fatal("Inspect opened the file of a running edge")
	}
	e2.stop()
	s, err := Inspect(dir2, true)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(s.Revisions, want) || s.Users != len(want) || s.EdgeID != "edge-2" || s.Model != model || s.AppliedRevision != rev {
		t.Fatalf("inspect: %d users, edge %q, model %q, revision %d (want %d)", s.Users, s.EdgeID, s.Model, s.AppliedRevision, rev)
	}
}

// TestTokenKeyOffline: the key and the revocations central publishes are
// cached, so tokens are checked, and revoked ones refused, after a
// restart without NATS; a provisioned key works before any contact.
func TestTokenKeyOffline(t *testing.T) {
	signer, err := auth.SignerFromSecret("a test secret of some length")
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.SignerFromSecret("another secret of some length")
	if err != nil {
		t.Fatal(err)
	}
	good, _ := signer.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())
	forged, _ := other.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())
	lost, _ := signer.Issue("door-2", auth.RoleVerify, time.Hour, time.Now().Add(-time.Minute))

	n := startNATS(t)
	js := n.client(t)
	publishConfig(t, js, pb.TokenKeySubject, pb.KindTokenKey, &pb.TokenKey{KeyId: signer.KeyID(), PublicKey: signer.PublicKey()}, 1)
	publishConfig(t, js, pb.RevocationsSubject, pb.KindRevocations, &pb.TokenRevocations{Version: 1, Revocations: []*pb.TokenRevocation{
		{Subject: "door-2", RevokedAt: timestamppb.Now()},
	}}, 1)
	dir := t.TempDir()
	e := startEdge(t, dir, n.url, func(c *Config) { c.TokenPublicKey = other.PublicKey() })
	waitFor(t, 10*time.Second, "the token key from NATS", func() bool { return e.Ready().TokenKeyID == signer.KeyID() })
	waitFor(t, 10*time.Second, "the revocations from NATS", func() bool { return e.Ready().TokenRevocations == 1 })
	if _, err := e.checker.Check(lost, time.Now()); faceauth.KindOf(err) != faceauth.KindUnauthenticated {
		t.Fatalf("revoked token while connected: %v", err)
	}
	e.stop()
	n.stop()

	// Restarted with NATS gone, and the other key provisioned: the key
	// received from NATS wins.
	e2, err := Open(Config{EdgeID: "edge-1", DataDir: dir, Engine: testEngine(t), Info: testEngine(t).Info(), TokenPublicKey: other.PublicKey(), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	tests := []struct {
		name  string
		keys  api.TokenChecker
		token string
		want  faceauth.Kind // KindInternal: accepted
	}{
		{"cached key, good token", e2.checker, good, faceauth.KindInternal},
		{"cached key, other key's token", e2.checker, forged, faceauth.KindUnauthenticated},
		{"no token", e2.checker, "", faceauth.KindUnauthenticated},
		{"cached revocation", e2.checker, lost, faceauth.KindUnauthenticated},
		{"no key at all", &tokenKeys{}, good, faceauth.KindUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.keys.Check(tt.token, time.Now())
			if err == nil && tt.want != faceauth.KindInternal || err != nil && faceauth.KindOf(err) != tt.want {
				t.Fatalf("Check: %v, want kind %v", err, tt.want)
			}
		})
	}

	// An older list (replayed) never replaces the one held.
	if err := e2.setRevocations(&pb.TokenRevocations{}); !errors.Is(err, pb.ErrRejected) || e2.tokens.revocationsVersion() != 1 {
		t.Fatalf("older list: version %d, %v", e2.tokens.revocationsVersion(), err)
	}
	if _, err := e2.checker.Check(lost, time.Now()); err == nil {
		t.Fatal("an older, empty list un-revoked a token")
	}

	// A fresh edge with only a provisioned key.
	e3, err := Open(Config{EdgeID: "edge-3", DataDir: t.TempDir(), Engine: testEngine(t), Info: testEngine(t).Info(), TokenPublicKey: ed25519.PublicKey(signer.PublicKey()), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer e3.Close()
	if _, err := e3.checker.Check(good, time.Now()); err != nil {
		t.Fatalf("provisioned key: %v", err)
	}
}

// TestFileFromBeforeScopes: an edge.db written before the edge kept a
// position per scope (one sequence for its single consumer) is rebuilt
// once from the stream, then resumed from its scope positions.
func TestFileFromBeforeScopes(t *testing.T) {
	n := startNATS(t)
	js := n.client(t)
	model := testEngine(t).Info().Model
	publish(t, js, users("s", 10, 1, model)...)
	dir := t.TempDir()
	e := startEdge(t, dir, n.url)
	waitFor(t, 20*time.Second, "the bootstrap", func() bool { return e.Users() == 10 && e.Ready().Synced })
	e.stop()

	// What an older edge left: the set and its one sequence, no scopes.
	b, err := bbolt.Open(dbPath(dir), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bbolt.Tx) error {
		g, err := activeGen(tx)
		if err != nil {
			return err
		}
		if getUint(g, keySeq) == 0 {
			return errors.New("the generation has no sequence")
		}
		return g.DeleteBucket(bucketScopes)
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}

	publish(t, js, upsert("s0001", 100, model, vec(edgeDims, 100)))
	e = startEdge(t, dir, n.url)
	waitFor(t, 20*time.Second, "the rebuild", func() bool {
		c := contents(t, e.Edge)
		return len(c) == 10 && c["s0001"] == 100 && e.resyncs() == 1
	})
	e.stop()
	e = startEdge(t, dir, n.url)
	waitFor(t, 20*time.Second, "the restart", func() bool { return e.Users() == 10 && e.Ready().Synced })
	if e.resyncs() != 0 {
		t.Fatal("the restart after the rebuild rebuilt again instead of resuming from its scope positions")
	}
}
