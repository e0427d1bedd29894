package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/xplore/faceauth"
)

// TestMemoryLocksBounded: every failed attempt on a new user id adds
// lockout states, so a client that tries ever new user ids must not grow
// the edge's memory without bound; and the flood must not erase the locks
// that matter, nor the failures just counted.
func TestMemoryLocksBounded(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := NewLimiter(LimitConfig{MaxFailures: 3, Window: time.Hour, Lockout: 10 * time.Hour}, clock.now)
	store := l.store.(*MemoryLocks)
	ctx := t.Context()
	attempt := func(user, client string) error {
		done, err := l.Begin(ctx, user, client)
		if err != nil {
			return err
		}
		done(Failed)
		return nil
	}
	for range 3 {
		if err := attempt("victim", "door-1"); err != nil {
			t.Fatal(err)
		}
	}
	// An unknown user's failure is a failure like any other (no
	// enumeration): two states each, the pair and the user.
	flood := MaxMemoryLocks/2 + 1000
	for i := range flood {
		clock.t = clock.t.Add(time.Millisecond)
		if err := attempt(fmt.Sprintf("nobody-%07d", i), "door-2"); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	keys, locked := store.Counts(clock.t)
	if keys > MaxMemoryLocks {
		t.Errorf("the store holds %d lockout states after %d failures on new user ids, want at most %d", keys, flood, MaxMemoryLocks)
	}
	if locked != 1 {
		t.Errorf("%d states are locked, want 1 (the victim's for door-1)", locked)
	}
	if err := attempt("victim", "door-1"); faceauth.KindOf(err) != faceauth.KindRateLimited {
		t.Errorf("the victim's lock for door-1 did not survive the flood: %v", err)
	}
	// The newest states are kept: two more failures of the last user lock it.
	last := fmt.Sprintf("nobody-%07d", flood-1)
	for range 2 {
		if err := attempt(last, "door-2"); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := l.Locked(ctx, last, "door-2"); d == 0 {
		t.Error("the failures of the newest pair were dropped")
	}
}
