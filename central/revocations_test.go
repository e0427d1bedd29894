package central

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/internal/centraltest"
	pb "github.com/xplore/faceauth/proto"
)

// listRecorder is a RevocationPublisher that keeps the last list.
type listRecorder struct {
	mu   sync.Mutex
	last *pb.TokenRevocations
}

func (l *listRecorder) PublishRevocations(list *pb.TokenRevocations) {
	l.mu.Lock()
	l.last = list
	l.mu.Unlock()
}

// TestRevocations: revocations are stored, seen by another replica on
// Load, survive concurrent writers, and reach the publisher.
func TestRevocations(t *testing.T) {
	for _, b := range centraltest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			s := b.Open(t)
			pub := &listRecorder{}
			now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
			a := NewRevocations(RevocationsConfig{Store: s, Publisher: pub, Log: quiet, Now: func() time.Time { return now }})
			other := NewRevocations(RevocationsConfig{Store: s, Log: quiet, Now: func() time.Time { return now }})
			if err := a.Load(ctx); err != nil {
				t.Fatal(err)
			}
			if len(a.Map()) != 0 || a.List().Version != 0 {
				t.Fatalf("empty store: %v", a.List())
			}
			rv, err := a.Revoke(ctx, "door-1", "stolen")
			if err != nil || rv.Subject != "door-1" || !rv.RevokedAt.AsTime().Equal(now) || rv.Reason != "stolen" {
				t.Fatalf("Revoke: %v %v", rv, err)
			}
			if got := a.Map()["door-1"]; !got.Equal(now) {
				t.Fatalf("Map()[door-1] = %v", got)
			}
			v1 := a.List().Version
			if v1 < uint64(now.UnixMicro()) || pub.last.GetVersion() != v1 || len(pub.last.GetRevocations()) != 1 {
				t.Fatalf("published %v", pub.last)
			}
			// Another replica sees it once it re-reads the store.
			if err := other.Load(ctx); err != nil || other.Map()["door-1"].IsZero() {
				t.Fatalf("other replica: %v %v", other.List(), err)
			}

			// Concurrent revocations through two replicas all land.
			var wg sync.WaitGroup
			for i := range 20 {
				r := a
				if i%2 == 1 {
					r = other
				}
				wg.Go(func() {
					if _, err := r.Revoke(ctx, fmt.Sprintf("s%02d", i), ""); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			check := NewRevocations(RevocationsConfig{Store: s, Log: quiet})
			if err := check.Load(ctx); err != nil {
				t.Fatal(err)
			}
			if l := check.List(); l.Version < v1+20 || len(l.Revocations) != 21 {
				t.Fatalf("after 21 revocations: version %d, %d subjects", l.Version, len(l.Revocations))
			}

			// Revoking again moves the time forward; the list keeps one entry.
			v21 := check.List().Version
			now = now.Add(time.Hour)
			if _, err := a.Revoke(ctx, "door-1", ""); err != nil {
				t.Fatal(err)
			}
			if err := check.Load(ctx); err != nil || !check.Map()["door-1"].Equal(now) || len(check.List().Revocations) != 21 {
				t.Fatalf("re-revoked: %v %v", check.List(), err)
			}
			// An older list never replaces a newer one.
			if v := check.List().Version; v <= v21 {
				t.Fatalf("version %d after %d", v, v21)
			}
			a.use(&pb.TokenRevocations{Version: 3}, false)
			if a.List().Version != check.List().Version {
				t.Fatalf("an older list replaced the newer: version %d", a.List().Version)
			}

			// The store restored from an older backup: the next revocation
			// still gets a version above every list published since.
			newest := pub.last.GetVersion()
			old, _ := proto.Marshal(&pb.TokenRevocations{Version: 5})
			if _, err := s.Put(ctx, revocationsKey, old, faceauth.Cond{}); err != nil {
				t.Fatal(err)
			}
			now = now.Add(time.Second)
			if _, err := a.Revoke(ctx, "door-3", ""); err != nil {
				t.Fatal(err)
			}
			if v := pub.last.GetVersion(); v <= newest {
				t.Fatalf("after a restore: published version %d, not above %d", v, newest)
			}
		})
	}
}

func TestRevokeRefuses(t *testing.T) {
	r := NewRevocations(RevocationsConfig{Store: centraltest.Backends[0].Open(t), Log: quiet})
	tests := []struct {
		name, subject, reason, code string
	}{
		{"no subject", "", "", "missing_subject"},
		{"blank subject", "  ", "", "missing_subject"},
		{"long subject", strings.Repeat("s", MaxSubjectLen+1), "", "invalid_subject"},
		{"control character", "door\n1", "", "invalid_subject"},
		{"bad UTF-8", "door\xff", "", "invalid_subject"},
		{"long reason", "door-1", strings.Repeat("r", MaxReasonLen+1), "invalid_reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Revoke(t.Context(), tt.subject, tt.reason)
			if faceauth.KindOf(err) != faceauth.KindInvalid || !hasCode(err, tt.code) {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
		})
	}
	if l := r.List(); l.Version != 0 {
		t.Fatalf("a refused revocation was stored: %v", l)
	}
}
