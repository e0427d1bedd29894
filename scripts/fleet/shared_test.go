package main

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	pb "github.com/xplore/faceauth/proto"
)

// TestSharedChecks: with -verify once, a message passes unchecked only when
// the same sequence, signature, subject and payload passed the check
// before; anything else gets a check of its own and fails as it would at a
// real edge.
func TestSharedChecks(t *testing.T) {
	signer := newTestSigner(t, 1)
	other := newTestSigner(t, 2)
	good := changeMsg(t, signer, "user.a@example.com", 1, "A")
	tampered := copyMsg(good)
	tampered.Data = bytes.Replace(tampered.Data, []byte("A"), []byte("B"), 1)
	foreign := changeMsg(t, other, "user.a@example.com", 1, "A")

	type delivery struct {
		seq     uint64
		msg     *nats.Msg
		wantErr error // nil: decodes
	}
	tests := []struct {
		name       string
		deliveries []delivery
		wantChecks int64
	}{
		{"the same message at two edges is checked once",
			[]delivery{{1, good, nil}, {1, good, nil}, {1, good, nil}}, 1},
		{"a changed payload under the checked signature is checked and refused",
			[]delivery{{1, good, nil}, {1, tampered, pb.ErrRejected}}, 2},
		{"another key's signature at a checked sequence is checked and refused",
			[]delivery{{1, good, nil}, {1, foreign, pb.ErrUnknownKey}}, 2},
		{"after a refused message every later one at its sequence is checked",
			[]delivery{{1, tampered, pb.ErrRejected}, {1, good, nil}, {1, good, nil}}, 3},
		{"a sequence after the run's last is checked every time",
			[]delivery{{5, good, nil}, {5, good, nil}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSharedChecks(pb.TrustKey(signer.PublicKey()), 3)
			for i, d := range tt.deliveries {
				c, err := s.decode(d.seq, d.msg.Subject, d.msg.Header, d.msg.Data)
				switch {
				case d.wantErr == nil && err != nil:
					t.Fatalf("delivery %d: %v", i, err)
				case d.wantErr == nil && pb.ChangeUserID(c) != "user.a@example.com":
					t.Fatalf("delivery %d: decoded %v", i, c)
				case d.wantErr != nil && !errors.Is(err, d.wantErr):
					t.Fatalf("delivery %d: err = %v, want %v", i, err, d.wantErr)
				}
			}
			if got := s.checks.Load(); got != tt.wantChecks {
				t.Errorf("signatures checked: %d, want %d", got, tt.wantChecks)
			}
		})
	}
}

func newTestSigner(t *testing.T, b byte) *pb.Signer {
	t.Helper()
	s, err := pb.NewSigner(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func changeMsg(t *testing.T, s *pb.Signer, id string, rev uint64, name string) *nats.Msg {
	t.Helper()
	m, err := pb.ChangeMsg(s, &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: id, Revision: rev, Name: name}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func copyMsg(m *nats.Msg) *nats.Msg {
	c := nats.NewMsg(m.Subject)
	c.Data = bytes.Clone(m.Data)
	for k, v := range m.Header {
		c.Header[k] = append([]string(nil), v...)
	}
	return c
}
