package feed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	pb "github.com/xplore/faceauth/proto"
)

func TestUserSubject(t *testing.T) {
	for _, id := range trickyIDs {
		t.Run(id, func(t *testing.T) {
			subj := UserSubject(id)
			tok := strings.TrimPrefix(subj, "faceauth.users.")
			if tok == "" || strings.ContainsAny(tok, ".*> \t") {
				t.Fatalf("UserSubject(%q) = %q is not one valid token", id, subj)
			}
			got, err := UserIDFromSubject(subj)
			if err != nil || got != id {
				t.Fatalf("UserIDFromSubject(%q) = %q, %v; want %q", subj, got, err, id)
			}
		})
	}
	for _, bad := range []string{"faceauth.users.", "faceauth.users.a.b", "faceauth.config.x", "faceauth.users.!!"} {
		if id, err := UserIDFromSubject(bad); err == nil {
			t.Errorf("UserIDFromSubject(%q) = %q, want an error", bad, id)
		}
	}
	// Distinct ids never share a subject.
	seen := map[string]string{}
	for _, id := range append(trickyIDs, "a.b.", "a_b", "ab", "a-b") {
		if prev, ok := seen[UserSubject(id)]; ok {
			t.Fatalf("%q and %q share subject %s", prev, id, UserSubject(id))
		}
		seen[UserSubject(id)] = id
	}
}

func TestValidateEdgeID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"site-1", true},
		{"Lobby_2", true},
		{strings.Repeat("e", MaxEdgeIDLen), true},
		{"", false},
		{strings.Repeat("e", MaxEdgeIDLen+1), false},
		{"a.b", false},
		{"a*", false},
		{"a>", false},
		{"a b", false},
		{"é", false},
	}
	for _, tc := range tests {
		if err := ValidateEdgeID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidateEdgeID(%q) = %v, want ok = %v", tc.id, err, tc.ok)
		}
	}
}

func TestReceiptSubject(t *testing.T) {
	for _, id := range trickyIDs {
		e, u, ok := parseReceiptSubject(ReceiptSubject("site-1", id))
		if !ok || e != "site-1" || u != id {
			t.Errorf("round trip of %q gave %q, %q, %v", id, e, u, ok)
		}
	}
	for _, bad := range []string{"faceauth.receipts.site-1", "faceauth.receipts.a.b.c", "faceauth.receipts..YQ", "faceauth.edges.x.status"} {
		if _, _, ok := parseReceiptSubject(bad); ok {
			t.Errorf("parseReceiptSubject(%q) accepted", bad)
		}
	}
}

func TestPlan(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	tests := []struct {
		name     string
		pos      Position
		st       StreamState
		wantFull bool
		wantFrom uint64
	}{
		{"fresh edge", Position{}, StreamState{FirstSeq: 5, LastSeq: 9, Created: t0}, true, 5},
		{"fresh edge, empty new stream", Position{}, StreamState{FirstSeq: 0, LastSeq: 0, Created: t0}, true, 1},
		{"caught up", Position{9, t0}, StreamState{FirstSeq: 5, LastSeq: 9, Created: t0}, false, 10},
		{"behind, nothing removed", Position{6, t0}, StreamState{FirstSeq: 5, LastSeq: 9, Created: t0}, false, 7},
		{"next message is the first", Position{4, t0}, StreamState{FirstSeq: 5, LastSeq: 9, Created: t0}, false, 5},
		{"everything purged after the edge read it all", Position{9, t0}, StreamState{FirstSeq: 10, LastSeq: 9, Created: t0}, false, 10},
		{"messages removed unseen", Position{3, t0}, StreamState{FirstSeq: 5, LastSeq: 9, Created: t0}, true, 5},
		{"purged with unseen messages", Position{7, t0}, StreamState{FirstSeq: 10, LastSeq: 9, Created: t0}, true, 10},
		{"stream reset", Position{12, t0}, StreamState{FirstSeq: 1, LastSeq: 9, Created: t0}, true, 1},
		{"stream re-created", Position{4, t0}, StreamState{FirstSeq: 1, LastSeq: 9, Created: t1}, true, 1},
		{"no saved creation time", Position{Seq: 9}, StreamState{FirstSeq: 5, LastSeq: 9, Created: t1}, false, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Plan(tc.pos, tc.st)
			if r.Full != tc.wantFull || r.From != tc.wantFrom || r.Reason == "" {
				t.Fatalf("Plan = %+v, want full=%v from=%d", r, tc.wantFull, tc.wantFrom)
			}
		})
	}
}

