package api

import (
	"errors"
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

// TestLimiterClientBound: one face tried once against each of many user
// ids (a spray: at a false-match rate of 1e-3, one accept in a thousand)
// triggers no per-user count, so a client's failures across users are
// bounded too; a success does not reset that bound, other clients are not
// affected, and the locks double.
func TestLimiterClientBound(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := NewLimiter(LimitConfig{MaxFailures: 5, Window: time.Hour, Lockout: 10 * time.Minute, ClientMaxFailures: 10}, clock.now)
	ctx := t.Context()
	n := 0
	attempt := func(client string, o Outcome) error {
		n++
		done, err := l.Begin(ctx, fmt.Sprintf("user-%04d", n), client)
		if err != nil {
			return err
		}
		done(o)
		return nil
	}
	wantLocked := func(t *testing.T, err error, after time.Duration) {
		t.Helper()
		var re *RetryError
		if faceauth.KindOf(err) != faceauth.KindRateLimited || !errors.As(err, &re) || re.After != after {
			t.Fatalf("got %v, want 429 client_locked for %v", err, after)
		}
		if fe, _ := errors.AsType[*faceauth.Error](err); fe == nil || fe.Code != "client_locked" {
			t.Fatalf("code of %v, want client_locked", err)
		}
	}
	// Nine failures on nine users, a success (of the spraying client's own
	// enrolled face, say), then the tenth failure: locked.
	for i := range 9 {
		if err := attempt("door-1", Failed); err != nil {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if err := attempt("door-1", Matched); err != nil {
		t.Fatal(err)
	}
	if err := attempt("door-1", Failed); err != nil {
		t.Fatal(err)
	}
	wantLocked(t, attempt("door-1", Matched), 10*time.Minute)
	if err := attempt("door-2", Failed); err != nil {
		t.Errorf("another client is locked too: %v", err)
	}
	// Failures older than the window do not count; the next lock doubles.
	clock.t = clock.t.Add(10 * time.Minute)
	for range 9 {
		if err := attempt("door-1", Failed); err != nil {
			t.Fatal(err)
		}
	}
	clock.t = clock.t.Add(2 * time.Hour)
	for range 9 {
		if err := attempt("door-1", Failed); err != nil {
			t.Fatalf("failures older than the window counted: %v", err)
		}
	}
	if err := attempt("door-1", Failed); err != nil {
		t.Fatal(err)
	}
	wantLocked(t, attempt("door-1", Failed), 20*time.Minute)

	// Parallel attempts count while in flight.
	clock.t = clock.t.Add(time.Hour)
	var dones []func(Outcome)
	for range 10 {
		n++
		d, err := l.Begin(ctx, fmt.Sprintf("user-%04d", n), "door-3")
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, d)
	}
	if _, err := l.Begin(ctx, "someone-else", "door-3"); faceauth.KindOf(err) != faceauth.KindRateLimited {
		t.Errorf("an eleventh parallel attempt: %v", err)
	}
	for _, d := range dones {
		d(Abandoned)
	}
}
