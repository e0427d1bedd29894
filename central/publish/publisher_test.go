package feed

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/central/natsd"
	pb "github.com/xplore/faceauth/proto"
)

// testNATS is a real embedded server that a test can stop and restart on
// the same address and store.
type testNATS struct {
	t      testing.TB
	listen string
	dir    string
	opts   natsd.Options
	srv    *natsd.Server
}

// newNATS reserves a free port; start it with start.
func newNATS(t testing.TB) *testNATS {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n := &testNATS{t: t, listen: addr, dir: t.TempDir()}
	t.Cleanup(n.stop)
	return n
}

func startNATS(t testing.TB) *testNATS {
	n := newNATS(t)
	n.start()
	return n
}

func (n *testNATS) url() string { return "nats://" + n.listen }

func (n *testNATS) start() {
	n.t.Helper()
	o := n.opts
	o.Listen, o.StoreDir = n.listen, n.dir
	var err error
	for range 50 { // the port of a just-stopped server may linger briefly
		if n.srv, err = natsd.Start(context.Background(), o); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatal(err)
}

func (n *testNATS) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv = nil
	}
}

func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := Connect(t.Context(), ConnectOptions{URL: url, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// memSource is a registry in memory: the feed's Source with the same
// contract (every user as an upsert, every deletion as a delete, ascending
// revision).
type memSource struct {
	mu    sync.Mutex
	rev   uint64
	state map[string]*pb.UserChange
	dels  []*pb.UserChange // every deletion record, also of users registered again

	skipped atomic.Int64 // changes Snapshot left out because the stream held them
}

func newSource() *memSource { return &memSource{state: map[string]*pb.UserChange{}} }

func (s *memSource) upsert(id string, dims int) *pb.UserChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	vec := make([]float32, dims)
	for i := range vec {
		vec[i] = float32(i%7) / 7
	}
	c := &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{
		UserId: id, Revision: s.rev, Name: "Name of " + id,
		Embeddings: []*pb.Embedding{{Model: "m1", Vector: vec}},
		UpdatedAt:  timestamppb.Now(),
	}}}
	s.state[id] = c
	return c
}

func (s *memSource) del(id string) *pb.UserChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	c := &pb.UserChange{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{UserId: id, Revision: s.rev, DeletedAt: timestamppb.Now()}}}
	s.state[id] = c
	s.dels = append(s.dels, c)
	return c
}

func (s *memSource) Snapshot(ctx context.Context, known func(uint64) bool, fn func(*pb.UserChange) error) error {
	s.mu.Lock()
	all := slices.Collect(maps.Values(s.state))
	for _, d := range s.dels {
		if s.state[ChangeUserID(d)] != d {
			all = append(all, d) // the user was registered again since
		}
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b *pb.UserChange) int { return int(ChangeRevision(a)) - int(ChangeRevision(b)) })
	for _, c := range all {
		if known != nil && known(ChangeRevision(c)) {
			s.skipped.Add(1)
			continue
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSource) Revision(ctx context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev, nil
}

// want returns user id -> revision of the source's state.
func (s *memSource) want() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]uint64{}
	for id, c := range s.state {
		m[id] = ChangeRevision(c)
	}
	return m
}

// waitStream waits until the users stream holds exactly the source's
// state, or fails the test with the difference.
func waitStream(t testing.TB, js jetstream.JetStream, src *memSource) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var have map[string]uint64
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		have, _, err = scanUsers(ctx, js, "")
		cancel()
		if err == nil && maps.Equal(have, src.want()) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("users stream never matched the registry: err=%v\nhave %v\nwant %v", err, have, src.want())
}

func runPublisher(t testing.TB, nc *nats.Conn, src Source, o PublisherOptions) (*Publisher, context.CancelFunc) {
	t.Helper()
	p, err := NewPublisher(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx, src); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return p, stop
}

func streamInfo(t testing.TB, js jetstream.JetStream) StreamState {
	t.Helper()
	st, err := ReadStreamState(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var trickyIDs = []string{"alice", "a.b", "a..b", "x@example.com", "first.last@corp.example", "a-b_c", "Z", strings.Repeat("q.", 63) + "zz"}

func TestPublishWhileNATSDown(t *testing.T) {
	n := newNATS(t) // not started: NATS is down
	src := newSource()
	nc, js := connect(t, n.url())
	p, _ := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})
	for _, id := range trickyIDs {
		p.Publish(src.upsert(id, 8))
	}
	p.Publish(src.del("Z"))
	if got := p.Status(); got.Connected {
		t.Fatalf("connected to a server that is not running: %+v", got)
	}
	n.start()
	waitStream(t, js, src)
}

