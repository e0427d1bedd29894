package kvlocks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

// lockClock is a settable clock shared by limiters ("replicas").
type lockClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *lockClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *lockClock) step(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var testLimit = api.LimitConfig{MaxFailures: 3, Window: time.Minute, Lockout: 10 * time.Minute, MaxLockout: 30 * time.Minute, UserCeiling: 20}

// attempt runs one attempt of user from client through l and reports the
// error Begin gave (nil: answered, outcome recorded).
func attempt(t *testing.T, l *api.Limiter, user, client string, o api.Outcome) error {
	t.Helper()
	done, err := l.Begin(t.Context(), user, client)
	if err != nil {
		return err
	}
	done(o)
	return nil
}

func lockedFor(t *testing.T, l *api.Limiter, user, client string) time.Duration {
	t.Helper()
	d, err := l.Locked(t.Context(), user, client)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestLockoutPolicy runs the lockout policy (docs/api.md#lockout) on both
// stores: in memory (the edge) and in the JetStream key-value bucket on a
// real NATS server (central), with two limiters over the bucket standing
// for two central replicas.
func TestLockoutPolicy(t *testing.T) {
	n := natstest.Start(t)
	stores := []struct {
		name string
		open func(t *testing.T) (api.LockStore, api.LockStore)
	}{
		{"memory", func(t *testing.T) (api.LockStore, api.LockStore) {
			m := api.NewMemoryLocks()
			return m, m
		}},
		{"jetstream kv, two replicas", func(t *testing.T) (api.LockStore, api.LockStore) {
			ttl := testLimit.StateTTL()
			nc1, _ := natstest.Connect(t, n.URL())
			nc2, _ := natstest.Connect(t, n.URL())
			a, err := New(nc1, pb.StreamOptions{}, ttl)
			if err != nil {
				t.Fatal(err)
			}
			b, err := New(nc2, pb.StreamOptions{}, ttl)
			if err != nil {
				t.Fatal(err)
			}
			return a, b
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			clock := &lockClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			s1, s2 := st.open(t)
			r1 := api.NewLimiterWith(testLimit, s1, clock.now, nil)
			r2 := api.NewLimiterWith(testLimit, s2, clock.now, nil)
			// Each user is new to the bucket: the subtests share it.
			user := func(name string) string { return st.name[:3] + "-" + name }

			t.Run("a client locks a user for itself only, across replicas", func(t *testing.T) {
				u := user("alice")
				// Failures spread over both replicas add up.
				for i, r := range []*api.Limiter{r1, r2, r1} {
					if err := attempt(t, r, u, "door-1", api.Failed); err != nil {
						t.Fatalf("failure %d: %v", i, err)
					}
				}
				for _, r := range []*api.Limiter{r1, r2} {
					err := attempt(t, r, u, "door-1", api.Matched)
					if faceauth.KindOf(err) != faceauth.KindRateLimited {
						t.Fatalf("locked at door-1: %v", err)
					}
				}
				if d := lockedFor(t, r2, u, "door-1"); d != 10*time.Minute {
					t.Errorf("locked for %v, want 10m", d)
				}
				// Another client is not affected.
				if err := attempt(t, r2, u, "door-2", api.Matched); err != nil {
					t.Fatalf("door-2: %v", err)
				}
			})

			t.Run("one client's failures over many users lock the client, across replicas", func(t *testing.T) {
				cfg := testLimit
				cfg.ClientMaxFailures = 4
				c1 := api.NewLimiterWith(cfg, s1, clock.now, nil)
				c2 := api.NewLimiterWith(cfg, s2, clock.now, nil)
				sprayer := st.name[:3] + "-sprayer"
				// One attempt on each of four users, over both replicas,
				// with a success in between that does not reset the count.
				for i, r := range []*api.Limiter{c1, c2, c1, c2, c1} {
					o := api.Failed
					if i == 2 {
						o = api.Matched
					}
					if err := attempt(t, r, user(fmt.Sprintf("sprayed-%d", i)), sprayer, o); err != nil {
						t.Fatalf("attempt %d: %v", i, err)
					}
				}
				for _, r := range []*api.Limiter{c1, c2} {
					err := attempt(t, r, user("sprayed-next"), sprayer, api.Failed)
					if fe, _ := errors.AsType[*faceauth.Error](err); fe == nil || fe.Code != "client_locked" {
						t.Fatalf("a fifth user after four failures: %v, want client_locked", err)
					}
				}
				if err := attempt(t, c2, user("sprayed-next"), st.name[:3]+"-other-door", api.Failed); err != nil {
					t.Errorf("another client: %v", err)
				}
			})

			t.Run("locks double while failures continue, up to the cap", func(t *testing.T) {
				u := user("bob")
				for _, want := range []time.Duration{10 * time.Minute, 20 * time.Minute, 30 * time.Minute, 30 * time.Minute} {
					for range 3 {
						if err := attempt(t, r1, u, "door-1", api.Failed); err != nil {
							t.Fatal(err)
						}
					}
					if d := lockedFor(t, r2, u, "door-1"); d != want {
						t.Fatalf("locked for %v, want %v", d, want)
					}
					clock.step(want)
				}
				// A success resets the doubling.
				if err := attempt(t, r1, u, "door-1", api.Matched); err != nil {
					t.Fatal(err)
				}
				for range 3 {
					attempt(t, r2, u, "door-1", api.Failed)
				}
				if d := lockedFor(t, r1, u, "door-1"); d != 10*time.Minute {
					t.Fatalf("after a success locked for %v, want 10m again", d)
				}
			})

			t.Run("consecutive failures from many clients lock the user for everyone", func(t *testing.T) {
				u := user("carol")
				// Twenty doors, one failure each: no door reaches its
				// limit, the user reaches the ceiling.
				for i := range testLimit.UserCeiling {
					r := []*api.Limiter{r1, r2}[i%2]
					if err := attempt(t, r, u, "door-"+string(rune('a'+i)), api.Failed); err != nil {
						t.Fatalf("failure %d: %v", i, err)
					}
				}
				err := attempt(t, r2, u, "a-new-door", api.Matched)
				if faceauth.KindOf(err) != faceauth.KindRateLimited {
					t.Fatalf("the ceiling did not lock the user everywhere: %v", err)
				}
				// A success after the lock resets the count.
				clock.step(10 * time.Minute)
				if err := attempt(t, r1, u, "a-new-door", api.Matched); err != nil {
					t.Fatal(err)
				}
				if err := attempt(t, r1, u, "door-a", api.Failed); err != nil {
					t.Fatalf("after a success: %v", err)
				}
			})

			t.Run("identify is limited per client", func(t *testing.T) {
				client := user("kiosk")
				for range 3 {
					done, err := r1.BeginIdentify(t.Context(), client)
					if err != nil {
						t.Fatal(err)
					}
					done(api.Failed)
				}
				if _, err := r2.BeginIdentify(t.Context(), client); faceauth.KindOf(err) != faceauth.KindRateLimited {
					t.Fatalf("fourth failed identify: %v", err)
				}
				if _, err := r2.BeginIdentify(t.Context(), user("other-kiosk")); err != nil {
					t.Fatalf("another client: %v", err)
				}
			})

			t.Run("concurrent failures all count", func(t *testing.T) {
				// Six doors through two replicas race on the same user
				// key; the compare-and-swap must keep every failure.
				u := user("dave")
				var wg sync.WaitGroup
				for i := range testLimit.UserCeiling - 1 {
					wg.Go(func() {
						attempt(t, []*api.Limiter{r1, r2}[i%2], u, "door-"+string(rune('a'+i)), api.Failed)
					})
				}
				wg.Wait()
				// One short of the ceiling: one more anywhere locks.
				attempt(t, r1, u, "door-z", api.Failed)
				if d := lockedFor(t, r2, u, "another"); d == 0 {
					t.Fatal("lost a concurrent failure: the ceiling was not reached")
				}
			})
		})
	}
}

// TestLockoutSurvivesRestart locks a user through the bucket, restarts the
// NATS server on the same folder and checks that a new limiter (a
// restarted central) still refuses the user.
func TestLockoutSurvivesRestart(t *testing.T) {
	n := natstest.Start(t)
	nc, _ := natstest.Connect(t, n.URL())
	locks, err := New(nc, pb.StreamOptions{}, testLimit.StateTTL())
	if err != nil {
		t.Fatal(err)
	}
	l := api.NewLimiterWith(testLimit, locks, nil, nil)
	for range 3 {
		if err := attempt(t, l, "erin", "door-1", api.Failed); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	n.Stop()
	n.Start()

	nc2, _ := natstest.Connect(t, n.URL())
	locks2, err := New(nc2, pb.StreamOptions{}, testLimit.StateTTL())
	if err != nil {
		t.Fatal(err)
	}
	l2 := api.NewLimiterWith(testLimit, locks2, nil, nil)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done, err := l2.Begin(ctx, "erin", "door-1")
	if faceauth.KindOf(err) != faceauth.KindRateLimited {
		if done != nil {
			done(api.Abandoned)
		}
		t.Fatalf("after the restart erin is not locked: %v", err)
	}
}

// TestLockoutBucketHoldsNoUserIDs checks that the bucket's keys and values
// name no user.
func TestLockoutBucketHoldsNoUserIDs(t *testing.T) {
	n := natstest.Start(t)
	nc, js := natstest.Connect(t, n.URL())
	locks, err := New(nc, pb.StreamOptions{}, testLimit.StateTTL())
	if err != nil {
		t.Fatal(err)
	}
	l := api.NewLimiterWith(testLimit, locks, nil, nil)
	if err := attempt(t, l, "frank.secret@example.org", "door-1", api.Failed); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), pb.LockoutBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	for k := range keys.Keys() {
		seen++
		e, err := kv.Get(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{k, string(e.Value())} {
			if strings.Contains(s, "frank") || strings.Contains(s, "door-1") {
				t.Errorf("the bucket names the user or client: %q", s)
			}
		}
	}
	if seen != 2 {
		t.Errorf("%d keys, want 2 (the user and the user at door-1)", seen)
	}
}
