package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/xplore/faceauth"
)

func TestRevocationsCheck(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 700e6, time.UTC) // 12:00:00.7
	r := Revocations{"door-1": at}
	tests := []struct {
		name    string
		subject string
		issued  time.Time
		revoked bool
	}{
		{"issued before", "door-1", at.Add(-time.Hour), true},
		{"issued in the same second", "door-1", at.Truncate(time.Second), true},
		{"issued the second after", "door-1", at.Truncate(time.Second).Add(time.Second), false},
		{"another subject", "door-2", at.Add(-time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.Check(&Claims{Subject: tt.subject, IssuedAt: tt.issued})
			if (err != nil) != tt.revoked {
				t.Fatalf("Check = %v, want revoked=%v", err, tt.revoked)
			}
			var fe *faceauth.Error
			if err != nil && (!errors.As(err, &fe) || fe.Kind != faceauth.KindUnauthenticated || fe.Code != "token_revoked") {
				t.Fatalf("error %#v, want an unauthenticated token_revoked one", err)
			}
		})
	}
	if err := Revocations(nil).Check(&Claims{Subject: "door-1"}); err != nil {
		t.Fatalf("nil Revocations refused: %v", err)
	}
}