// collect consumes from from until it has n deliveries.
func collect(t *testing.T, js jetstream.JetStream, o ConsumeOptions, n int) []Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var got []Delivery
	done := errors.New("done")
	err := Consume(ctx, js, o, func(batch []Delivery) error {
		got = append(got, batch...)
		if len(got) >= n {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("Consume: %v after %d deliveries", err, len(got))
	}
	return got
}

func TestConsume(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, _ := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})
	for _, id := range trickyIDs {
		p.Publish(src.upsert(id, 512))
	}
	p.Publish(src.del("a.b"))
	waitStream(t, js, src)

	got := collect(t, js, ConsumeOptions{Keys: testKeys}, len(trickyIDs))
	want := src.want()
	var prev uint64
	for _, d := range got {
		if d.Err != nil {
			t.Fatalf("delivery %d: %v", d.Seq, d.Err)
		}
		if d.Seq <= prev {
			t.Fatalf("sequence %d after %d", d.Seq, prev)
		}
		prev = d.Seq
		id := ChangeUserID(d.Change)
		if want[id] != ChangeRevision(d.Change) {
			t.Fatalf("user %q at revision %d, want %d", id, ChangeRevision(d.Change), want[id])
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
	st := streamInfo(t, js)
	go func() {
		time.Sleep(100 * time.Millisecond)
		p.Publish(src.upsert("late.comer", 8))
	}()
	live := collect(t, js, ConsumeOptions{Keys: testKeys, From: st.LastSeq + 1, StreamCreated: st.Created}, 1)
	if id := ChangeUserID(live[0].Change); id != "late.comer" || live[0].Seq != st.LastSeq+1 {
		t.Fatalf("live delivery %q at %d", id, live[0].Seq)
	}
}

func TestConsumeUndecodable(t *testing.T) {
	n := startNATS(t)
	nc, js := connect(t, n.url())
	src := newSource()
	p, err := NewPublisher(nc, PublisherOptions{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), src, ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	// Garbage, then a change whose payload names another user.
	if _, err := js.Publish(t.Context(), UserSubject("x"), []byte{0xff, 0x01}); err != nil {
		t.Fatal(err)
	}
	wrong, _ := changeMsg(testSigner, newSource().upsert("y", 4), false)
	wrong.Subject = UserSubject("z")
	if _, err := js.PublishMsg(t.Context(), wrong); err != nil {
		t.Fatal(err)
	}
	good, _ := changeMsg(testSigner, newSource().upsert("ok", 4), false)
	if _, err := js.PublishMsg(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	got := collect(t, js, ConsumeOptions{Keys: testKeys}, 3)
	if got[0].Err == nil || got[1].Err == nil || got[2].Err != nil || got[2].Seq != 3 {
		t.Fatalf("deliveries: %+v", got)
	}
}

func TestGapRuleAfterPurge(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, err := NewPublisher(nc, PublisherOptions{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		src.upsert(fmt.Sprintf("u%d", i), 8)
	}
	if _, err := p.Resync(t.Context(), src, ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	// The edge applies everything and saves its position.
	got := collect(t, js, ConsumeOptions{Keys: testKeys}, 3)
	st := streamInfo(t, js)
	saved := Position{Seq: got[2].Seq, StreamCreated: st.Created}
	if r := Plan(saved, st); r.Full || r.From != saved.Seq+1 {
		t.Fatalf("caught-up edge: %+v", r)
	}

	// While it is away, two more changes arrive and the stream is purged
	// before it reads them.
	src.upsert("u9", 8)
	src.del("u0")
	if _, err := p.Resync(t.Context(), src, ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(t.Context(), UsersStream)
	if err := s.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), src, ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	st = streamInfo(t, js)
	r := Plan(saved, st)
	if !r.Full || r.From != st.FirstSeq {
		t.Fatalf("after a purge of unseen messages Plan = %+v (saved %d, stream %+v)", r, saved.Seq, st)
	}
	// The full resync sees the registry's whole state.
	full := collect(t, js, ConsumeOptions{Keys: testKeys, From: r.From}, len(src.want()))
	seen := map[string]uint64{}
	for _, d := range full {
		seen[ChangeUserID(d.Change)] = ChangeRevision(d.Change)
	}
	for id, rev := range src.want() {
		if seen[id] != rev {
			t.Fatalf("full resync has %q at %d, want %d", id, seen[id], rev)
		}
	}
}

func TestConsumeNoticesRecreation(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, err := NewPublisher(nc, PublisherOptions{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	src.upsert("a", 8)
	if _, err := p.Resync(t.Context(), src, ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	st := streamInfo(t, js)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- Consume(ctx, js, ConsumeOptions{Keys: testKeys, From: 1, StreamCreated: st.Created, CheckEvery: 50 * time.Millisecond},
			func([]Delivery) error { return nil })
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := p.Resync(t.Context(), src, ResyncOptions{Recreate: true}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrStreamReset) {
		t.Fatalf("Consume returned %v, want ErrStreamReset", err)
	}
}

func TestReadStreamStateMissing(t *testing.T) {
	n := startNATS(t)
	_, js := connect(t, n.url())
	_, err := ReadStreamState(t.Context(), js)
	if err == nil || !strings.Contains(err.Error(), "central creates it") {
		t.Fatalf("err = %v", err)
	}
	var r *ConfigMsg[*pb.TokenKey]
	if r, err = FetchTokenKey(t.Context(), js, testKeys); err == nil {
		t.Fatalf("FetchTokenKey = %v without a config stream", r)
	}
}
