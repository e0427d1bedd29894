package feed

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

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
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, _ := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})

	const dims = 512
	name1, name2 := "Erasable Firstname Zqx", "Erasable Renamed Wvy"
	vec1, vec2 := secretVector(0.731, dims), secretVector(-0.417, dims)
	set := func(name string, vec []float32) *pb.UserChange {
		src.mu.Lock()
		defer src.mu.Unlock()
		src.rev++
		c := &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{
			UserId: "erase.me", Revision: src.rev, Name: name, UpdatedAt: timestamppb.Now(),
			Embeddings: []*pb.Embedding{{Model: "m1", Vector: vec}},
		}}}
		src.state["erase.me"] = c
		return c
	}
	p.Publish(set(name1, vec1))
	// About 2 KB each: 5,000 fill more than one 8 MB block.
	for i := range 5000 {
		p.Publish(src.upsert(fmt.Sprintf("filler%04d", i), dims))
		if i%1000 == 999 {
			waitStream(t, js, src) // keep the queue from overflowing
		}
	}
	p.Publish(set(name2, vec2))
	waitStream(t, js, src)
	patterns := map[string][]byte{"first name": []byte(name1), "second name": []byte(name2),
		"first embedding": testenv.FloatBytes(vec1, 8), "second embedding": testenv.FloatBytes(vec2, 8)}
	if found := testenv.GrepFiles(t, patterns, n.dir); len(found) == 0 {
		t.Fatal("the user's data is nowhere in the JetStream store before the delete: the test looks in the wrong place")
	}

	p.Publish(src.del("erase.me"))
	waitStream(t, js, src)
	var found []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if found = testenv.GrepFiles(t, patterns, n.dir); len(found) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, f := range found {
		t.Error(f)
	}
	// A restarted server (recovering from the block files) holds nothing either.
	n.stop()
	for _, f := range testenv.GrepFiles(t, patterns, n.dir) {
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
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	_, stop := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})
	waitStream(t, js, src) // the streams exist
	stop()

	old := src.upsert("alice", 8)
	newer := src.upsert("alice", 8)
	bob := src.upsert("bob", 8)
	// The newer state first, then the older one: a slow replica.
	for _, c := range []*pb.UserChange{newer, old, bob} {
		m, err := changeMsg(testSigner, c, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	if st := streamInfo(t, js); st.Msgs != 3 {
		t.Fatalf("the stream holds %d messages before the reconciliation, want 3", st.Msgs)
	}
	p, _ := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner})
	waitStream(t, js, src)
	waitFor := time.Now().Add(30 * time.Second)
	for p.Status().Erased < 1 && time.Now().Before(waitFor) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := streamInfo(t, js); st.Msgs != 2 {
		t.Fatalf("the stream holds %d messages after the reconciliation, want 2 (one per user)", st.Msgs)
	}
	s, err := js.Stream(t.Context(), UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(t.Context(), UserSubject("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if rev, _ := headerRevision(m.Header); rev != ChangeRevision(newer) {
		t.Fatalf("alice's message is revision %d, want the newest, %d", rev, ChangeRevision(newer))
	}
}

// TestEraseChecksTheMessage: after the stream was re-created behind the
// publisher's back, the sequence it remembers for a user numbers another
// user's message, which must survive the erasure of the replaced one.
func TestEraseChecksTheMessage(t *testing.T) {
	n := startNATS(t)
	src := newSource()
	nc, js := connect(t, n.url())
	p, _ := runPublisher(t, nc, src, PublisherOptions{Signer: testSigner, CheckEvery: time.Hour})
	p.Publish(src.upsert("alice", 8)) // sequence 1
	waitStream(t, js, src)

	// An operator re-creates the stream; bob lands at sequence 1.
	if err := js.DeleteStream(t.Context(), UsersStream); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStreams(t.Context(), js, StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	bob := src.upsert("bob", 8)
	m, err := changeMsg(testSigner, bob, false)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := js.PublishMsg(t.Context(), m); err != nil || ack.Sequence != 1 {
		t.Fatalf("bob's message: %v %v, want sequence 1", ack, err)
	}
	p.Publish(src.upsert("alice", 8)) // replaces what the publisher thinks is at 1
	s, err := js.Stream(t.Context(), UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	waitSubject := func(id string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := s.GetLastMsgForSubject(t.Context(), UserSubject(id)); err == nil {
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
	p.Publish(src.upsert("carol", 8))
	waitSubject("carol")
	if _, err := s.GetMsg(t.Context(), 1); err != nil {
		t.Fatalf("bob's message at sequence 1 was erased for alice's replaced one: %v", err)
	}

}