func TestRestartReconciles(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, stop := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})
	for i := range 20 {
		p.Publish(src.upsert(fmt.Sprintf("u%02d", i), 8))
	}
	// Deleted and registered again: the registry has both records.
	p.Publish(src.del("u05"))
	p.Publish(src.upsert("u05", 8))
	waitStream(t, js, src)
	stop()
	before := streamInfo(t, js)

	// Central crashes: three changes reach the registry but never NATS.
	src.upsert("u03", 8)
	src.del("u04")
	src.upsert("new", 8)

	p2, _ := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})
	waitStream(t, js, src)
	after := streamInfo(t, js)
	// Only what was missing was republished.
	if got := after.LastSeq - before.LastSeq; got != 3 {
		t.Fatalf("restart republished %d messages, want 3", got)
	}
	// And what the stream held was not even read: the 18 users whose
	// state it has (all but u03, u04 and new; u05's old deletion is read
	// because the stream holds its newer registration instead).
	if got := src.skipped.Load(); got != 18 {
		t.Fatalf("the snapshot skipped %d changes the stream held, want 18", got)
	}
	if st := p2.Status(); st.Reconciles < 1 || st.LastError != "" {
		t.Fatalf("status after restart: %+v", st)
	}
}

func TestNATSOutageReconciles(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, _ := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})
	for i := range 10 {
		p.Publish(src.upsert(fmt.Sprintf("u%d", i), 8))
	}
	waitStream(t, js, src)

	n.stop()
	for i := 5; i < 15; i++ {
		p.Publish(src.upsert(fmt.Sprintf("u%d", i), 8))
	}
	p.Publish(src.del("u1"))
	time.Sleep(200 * time.Millisecond)
	n.start() // same store: the stream is back with the old state
	waitStream(t, js, src)
}

func TestOutOfOrderPublishKeepsNewest(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, _ := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})
	old := src.upsert("alice", 8)
	newer := src.upsert("alice", 8)
	// Two requests finish in the other order.
	p.Publish(newer)
	p.Publish(old)
	p.Publish(src.upsert("bob", 8)) // a marker that both were handled
	waitStream(t, js, src)
}

func TestStreamPurgeRepublished(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, _ := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner, CheckEvery: 100 * time.Millisecond})
	for _, id := range trickyIDs {
		p.Publish(src.upsert(id, 8))
	}
	waitStream(t, js, src)
	s, err := js.Stream(t.Context(), UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitStream(t, js, src) // the periodic check noticed and reconciled

	// Deleting the stream is noticed too.
	if err := js.DeleteStream(t.Context(), UsersStream); err != nil {
		t.Fatal(err)
	}
	waitStream(t, js, src)
}

func TestRegistryAheadIsReconciled(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	runPublisher(t, nc, src, PublisherOptions{Signer: testSigner, CheckEvery: 50 * time.Millisecond})
	// Another central process writes to the shared store; this one never
	// gets Publish calls for it.
	src.upsert("written-elsewhere", 8)
	waitStream(t, js, src)
}

func TestResync(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	for i := range 30 {
		src.upsert(fmt.Sprintf("u%d", i), 8)
	}
	src.del("u7")
	p, err := NewPublisher(nc, PublisherOptions{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	// Without Run, as `central resync` uses it.
	got, err := p.Resync(t.Context(), src, ResyncOptions{})
	if err != nil || got != 30 {
		t.Fatalf("Resync = %d, %v; want 30", got, err)
	}
	waitStream(t, js, src)
	st1 := streamInfo(t, js)
	if got, err := p.Resync(t.Context(), src, ResyncOptions{}); err != nil || got != 30 {
		t.Fatalf("second Resync = %d, %v", got, err)
	}
	st2 := streamInfo(t, js)
	if st2.LastSeq != st1.LastSeq+30 || st2.Msgs != 30 || !st2.Created.Equal(st1.Created) {
		t.Fatalf("resync did not republish everything into the same stream: %+v -> %+v", st1, st2)
	}

	// A stray user the registry does not know survives a plain resync but
	// not a re-creation.
	stray, _ := changeMsg(testSigner, newSource().upsert("stray", 8), false)
	if _, err := js.PublishMsg(t.Context(), stray); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), src, ResyncOptions{Recreate: true}); err != nil {
		t.Fatal(err)
	}
	waitStream(t, js, src)
	st3 := streamInfo(t, js)
	if st3.Created.Equal(st2.Created) || st3.LastSeq != 30 {
		t.Fatalf("re-created stream: %+v (was %+v)", st3, st2)
	}
	// An edge at the old stream's position must rebuild.
	if r := Plan(Position{Seq: st2.LastSeq, StreamCreated: st2.Created}, st3); !r.Full {
		t.Fatalf("Plan after re-creation = %+v, want a full resync", r)
	}
}

