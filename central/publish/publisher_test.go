package publish

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

func runPublisher(t testing.TB, nc *nats.Conn, src Source, o Options) (*Publisher, func()) {
	t.Helper()
	p, err := New(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	return p, natstest.Go(t, func(ctx context.Context) error { return p.Run(ctx, src) })
}

func TestPublishWhileNATSDown(t *testing.T) {
	n := natstest.New(t) // not started: NATS is down
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, _ := runPublisher(t, nc, src, Options{Signer: testSigner})
	for _, id := range natstest.TrickyIDs {
		p.Publish(src.Upsert(id, 8))
	}
	p.Publish(src.Del("Z"))
	if got := p.Status(); got.Connected {
		t.Fatalf("connected to a server that is not running: %+v", got)
	}
	n.Start()
	natstest.WaitStream(t, js, src)
}

func TestRestartReconciles(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, stop := runPublisher(t, nc, src, Options{Signer: testSigner})
	for i := range 20 {
		p.Publish(src.Upsert(fmt.Sprintf("u%02d", i), 8))
	}
	// Deleted and registered again: the registry has both records.
	p.Publish(src.Del("u05"))
	p.Publish(src.Upsert("u05", 8))
	natstest.WaitStream(t, js, src)
	stop()
	before := natstest.StreamState(t, js)

	// Central crashes: three changes reach the registry but never NATS.
	src.Upsert("u03", 8)
	src.Del("u04")
	src.Upsert("new", 8)

	p2, _ := runPublisher(t, nc, src, Options{Signer: testSigner})
	natstest.WaitStream(t, js, src)
	after := natstest.StreamState(t, js)
	// Only what was missing was republished.
	if got := after.LastSeq - before.LastSeq; got != 3 {
		t.Fatalf("restart republished %d messages, want 3", got)
	}
	// And what the stream held was not even read: the 18 users whose
	// state it has (all but u03, u04 and new; u05's old deletion is read
	// because the stream holds its newer registration instead).
	if got := src.Skipped(); got != 18 {
		t.Fatalf("the snapshot skipped %d changes the stream held, want 18", got)
	}
	if st := p2.Status(); st.Reconciles < 1 || st.LastError != "" {
		t.Fatalf("status after restart: %+v", st)
	}
}

func TestNATSOutageReconciles(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, _ := runPublisher(t, nc, src, Options{Signer: testSigner})
	for i := range 10 {
		p.Publish(src.Upsert(fmt.Sprintf("u%d", i), 8))
	}
	natstest.WaitStream(t, js, src)

	n.Stop()
	for i := 5; i < 15; i++ {
		p.Publish(src.Upsert(fmt.Sprintf("u%d", i), 8))
	}
	p.Publish(src.Del("u1"))
	time.Sleep(200 * time.Millisecond)
	n.Start() // same store: the stream is back with the old state
	natstest.WaitStream(t, js, src)
}

func TestOutOfOrderPublishKeepsNewest(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, _ := runPublisher(t, nc, src, Options{Signer: testSigner})
	old := src.Upsert("alice", 8)
	newer := src.Upsert("alice", 8)
	// Two requests finish in the other order.
	p.Publish(newer)
	p.Publish(old)
	p.Publish(src.Upsert("bob", 8)) // a marker that both were handled
	natstest.WaitStream(t, js, src)
}

func TestStreamPurgeRepublished(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, _ := runPublisher(t, nc, src, Options{Signer: testSigner, CheckEvery: 100 * time.Millisecond})
	for _, id := range natstest.TrickyIDs {
		p.Publish(src.Upsert(id, 8))
	}
	natstest.WaitStream(t, js, src)
	s, err := js.Stream(t.Context(), pb.UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	natstest.WaitStream(t, js, src) // the periodic check noticed and reconciled

	// Deleting the stream is noticed too.
	if err := js.DeleteStream(t.Context(), pb.UsersStream); err != nil {
		t.Fatal(err)
	}
	natstest.WaitStream(t, js, src)
}

func TestRegistryAheadIsReconciled(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	runPublisher(t, nc, src, Options{Signer: testSigner, CheckEvery: 50 * time.Millisecond})
	// Another central process writes to the shared store; this one never
	// gets Publish calls for it.
	src.Upsert("written-elsewhere", 8)
	natstest.WaitStream(t, js, src)
}

func TestResync(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	for i := range 30 {
		src.Upsert(fmt.Sprintf("u%d", i), 8)
	}
	src.Del("u7")
	p, err := New(nc, Options{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	// Without Run, as `central resync` uses it.
	got, err := p.Resync(t.Context(), src, ResyncOptions{})
	if err != nil || got != 30 {
		t.Fatalf("Resync = %d, %v; want 30", got, err)
	}
	natstest.WaitStream(t, js, src)
	st1 := natstest.StreamState(t, js)
	if got, err := p.Resync(t.Context(), src, ResyncOptions{}); err != nil || got != 30 {
		t.Fatalf("second Resync = %d, %v", got, err)
	}
	st2 := natstest.StreamState(t, js)
	if st2.LastSeq != st1.LastSeq+30 || st2.Msgs != 30 || !st2.Created.Equal(st1.Created) {
		t.Fatalf("resync did not republish everything into the same stream: %+v -> %+v", st1, st2)
	}

	// A stray user the registry does not know survives a plain resync but
	// not a re-creation.
	stray, _ := pb.ChangeMsg(testSigner, natstest.NewSource().Upsert("stray", 8), false)
	if _, err := js.PublishMsg(t.Context(), stray); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), src, ResyncOptions{Recreate: true}); err != nil {
		t.Fatal(err)
	}
	natstest.WaitStream(t, js, src)
	st3 := natstest.StreamState(t, js)
	if st3.Created.Equal(st2.Created) || st3.LastSeq != 30 {
		t.Fatalf("re-created stream: %+v (was %+v)", st3, st2)
	}
	// An edge at the old stream's position must rebuild.
	if r := uplink.Plan(uplink.Position{Seq: st2.LastSeq, StreamCreated: st2.Created}, st3); !r.Full {
		t.Fatalf("Plan after re-creation = %+v, want a full resync", r)
	}
}

func TestTokenKey(t *testing.T) {
	n := natstest.Start(t)
	nc, js := natstest.Connect(t, n.URL())
	if _, err := pb.FetchTokenKey(t.Context(), js, testKeys); err == nil {
		t.Fatal("FetchTokenKey before central published one succeeded")
	}
	key := &pb.TokenKey{KeyId: "k1", PublicKey: []byte("0123456789abcdef0123456789abcdef")}
	_, stop := runPublisher(t, nc, natstest.NewSource(), Options{Signer: testSigner, TokenKey: key})
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := pb.FetchTokenKey(t.Context(), js, testKeys)
		if err == nil {
			if got.Value.GetKeyId() != "k1" || string(got.Value.GetPublicKey()) != string(key.PublicKey) {
				t.Fatalf("token key = %v", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	// A rotated key replaces the old one.
	key2 := &pb.TokenKey{KeyId: "k2", PublicKey: []byte("fedcba9876543210fedcba9876543210")}
	p, err := New(nc, Options{Signer: testSigner, TokenKey: key2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), natstest.NewSource(), ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := pb.FetchTokenKey(t.Context(), js, testKeys)
	if err != nil || got.Value.GetKeyId() != "k2" {
		t.Fatalf("after rotation: %v, %v", got, err)
	}
	s, _ := js.Stream(t.Context(), pb.ConfigStream)
	if info, _ := s.Info(t.Context()); info.State.Msgs != 2 {
		t.Fatalf("config stream holds %d messages, want 2 (feed key, token key)", info.State.Msgs)
	}
}

// TestRevocations: the publisher keeps the newest revocation list it was
// given on the config stream, live and through reconciliation, and never
// replaces a newer list there with an older one.
func TestRevocations(t *testing.T) {
	n := natstest.Start(t)
	nc, js := natstest.Connect(t, n.URL())
	if got, err := pb.FetchRevocations(t.Context(), js, testKeys); err != nil || got != nil {
		t.Fatalf("FetchRevocations before any: %v %v", got, err)
	}
	list := func(version uint64, subjects ...string) *pb.TokenRevocations {
		l := &pb.TokenRevocations{Version: version}
		for _, s := range subjects {
			l.Revocations = append(l.Revocations, &pb.TokenRevocation{Subject: s})
		}
		return l
	}
	waitVersion := func(want uint64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			got, err := pb.FetchRevocations(t.Context(), js, testKeys)
			if err == nil && got.GetVersion() == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("revocations on the stream: %v %v, want version %d", got, err, want)
			}
		}
	}
	// Given before Run: published by the first reconciliation.
	p, err := New(nc, Options{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	p.PublishRevocations(list(1, "door-1"))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx, natstest.NewSource()) }()
	waitVersion(1)
	// Given while running: published at once.
	p.PublishRevocations(list(2, "door-1", "door-2"))
	waitVersion(2)
	p.PublishRevocations(list(1, "door-1")) // older: ignored
	cancel()
	<-done

	// A replica holding an older list leaves the newer one in place.
	old, _ := New(nc, Options{Signer: testSigner})
	old.PublishRevocations(list(1, "door-1"))
	if _, err := old.Resync(t.Context(), natstest.NewSource(), ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := pb.FetchRevocations(t.Context(), js, testKeys)
	if err != nil || got.GetVersion() != 2 || len(got.GetRevocations()) != 2 {
		t.Fatalf("after an older replica's resync: %v %v", got, err)
	}
}

func TestPublishDropsMalformed(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, _ := runPublisher(t, nc, src, Options{Signer: testSigner})
	for _, c := range []*pb.UserChange{
		{},
		{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: "no-revision"}}},
		{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{UserId: "bad id!", Revision: 9}}},
	} {
		p.Publish(c)
	}
	p.Publish(src.Upsert("ok", 8))
	natstest.WaitStream(t, js, src)
}

func TestQueueOverflowReconciles(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, err := New(nc, Options{Signer: testSigner, QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Fill the queue before the loop runs: most changes are dropped.
	for i := range 10 {
		p.Publish(src.Upsert(fmt.Sprintf("u%d", i), 8))
	}
	if st := p.Status(); st.Dropped != 8 || st.Queued != 2 {
		t.Fatalf("status = %+v, want 8 dropped and 2 queued", st)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go p.Run(ctx, src)
	natstest.WaitStream(t, js, src)
}

func TestStopFlushesQueue(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, err := New(nc, Options{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx, src) }()
	p.Publish(src.Upsert("first", 8))
	natstest.WaitStream(t, js, src) // reconciled and live
	// Queue changes and stop at once: they are published on the way out,
	// not left to the next start's reconciliation.
	for i := range 50 {
		p.Publish(src.Upsert(fmt.Sprintf("u%d", i), 8))
	}
	cancel()
	<-done
	have, _, err := scanUsers(t.Context(), js, testSigner, "")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(have, src.Want()) {
		t.Fatalf("after stop the stream has %d users, want %d", len(have), len(src.Want()))
	}
}

// testSigner signs what the tests' publishers write; testKeys trusts it.
var testSigner, testKeys = natstest.Signer(), natstest.Keys()

// TestReconcileReplacesForeignMessages: a message on a user's subject that
// central's current key did not sign (a forgery with a high revision, or
// one signed before a key rotation) is replaced by the registry's state at
// the next reconciliation, signed with the current key.
func TestReconcileReplacesForeignMessages(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	src.Upsert("alice", 4)
	src.Upsert("bob", 4)
	_, stop := runPublisher(t, nc, src, Options{Signer: testSigner})
	natstest.WaitStream(t, js, src)
	stop()
	forged, _ := pb.ChangeMsg(testSigner, &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: "alice", Revision: 10_000_000}}}, false)
	forged.Header.Del(pb.KeyIDHeader)
	forged.Header.Del(pb.SignatureHeader)
	if _, err := js.PublishMsg(t.Context(), forged); err != nil {
		t.Fatal(err)
	}
	// After a rotation every message names the old key: all go again.
	next, _ := pb.SignerFromSecret([]byte("the rotated feed key of this test"))
	runPublisher(t, nc, src, Options{Signer: next})
	keys := pb.TrustKey(next.PublicKey())
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := natstest.Collect(t, js, uplink.ConsumeOptions{Keys: keys}, 2)
		ok := map[string]uint64{}
		for _, d := range got {
			if d.Err == nil {
				ok[pb.ChangeUserID(d.Change)] = pb.ChangeRevision(d.Change)
			}
		}
		if maps.Equal(ok, src.Want()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("verified with the new key: %v, want %v", ok, src.Want())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
