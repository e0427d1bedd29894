package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/central/natsd"
	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natstest"
	"github.com/xplore/faceauth/models"
	pb "github.com/xplore/faceauth/proto"
)

// These tests feed synthetic users straight into a real NATS server (as
// central's publisher would) and run real bin/edged processes against it.

// dims is the embedding size of the default model, which the edges run.
var dims = func() int {
	c, err := models.Default()
	if err != nil {
		panic(err)
	}
	return c.Dims()
}()

// unit returns a deterministic unit vector for seed.
func unit(seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 11))
	v := make([]float32, dims)
	var n float64
	for i := range v {
		v[i] = float32(r.NormFloat64())
		n += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(n))
	}
	return v
}

func upsert(id string, rev uint64, model string) *pb.UserChange {
	return &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{
		UserId: id, Revision: rev, Embeddings: []*pb.Embedding{{Model: model, Vector: unit(rev)}},
	}}}
}

func del(id string, rev uint64) *pb.UserChange {
	return &pb.UserChange{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{UserId: id, Revision: rev}}}
}

// feedServer is a real NATS server in the test process with the feed's
// streams, standing in for central's: it signs what it publishes with a
// feed key it announces, which the edges pin on first contact.
type feedServer struct {
	srv *natsd.Server
	url string
	js  jetstream.JetStream
	key *pb.Signer
}

