package uplink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/xplore/faceauth/central/publish"
	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

func TestPlan(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	tests := []struct {
		name     string
		pos      uplink.Position
		st       uplink.StreamState
		wantFull bool
		wantFrom uint64
	}{
		{"fresh edge", uplink.Position{}, uplink.StreamState{FirstSeq: 5, LastSeq: 9, Created: t0}, true, 5},
		{"fresh edge, empty new stream", uplink.Position{}, uplink.StreamState{FirstSeq: 0, LastSeq: 0, Created: t0}, true, 1},
		{"caught up", uplink.Position{9, t0}, uplink.StreamState{FirstSeq: 5, LastSeq: 9, Created: t0}, false, 10},
		{"behind, nothing removed", uplink.Position{6, t0}, uplink.StreamState{FirstSeq: 5, LastSeq: 9, Created: t0}, false, 7},
		{"next message is the first", uplink.Position{4, t0}, uplink.StreamState{FirstSeq: 5, LastSeq: 9, Created: t0}, false, 5},
		{"everything purged after the edge read it all", uplink.Position{9, t0}, uplink.StreamState{FirstSeq: 10, LastSeq: 9, Created: t0}, false, 10},
		{"messages removed unseen", uplink.Position{3, t0}, uplink.StreamState{FirstSeq: 5, LastSeq: 9, Created: t0}, true, 5},
		{"purged with unseen messages", uplink.Position{7, t0}, uplink.StreamState{FirstSeq: 10, LastSeq: 9, Created: t0}, true, 10},
		{"stream reset", uplink.Position{12, t0}, uplink.StreamState{FirstSeq: 1, LastSeq: 9, Created: t0}, true, 1},
		{"stream re-created", uplink.Position{4, t0}, uplink.StreamState{FirstSeq: 1, LastSeq: 9, Created: t1}, true, 1},
		{"no saved creation time", uplink.Position{Seq: 9}, uplink.StreamState{FirstSeq: 5, LastSeq: 9, Created: t1}, false, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := uplink.Plan(tc.pos, tc.st)
			if r.Full != tc.wantFull || r.From != tc.wantFrom || r.Reason == "" {
				t.Fatalf("Plan = %+v, want full=%v from=%d", r, tc.wantFull, tc.wantFrom)
			}
		})
	}
}

func TestConsume(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, _ := runPublisher(t, nc, src, publish.Options{Signer: testSigner})
	for _, id := range natstest.TrickyIDs {
		p.Publish(src.Upsert(id, 512))
	}
	p.Publish(src.Del("a.b"))
	natstest.WaitStream(t, js, src)

	got := natstest.Collect(t, js, uplink.ConsumeOptions{Keys: testKeys}, len(natstest.TrickyIDs))
	want := src.Want()
	var prev uint64
	for _, d := range got {
		if d.Err != nil {
			t.Fatalf("delivery %d: %v", d.Seq, d.Err)
		}
		if d.Seq <= prev {
			t.Fatalf("sequence %d after %d", d.Seq, prev)
		}
		prev = d.Seq
		id := pb.ChangeUserID(d.Change)
		if want[id] != pb.ChangeRevision(d.Change) {
			t.Fatalf("user %q at revision %d, want %d", id, pb.ChangeRevision(d.Change), want[id])
		}
		if id == "a.b" && d.Change.GetDelete() == nil {
			t.Fatalf("a.b should be a tombstone: %v", d.Change)
		}
		if u := d.Change.GetUpsert(); u != nil && len(u.GetEmbeddings()[0].GetVector()) != 512 {
			t.Fatalf("user %q lost its embedding", id)
		}
		delete(want, id)
	}
	if len(want) != 0 {
		t.Fatalf("never delivered: %v", want)
	}
	if last := got[len(got)-1]; last.Pending != 0 {
		t.Fatalf("last delivery has %d pending", last.Pending)
	}

	// Resuming from a position delivers only what follows, live too.
	st := natstest.StreamState(t, js)
	go func() {
		time.Sleep(100 * time.Millisecond)
		p.Publish(src.Upsert("late.comer", 8))
	}()
	live := natstest.Collect(t, js, uplink.ConsumeOptions{Keys: testKeys, From: st.LastSeq + 1, StreamCreated: st.Created}, 1)
	if id := pb.ChangeUserID(live[0].Change); id != "late.comer" || live[0].Seq != st.LastSeq+1 {
		t.Fatalf("live delivery %q at %d", id, live[0].Seq)
	}
}

