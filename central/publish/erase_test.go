package publish

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/internal/natstest"
	"github.com/xplore/faceauth/internal/testenv"
	pb "github.com/xplore/faceauth/proto"
)

// secretVector is an embedding whose encoding appears nowhere else.
func secretVector(seed float32, dims int) []float32 {
	v := make([]float32, dims)
	for i := range v {
		v[i] = seed + float32(i)/float32(dims*3)
	}
	return v
}

// TestErasedUserLeavesNoBytesInStream publishes a user, replaces it
// twice (a new name and embedding, then a tombstone) with thousands of
// other users in between, so that the first message sits in a full block
// and the second in the block being written, and checks that no file of
// the JetStream store holds the user's name or either embedding anymore.
// With a per-subject limit the server only unlinks a replaced message
// from its index and keeps its bytes in the block.
func TestErasedUserLeavesNoBytesInStream(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, _ := runPublisher(t, nc, src, Options{Signer: testSigner})

	const dims = 512
	name1, name2 := "Erasable Firstname Zqx", "Erasable Renamed Wvy"
	vec1, vec2 := secretVector(0.731, dims), secretVector(-0.417, dims)
	set := func(name string, vec []float32) *pb.UserChange {
		return src.Set(func(rev uint64) *pb.UserChange {
			return &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{
				UserId: "erase.me", Revision: rev, Name: name, UpdatedAt: timestamppb.Now(),
				Embeddings: []*pb.Embedding{{Model: "m1", Vector: vec}},
			}}}
		})
	}
	p.Publish(set(name1, vec1))
	// About 2 KB each: 5,000 fill more than one 8 MB block.
	for i := range 5000 {
		p.Publish(src.Upsert(fmt.Sprintf("filler%04d", i), dims))
		if i%1000 == 999 {
			natstest.WaitStream(t, js, src) // keep the queue from overflowing
		}
	}
	p.Publish(set(name2, vec2))
	natstest.WaitStream(t, js, src)
	patterns := map[string][]byte{"first name": []byte(name1), "second name": []byte(name2),
		"first embedding": testenv.FloatBytes(vec1, 8), "second embedding": testenv.FloatBytes(vec2, 8)}
	if found := testenv.GrepFiles(t, patterns, n.Dir()); len(found) == 0 {
		t.Fatal("the user's data is nowhere in the JetStream store before the delete: the test looks in the wrong place")
	}

	p.Publish(src.Del("erase.me"))
	natstest.WaitStream(t, js, src)
	var found []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if found = testenv.GrepFiles(t, patterns, n.Dir()); len(found) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, f := range found {
		t.Error(f)
	}
	// A restarted server (recovering from the block files) holds nothing either.
	n.Stop()
	for _, f := range testenv.GrepFiles(t, patterns, n.Dir()) {
		t.Errorf("after a server stop: %s", f)
	}
	_ = p
}

// TestReconcileErasesReplacedMessages: messages replaced while no
// publisher erased them (another replica's publish racing this one's, a
// crash between the ack and the erasure) are erased by the next
// reconciliation, keeping the newest revision even when it is not the
// newest message.
func TestReconcileErasesReplacedMessages(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	_, stop := runPublisher(t, nc, src, Options{Signer: testSigner})
	natstest.WaitStream(t, js, src) // the streams exist
	stop()

	old := src.Upsert("alice", 8)
	newer := src.Upsert("alice", 8)
	bob := src.Upsert("bob", 8)
	// The newer state first, then the older one: a slow replica.
	for _, c := range []*pb.UserChange{newer, old, bob} {
		m, err := pb.ChangeMsg(testSigner, c, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	if st := natstest.StreamState(t, js); st.Msgs != 3 {
		t.Fatalf("the stream holds %d messages before the reconciliation, want 3", st.Msgs)
	}
	p, _ := runPublisher(t, nc, src, Options{Signer: testSigner})
	natstest.WaitStream(t, js, src)
	waitFor := time.Now().Add(30 * time.Second)
	for p.Status().Erased < 1 && time.Now().Before(waitFor) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := natstest.StreamState(t, js); st.Msgs != 2 {
		t.Fatalf("the stream holds %d messages after the reconciliation, want 2 (one per user)", st.Msgs)
	}
	s, err := js.Stream(t.Context(), pb.UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(t.Context(), testSigner.UserSubject("alice", ""))
	if err != nil {
		t.Fatal(err)
	}
	if rev, _ := pb.HeaderRevision(m.Header); rev != pb.ChangeRevision(newer) {
		t.Fatalf("alice's message is revision %d, want the newest, %d", rev, pb.ChangeRevision(newer))
	}
}

// TestEraseChecksTheMessage: after the stream was re-created behind the
// publisher's back, the sequence it remembers for a user numbers another
// user's message, which must survive the erasure of the replaced one.
func TestEraseChecksTheMessage(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, _ := runPublisher(t, nc, src, Options{Signer: testSigner, CheckEvery: time.Hour})
	p.Publish(src.Upsert("alice", 8)) // sequence 1
	natstest.WaitStream(t, js, src)

	// An operator re-creates the stream; bob lands at sequence 1.
	if err := js.DeleteStream(t.Context(), pb.UsersStream); err != nil {
		t.Fatal(err)
	}
	if err := pb.EnsureStreams(t.Context(), js, pb.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	bob := src.Upsert("bob", 8)
	m, err := pb.ChangeMsg(testSigner, bob, false)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := js.PublishMsg(t.Context(), m); err != nil || ack.Sequence != 1 {
		t.Fatalf("bob's message: %v %v, want sequence 1", ack, err)
	}
	p.Publish(src.Upsert("alice", 8)) // replaces what the publisher thinks is at 1
	s, err := js.Stream(t.Context(), pb.UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	waitSubject := func(id string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := s.GetLastMsgForSubject(t.Context(), testSigner.UserSubject(id, "")); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's state never reached the stream", id)
			}
		}
	}
	waitSubject("alice")
	// The publisher erases after a batch's acks, before the next batch:
	// once a later change is on the stream, alice's erasure is done.
	p.Publish(src.Upsert("carol", 8))
	waitSubject("carol")
	if _, err := s.GetMsg(t.Context(), 1); err != nil {
		t.Fatalf("bob's message at sequence 1 was erased for alice's replaced one: %v", err)
	}

}
