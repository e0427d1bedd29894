package pb_test

import (
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

// FuzzDecodeChange feeds arbitrary subjects, payloads and signature headers
// to what the edge runs on every users-stream message: decoding must never
// panic, an accepted change must belong to its subject, and nothing but
// the seeds central signed may pass verification.
func FuzzDecodeChange(f *testing.F) {
	src := natstest.NewSource()
	signer, keys := natstest.Signer(), natstest.Keys()
	for _, c := range []*pb.UserChange{src.Upsert("alice", 4), src.Upsert("a.b@c", 8), src.Del("bob")} {
		m, err := pb.ChangeMsg(signer, c, false)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Subject, m.Data, m.Header.Get(pb.KeyIDHeader), m.Header.Get(pb.SignatureHeader), m.Header.Get(pb.RevisionHeader))
	}
	f.Add(signer.UserSubject("x", ""), []byte{0x0a, 0x02}, "", "", "")
	f.Add("faceauth.users.!!", []byte{}, "k", "sig", "-1")
	f.Fuzz(func(t *testing.T, subject string, data []byte, keyID, sig, rev string) {
		c, err := pb.DecodeChange(subject, data)
		if err == nil {
			// The subject has the change's scope; only the signature
			// binds the user token, which the edge cannot recompute.
			_, site, _, _, kerr := pb.ChangeInfo(c)
			if _, ssite, serr := pb.ParseUserSubject(subject); kerr != nil || serr != nil || ssite != site {
				t.Fatalf("accepted a change of site %q on %s: %v %v", site, subject, kerr, serr)
			}
		}
		h := nats.Header{}
		h.Set(pb.KeyIDHeader, keyID)
		h.Set(pb.SignatureHeader, sig)
		h.Set(pb.RevisionHeader, rev)
		v, err := pb.DecodeVerified(keys, subject, h, data)
		if err != nil {
			return
		}
		// What verifies carries the revision its signature covers and
		// belongs to its subject.
		id, crev, _, _ := signer.ChangeKey(v)
		if hrev, _ := pb.HeaderRevision(h); hrev != crev || id != subject || !proto.Equal(v, c) {
			t.Fatalf("verified a change for %q revision %d (signed %d) on %s", id, crev, hrev, subject)
		}
	})
}
