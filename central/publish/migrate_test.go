package publish

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

// TestScopelessSubjectsMigrated: a stream written before user subjects
// ended with a scope ("faceauth.users.<id token>") is moved to the scoped
// subjects by the first reconciliation: every user is republished on
// "faceauth.users.<id token>._all" and the old messages are erased, so an
// edge reading its scopes gets every user and the stream holds one message
// per user.
func TestScopelessSubjectsMigrated(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	_, stop := runPublisher(t, nc, src, Options{Signer: testSigner})
	natstest.WaitStream(t, js, src) // the streams exist
	stop()

	// What an older central left: each user on the scopeless subject.
	src.Upsert("carol", 8)
	var old []*pb.UserChange
	for _, id := range natstest.TrickyIDs {
		old = append(old, src.Upsert(id, 8))
	}
	old = append(old, src.Upsert("alice", 8), src.Del("carol"))
	for _, c := range old {
		m, err := pb.ChangeMsg(testSigner, c, false)
		if err != nil {
			t.Fatal(err)
		}
		m.Subject = strings.TrimSuffix(m.Subject, "."+pb.NoSite)
		if !pb.IsScopelessUserSubject(m.Subject) {
			t.Fatalf("%s is not the scopeless form", m.Subject)
		}
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}

	p, _ := runPublisher(t, nc, src, Options{Signer: testSigner})
	natstest.WaitStream(t, js, src)
	// The old messages are erased once the new ones are acknowledged.
	s, err := js.Stream(t.Context(), pb.UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(pb.UsersPrefix+"*"))
		if err != nil {
			t.Fatal(err)
		}
		if len(info.State.Subjects) == 0 && info.State.Msgs == uint64(len(src.Want())) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the migration the stream holds %d messages, %d of them on scopeless subjects; want %d and none",
				info.State.Msgs, len(info.State.Subjects), len(src.Want()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := p.Status(); st.Erased < uint64(len(old)) {
		t.Fatalf("the publisher erased %d messages, want at least the %d old ones", st.Erased, len(old))
	}
	// An edge of no site reads every user from its scope's filter.
	got := natstest.Collect(t, js, uplink.ConsumeOptions{Keys: testKeys, Scopes: []uplink.Scope{{Name: pb.NoSite}}}, len(src.Want()))
	read := map[string]uint64{}
	for _, d := range got {
		if d.Err != nil {
			t.Fatalf("message %d: %v", d.Seq, d.Err)
		}
		read[pb.ChangeUserID(d.Change)] = pb.ChangeRevision(d.Change)
	}
	for id, rev := range src.Want() {
		if read[id] != rev {
			t.Errorf("the edge read %s at revision %d, want %d", id, read[id], rev)
		}
	}
}