func startFeed(t testing.TB) *feedServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := natsd.Start(ctx, natsd.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	_, js := natstest.Connect(t, srv.ClientURL())
	if err := pb.EnsureStreams(ctx, js, pb.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	key, err := pb.SignerFromSecret([]byte("the e2e feed server's secret"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := proto.Marshal(&pb.TokenKey{KeyId: key.KeyID(), PublicKey: key.PublicKey()})
	m := nats.NewMsg(pb.FeedKeySubject)
	m.Data = data
	key.Sign(m, pb.KindFeedKey, "", 1)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	return &feedServer{srv: srv, url: srv.ClientURL(), js: js, key: key}
}

// publish puts changes on the users stream and waits for the acks.
func (f *feedServer) publish(t testing.TB, cs ...*pb.UserChange) {
	t.Helper()
	if err := f.send(cs); err != nil {
		t.Fatal(err)
	}
}

// send is publish for any goroutine.
func (f *feedServer) send(cs []*pb.UserChange) error {
	var futs []jetstream.PubAckFuture
	for i, c := range cs {
		if i%1000 == 999 {
			// Stay under the client's limit of async publishes in flight,
			// which fails a publish that stalls on a busy machine.
			select {
			case <-f.js.PublishAsyncComplete():
			case <-time.After(2 * time.Minute):
				return errors.New("publishing timed out")
			}
		}
		data, err := proto.Marshal(c)
		if err != nil {
			return err
		}
		op := pb.OpUpsert
		if c.GetDelete() != nil {
			op = pb.OpDelete
		}
		m := nats.NewMsg(f.key.ChangeSubject(c))
		m.Data = data
		m.Header.Set(pb.OpHeader, op)
		f.key.Sign(m, op, pb.ChangeUserID(c), pb.ChangeRevision(c))
		fut, err := f.js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futs = append(futs, fut)
	}
	select {
	case <-f.js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return errors.New("publishing timed out")
	}
	for _, fut := range futs {
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			return err
		}
	}
	return nil
}

func (f *feedServer) lastSeq(t testing.TB) uint64 {
	t.Helper()
	st, err := uplink.ReadStreamState(context.Background(), f.js)
	if err != nil {
		t.Fatal(err)
	}
	return st.LastSeq
}

// TestKillDuringBootstrap kills an edge with SIGKILL while it bootstraps
// many users and again while it applies a run of updates; each restart must
// find a consistent file (all or nothing of the bootstrap, a prefix of the
// updates) and end with the stream's set.
func TestKillDuringBootstrap(t *testing.T) {
	const n = 30_000
	f := startFeed(t)
	model := modelID(t)
	want := map[string]uint64{}
	var cs []*pb.UserChange
	for i := range n {
		id := fmt.Sprintf("k%05d", i)
		cs = append(cs, upsert(id, uint64(i+1), model))
		want[id] = uint64(i + 1)
	}
	f.publish(t, cs...)
	data := t.TempDir()

	kills := 0
	for try := 0; try < 3; try++ {
		e := startEdge(t, "kill-1", data, f.url)
		// Kill it at a different point of the bootstrap each time.
		waitFor(t, 30*time.Second, "the bootstrap to start", func() bool { return e.logHas("full resync") })
		time.Sleep(time.Duration(try*150) * time.Millisecond)
		finished := e.logHas("full resync done")
		e.kill9()
		s := inspect(t, data)
		switch {
		case s.Users == 0 && s.AppliedSequence == 0:
			kills++ // killed mid-bootstrap: the old (empty) set, nothing half-built
		case s.Users == n && s.AppliedSequence == n && maps.Equal(s.Revisions, want):
			if !finished {
				t.Logf("try %d: the bootstrap finished before the kill", try)
			}
		default:
			t.Fatalf("after a kill during the bootstrap: %d users at sequence %d", s.Users, s.AppliedSequence)
		}
	}
	if kills == 0 {
		t.Fatal("no kill landed during the bootstrap: the test proved nothing (the machine may be too fast for these delays)")
	}

	// Bootstrap to the end, then kill during a run of updates.
	e := startEdge(t, "kill-1", data, f.url)
	waitFor(t, 60*time.Second, "the full bootstrap", func() bool {
		r := e.ready()
		return r != nil && r.Users == n && !r.Resyncing
	})
	const updates = 20_000
	var ups []*pb.UserChange
	for i := range updates {
		ups = append(ups, upsert(fmt.Sprintf("k%05d", i), uint64(n+i+1), model))
	}
	sent := make(chan error, 1)
	go func() { sent <- f.send(ups) }()
	waitFor(t, 60*time.Second, "some updates to apply", func() bool {
		r := e.ready()
		return r != nil && r.AppliedSequence > n+1000
	})
	e.kill9()
	s := inspect(t, data)
	applied := int(s.AppliedSequence) - n
	if applied <= 0 || applied > updates || s.Users != n {
		t.Fatalf("after a kill during updates: %d users at sequence %d", s.Users, s.AppliedSequence)
	}
	// Exactly the first `applied` updates are in: none lost, none ahead of
	// the saved position.
	for i := range n {
		id := fmt.Sprintf("k%05d", i)
		wantRev := uint64(i + 1)
		if i < applied {
			wantRev = uint64(n + i + 1)
		}
		if s.Revisions[id] != wantRev {
			t.Fatalf("after a kill at sequence %d: %s at revision %d, want %d", s.AppliedSequence, id, s.Revisions[id], wantRev)
		}
	}
	for i := range updates {
		want[fmt.Sprintf("k%05d", i)] = uint64(n + i + 1)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}

	// Restarted, it resumes from its position (no resync) and catches up.
	e = startEdge(t, "kill-1", data, f.url)
	waitFor(t, 60*time.Second, "the edge to catch up", func() bool {
		r := e.ready()
		return r != nil && r.AppliedSequence == n+updates
	})
	if v := e.metric("faceauth_edge_resyncs_total"); v != "0" {
		t.Fatalf("the restart after a kill did %s resyncs, want a plain resume", v)
	}
	e.stop()
	if s := inspect(t, data); !maps.Equal(s.Revisions, want) {
		t.Fatalf("final set: %d users, differs from the stream", s.Users)
	}
}

// TestEdgesConverge: two edge processes, one killed and restarted while
// changes keep coming, end with the same set, equal to the stream's.
func TestEdgesConverge(t *testing.T) {
	f := startFeed(t)
	model := modelID(t)
	rng := rand.New(rand.NewPCG(5, 6))
	want := map[string]uint64{}
	rev := uint64(0)
	round := func(k int) {
		var cs []*pb.UserChange
		for range k {
			rev++
			id := fmt.Sprintf("c%04d", rng.IntN(2000))
			if rng.IntN(5) == 0 {
				cs = append(cs, del(id, rev))
				delete(want, id)
			} else {
				cs = append(cs, upsert(id, rev, model))
				want[id] = rev
			}
		}
		f.publish(t, cs...)
	}
	round(3000)
	d1, d2 := t.TempDir(), t.TempDir()
	e1 := startEdge(t, "conv-1", d1, f.url)
	round(1000)
	e2 := startEdge(t, "conv-2", d2, f.url)
	round(1000)
	e2.kill9()
	round(1000)
	e2 = startEdge(t, "conv-2", d2, f.url)
	round(1000)
	last := f.lastSeq(t)
	for _, e := range []*edge{e1, e2} {
		waitFor(t, 60*time.Second, e.id+" to catch up", func() bool {
			r := e.ready()
			return r != nil && r.AppliedSequence == last && r.Users == len(want)
		})
		e.stop()
	}
	s1, s2 := inspect(t, d1), inspect(t, d2)
	if !maps.Equal(s1.Revisions, want) || !maps.Equal(s2.Revisions, want) {
		t.Fatalf("edges hold %d and %d users, the stream %d; or revisions differ", s1.Users, s2.Users, len(want))
	}
}

// TestPurgedStreamResync: messages removed from the stream before the
// edge read them force a full resync, which drops users the stream no
// longer has.
func TestPurgedStreamResync(t *testing.T) {
	f := startFeed(t)
	model := modelID(t)
	var cs []*pb.UserChange
	for i := range 100 {
		cs = append(cs, upsert(fmt.Sprintf("p%03d", i), uint64(i+1), model))
	}
	f.publish(t, cs...)
	data := t.TempDir()
	e := startEdge(t, "purge-1", data, f.url)
	waitFor(t, 30*time.Second, "the bootstrap", func() bool { r := e.ready(); return r != nil && r.Users == 100 && r.Synced })
	e.stop()

	f.publish(t, upsert("p000", 200, model), del("p001", 201))
	s, err := f.js.Stream(context.Background(), pb.UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.publish(t, upsert("p002", 300, model), upsert("q000", 301, model))

	e = startEdge(t, "purge-1", data, f.url)
	waitFor(t, 30*time.Second, "the resync and the compaction that scrubs the old set", func() bool {
		return e.metric("faceauth_edge_resyncs_total") == "1" && e.metric("faceauth_edge_compactions_total") != "0"
	})
	e.stop()
	got := inspect(t, data)
	if want := map[string]uint64{"p002": 300, "q000": 301}; !maps.Equal(got.Revisions, want) {
		t.Fatalf("after the resync: %v", got.Revisions)
	}
	if got.NeedsCompaction {
		t.Error("the dropped set was not compacted away before the stop")
	}
}

// TestModelMismatch: users enrolled only with a model the edge does not
// run are refused and reported in the heartbeat and readyz.
func TestModelMismatch(t *testing.T) {
	f := startFeed(t)
	model := modelID(t)
	f.publish(t, upsert("m-own", 1, model), upsert("m-other", 2, "FaceNet@0123abcd"))
	nc, err := nats.Connect(f.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	beats := make(chan *pb.EdgeStatus, 64)
	if _, err := nc.Subscribe(pb.EdgeStatusSubject("mismatch-1"), func(m *nats.Msg) {
		var st pb.EdgeStatus
		if protojson.Unmarshal(m.Data, &st) == nil {
			select {
			case beats <- &st:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, "mismatch-1", t.TempDir(), f.url)
	var st *pb.EdgeStatus
	waitFor(t, 30*time.Second, "a heartbeat after the sync", func() bool {
		select {
		case st = <-beats:
			return st.AppliedSequence == 2
		default:
			return false
		}
	})
	if !slices.Equal(st.RefusedModels, []string{"FaceNet@0123abcd"}) || st.UserCount != 1 || st.Model != model {
		t.Fatalf("heartbeat: refused %v, users %d, model %q", st.RefusedModels, st.UserCount, st.Model)
	}
	if r := e.ready(); r == nil || !slices.Equal(r.RefusedModels, []string{"FaceNet@0123abcd"}) {
		t.Fatalf("readyz: %+v", r)
	}
}