func TestConsumeUndecodable(t *testing.T) {
	n := natstest.Start(t)
	nc, js := natstest.Connect(t, n.URL())
	src := natstest.NewSource()
	p, err := publish.New(nc, publish.Options{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	// Garbage, then a change whose payload names another user.
	if _, err := js.Publish(t.Context(), testSigner.UserSubject("x", ""), []byte{0xff, 0x01}); err != nil {
		t.Fatal(err)
	}
	wrong, _ := pb.ChangeMsg(testSigner, natstest.NewSource().Upsert("y", 4), false)
	wrong.Subject = testSigner.UserSubject("z", "")
	if _, err := js.PublishMsg(t.Context(), wrong); err != nil {
		t.Fatal(err)
	}
	good, _ := pb.ChangeMsg(testSigner, natstest.NewSource().Upsert("ok", 4), false)
	if _, err := js.PublishMsg(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	got := natstest.Collect(t, js, uplink.ConsumeOptions{Keys: testKeys}, 3)
	if got[0].Err == nil || got[1].Err == nil || got[2].Err != nil || got[2].Seq != 3 {
		t.Fatalf("deliveries: %+v", got)
	}
}

func TestGapRuleAfterPurge(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, err := publish.New(nc, publish.Options{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		src.Upsert(fmt.Sprintf("u%d", i), 8)
	}
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	// The edge applies everything and saves its position.
	got := natstest.Collect(t, js, uplink.ConsumeOptions{Keys: testKeys}, 3)
	st := natstest.StreamState(t, js)
	saved := uplink.Position{Seq: got[2].Seq, StreamCreated: st.Created}
	if r := uplink.Plan(saved, st); r.Full || r.From != saved.Seq+1 {
		t.Fatalf("caught-up edge: %+v", r)
	}

	// While it is away, two more changes arrive and the stream is purged
	// before it reads them.
	src.Upsert("u9", 8)
	src.Del("u0")
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(t.Context(), pb.UsersStream)
	if err := s.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	st = natstest.StreamState(t, js)
	r := uplink.Plan(saved, st)
	if !r.Full || r.From != st.FirstSeq {
		t.Fatalf("after a purge of unseen messages Plan = %+v (saved %d, stream %+v)", r, saved.Seq, st)
	}
	// The full resync sees the registry's whole state.
	full := natstest.Collect(t, js, uplink.ConsumeOptions{Keys: testKeys, From: r.From}, len(src.Want()))
	seen := map[string]uint64{}
	for _, d := range full {
		seen[pb.ChangeUserID(d.Change)] = pb.ChangeRevision(d.Change)
	}
	for id, rev := range src.Want() {
		if seen[id] != rev {
			t.Fatalf("full resync has %q at %d, want %d", id, seen[id], rev)
		}
	}
}

func TestConsumeNoticesRecreation(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, err := publish.New(nc, publish.Options{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	src.Upsert("a", 8)
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	st := natstest.StreamState(t, js)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- uplink.Consume(ctx, js, uplink.ConsumeOptions{Keys: testKeys, From: 1, StreamCreated: st.Created, CheckEvery: 50 * time.Millisecond},
			func([]uplink.Delivery) error { return nil })
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{Recreate: true}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, uplink.ErrStreamReset) {
		t.Fatalf("Consume returned %v, want ErrStreamReset", err)
	}
}

func TestReadStreamStateMissing(t *testing.T) {
	n := natstest.Start(t)
	_, js := natstest.Connect(t, n.URL())
	_, err := uplink.ReadStreamState(t.Context(), js)
	if err == nil || !strings.Contains(err.Error(), "central creates it") {
		t.Fatalf("err = %v", err)
	}
	var r *pb.ConfigMsg[*pb.TokenKey]
	if r, err = pb.FetchTokenKey(t.Context(), js, testKeys); err == nil {
		t.Fatalf("FetchTokenKey = %v without a config stream", r)
	}
}

// testSigner signs what the tests' publishers write; testKeys trusts it.
var testSigner, testKeys = natstest.Signer(), natstest.Keys()

func runPublisher(t testing.TB, nc *nats.Conn, src publish.Source, o publish.Options) (*publish.Publisher, func()) {
	t.Helper()
	p, err := publish.New(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	return p, natstest.Go(t, func(ctx context.Context) error { return p.Run(ctx, src) })
}

func TestHeartbeatIsReadableJSON(t *testing.T) {
	n := natstest.Start(t)
	nc, _ := natstest.Connect(t, n.URL())
	sub, err := nc.SubscribeSync("faceauth.edges.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := uplink.PublishStatus(nc, &pb.EdgeStatus{EdgeId: "site-1", Model: "m1", AppliedRevision: 5}); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := string(msg.Data)
	if msg.Subject != "faceauth.edges.site-1.status" || !strings.Contains(s, `"edge_id":"site-1"`) || !strings.Contains(s, `"applied_revision":"5"`) {
		t.Fatalf("heartbeat on %s: %s", msg.Subject, s)
	}
}
