package publish

import (
	"encoding/base64"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

// TestOldSubjectsMigrated: a stream written by an older central is moved
// to the current subjects by the first reconciliation: every user is
// republished on "faceauth.users.<user token>._all" and the old messages
// are erased, so an edge reading its scopes gets every user and the
// stream holds one message per user on its current subject. The old forms:
// no scope token ("faceauth.users.<base64 id>", before scopes), the plain
// base64 id as the token (before user tokens were keyed hashes, no user
// header), and a token under another subject key (a rotated SECRET_KEY).
func TestOldSubjectsMigrated(t *testing.T) {
	other, err := pb.SignerFromSecret([]byte("a feed key from before a rotation"))
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(id string) string { return pb.UsersPrefix + base64.RawURLEncoding.EncodeToString([]byte(id)) }
	for _, tt := range []struct {
		name string
		// subject returns the old subject of user id's message.
		subject func(id string) string
	}{
		{"scopeless", b64},
		{"base64 id token", func(id string) string { return b64(id) + "." + pb.NoSite }},
		{"another subject key", func(id string) string { return other.UserSubject(id, "") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := natstest.Start(t)
			src := natstest.NewSource()
			nc, js := natstest.Connect(t, n.URL())
			_, stop := runPublisher(t, nc, src, Options{Signer: testSigner})
			natstest.WaitStream(t, js, src) // the streams exist
			stop()

			// What an older central left, signed as it signed.
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
				id, _, rev, op, _ := pb.ChangeInfo(c)
				m.Subject = tt.subject(id)
				m.Header.Del(pb.UserHeader)
				testSigner.Sign(m, op, id, rev)
				if tt.name == "scopeless" && !pb.IsScopelessUserSubject(m.Subject) {
					t.Fatalf("%s is not the scopeless form", m.Subject)
				}
				if _, err := js.PublishMsg(t.Context(), m); err != nil {
					t.Fatal(err)
				}
			}

			p, _ := runPublisher(t, nc, src, Options{Signer: testSigner})
			natstest.WaitStream(t, js, src)
			// The old messages are erased once the new ones are
			// acknowledged; what is left is each user's current subject.
			want := map[string]bool{}
			for id := range src.Want() {
				want[testSigner.UserSubject(id, "")] = true
			}
			s, err := js.Stream(t.Context(), pb.UsersStream)
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(pb.UsersSubjects))
				if err != nil {
					t.Fatal(err)
				}
				have := map[string]bool{}
				for subj := range info.State.Subjects {
					have[subj] = true
				}
				if maps.Equal(have, want) && info.State.Msgs == uint64(len(want)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the migration the stream holds %d messages on %v; want one on each of %v", info.State.Msgs, info.State.Subjects, want)
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
		})
	}
}