func TestTokenKey(t *testing.T) {
	n := startNATS(t)
	nc, js := connect(t, n.url())
	if _, err := FetchTokenKey(t.Context(), js, testKeys); err == nil {
		t.Fatal("FetchTokenKey before central published one succeeded")
	}
	key := &pb.TokenKey{KeyId: "k1", PublicKey: []byte("0123456789abcdef0123456789abcdef")}
	_, stop := runPublisher(t, nc, newSource(), PublisherOptions{Signer: testSigner, TokenKey: key})
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := FetchTokenKey(t.Context(), js, testKeys)
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
	p, err := NewPublisher(nc, PublisherOptions{Signer: testSigner, TokenKey: key2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), newSource(), ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := FetchTokenKey(t.Context(), js, testKeys)
	if err != nil || got.Value.GetKeyId() != "k2" {
		t.Fatalf("after rotation: %v, %v", got, err)
	}
	s, _ := js.Stream(t.Context(), ConfigStream)
	if info, _ := s.Info(t.Context()); info.State.Msgs != 2 {
		t.Fatalf("config stream holds %d messages, want 2 (feed key, token key)", info.State.Msgs)
	}
}

// TestRevocations: the publisher keeps the newest revocation list it was
// given on the config stream, live and through reconciliation, and never
// replaces a newer list there with an older one.
func TestRevocations(t *testing.T) {
	n := startNATS(t)
	nc, js := connect(t, n.url())
	if got, err := FetchRevocations(t.Context(), js, testKeys); err != nil || got != nil {
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
			got, err := FetchRevocations(t.Context(), js, testKeys)
			if err == nil && got.GetVersion() == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("revocations on the stream: %v %v, want version %d", got, err, want)
			}
		}
	}
	// Given before Run: published by the first reconciliation.
	p, err := NewPublisher(nc, PublisherOptions{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	p.PublishRevocations(list(1, "door-1"))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx, newSource()) }()
	waitVersion(1)
	// Given while running: published at once.
	p.PublishRevocations(list(2, "door-1", "door-2"))
	waitVersion(2)
	p.PublishRevocations(list(1, "door-1")) // older: ignored
	cancel()
	<-done

	// A replica holding an older list leaves the newer one in place.
	old, _ := NewPublisher(nc, PublisherOptions{Signer: testSigner})
	old.PublishRevocations(list(1, "door-1"))
	if _, err := old.Resync(t.Context(), newSource(), ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := FetchRevocations(t.Context(), js, testKeys)
	if err != nil || got.GetVersion() != 2 || len(got.GetRevocations()) != 2 {
		t.Fatalf("after an older replica's resync: %v %v", got, err)
	}
}

func TestPublishDropsMalformed(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, _ := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})
	for _, c := range []*pb.UserChange{
		{},
		{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: "no-revision"}}},
		{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{UserId: "bad id!", Revision: 9}}},
	} {
		p.Publish(c)
	}
	p.Publish(src.upsert("ok", 8))
	waitStream(t, js, src)
}

func TestQueueOverflowReconciles(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, err := NewPublisher(nc, PublisherOptions{Signer: testSigner, QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Fill the queue before the loop runs: most changes are dropped.
	for i := range 10 {
		p.Publish(src.upsert(fmt.Sprintf("u%d", i), 8))
	}
	if st := p.Status(); st.Dropped != 8 || st.Queued != 2 {
		t.Fatalf("status = %+v, want 8 dropped and 2 queued", st)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go p.Run(ctx, src)
	waitStream(t, js, src)
}

func TestStopFlushesQueue(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, err := NewPublisher(nc, PublisherOptions{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx, src) }()
	p.Publish(src.upsert("first", 8))
	waitStream(t, js, src) // reconciled and live
	// Queue changes and stop at once: they are published on the way out,
	// not left to the next start's reconciliation.
	for i := range 50 {
		p.Publish(src.upsert(fmt.Sprintf("u%d", i), 8))
	}
	cancel()
	<-done
	have, _, err := scanUsers(t.Context(), js, "")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(have, src.want()) {
		t.Fatalf("after stop the stream has %d users, want %d", len(have), len(src.want()))
	}
}

// testSigner signs what the tests' publishers write; testKeys trusts it.
var (
	testSigner = func() *Signer {
		s, err := SignerFromSecret([]byte("the feed tests' secret of some length"))
		if err != nil {
			panic(err)
		}
		return s
	}()
	testKeys = TrustKey(testSigner.PublicKey())
)

// TestReconcileReplacesForeignMessages: a message on a user's subject that
// central's current key did not sign (a forgery with a high revision, or
// one signed before a key rotation) is replaced by the registry's state at
// the next reconciliation, signed with the current key.
func TestReconcileReplacesForeignMessages(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	src.upsert("alice", 4)
	src.upsert("bob", 4)
	_, stop := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})
	waitStream(t, js, src)
	stop()
	forged, _ := changeMsg(testSigner, &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: "alice", Revision: 10_000_000}}}, false)
	forged.Header.Del(KeyIDHeader)
	forged.Header.Del(SignatureHeader)
	if _, err := js.PublishMsg(t.Context(), forged); err != nil {
		t.Fatal(err)
	}
	// After a rotation every message names the old key: all go again.
	next, _ := SignerFromSecret([]byte("the rotated feed key of this test"))
	runPublisher(t, nc, src, PublisherOptions{Signer: next})
	keys := TrustKey(next.PublicKey())
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := collect(t, js, ConsumeOptions{Keys: keys}, 2)
		ok := map[string]uint64{}
		for _, d := range got {
			if d.Err == nil {
				ok[ChangeUserID(d.Change)] = ChangeRevision(d.Change)
			}
		}
		if maps.Equal(ok, src.want()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("verified with the new key: %v, want %v", ok, src.want())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
