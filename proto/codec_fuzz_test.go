package feed

import (
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	pb "github.com/xplore/faceauth/proto"
)

// FuzzDecodeChange feeds arbitrary subjects, payloads and signature headers
// to what the edge runs on every users-stream message: decoding must never
// panic, an accepted change must belong to its subject, and nothing but
// the seeds central signed may pass verification.
func FuzzDecodeChange(f *testing.F) {
	src := newSource()
	for _, c := range []*pb.UserChange{src.upsert("alice", 4), src.upsert("a.b@c", 8), src.del("bob")} {
		m, err := changeMsg(testSigner, c, false)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Subject, m.Data, m.Header.Get(KeyIDHeader), m.Header.Get(SignatureHeader), m.Header.Get(RevisionHeader))
	}
	f.Add(UserSubject("x"), []byte{0x0a, 0x02}, "", "", "")
	f.Add("faceauth.users.!!", []byte{}, "k", "sig", "-1")
	f.Fuzz(func(t *testing.T, subject string, data []byte, keyID, sig, rev string) {
		c, err := decodeChange(subject, data)
		if err == nil {
			key, _, _, kerr := changeKey(c) // the key is the subject it belongs on
			if kerr != nil || key != subject {
				t.Fatalf("accepted a change for %q on %s: %v", key, subject, kerr)
			}
		}
		h := nats.Header{}
		h.Set(KeyIDHeader, keyID)
		h.Set(SignatureHeader, sig)
		h.Set(RevisionHeader, rev)
		v, err := decodeVerified(testKeys, subject, h, data)
		if err != nil {
			return
		}
		// What verifies carries the revision its signature covers and
		// belongs to its subject.
		id, crev, _, _ := changeKey(v)
		if hrev, _ := headerRevision(h); hrev != crev || id != subject || !proto.Equal(v, c) {
			t.Fatalf("verified a change for %q revision %d (signed %d) on %s", id, crev, hrev, subject)
		}
	})
}
