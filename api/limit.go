package api

import (
	"sync"
	"time"

	"github.com/xplore/faceauth"
)

// LimitConfig configures the per-user verify lockout.
type LimitConfig struct {
	// MaxFailures failed verifications within Window lock the user for
	// Lockout. 0 disables the limit.
	MaxFailures int
	Window      time.Duration
	Lockout     time.Duration
}

// DefaultLimit is the lockout used when none is configured: 5 failures in
// 3 minutes lock the user for 15 minutes.
var DefaultLimit = LimitConfig{MaxFailures: 5, Window: 3 * time.Minute, Lockout: 15 * time.Minute}

// Limiter counts failed verifications per user and locks a user out after
// too many. The state is in memory: each central replica and each edge
// counts on its own, so an attacker spreading attempts over n of them gets
// up to n times the attempts.
//
// Attempts in flight count against the limit until they finish, so a burst
// of parallel requests cannot exceed it.
type Limiter struct {
	cfg   LimitConfig
	now   func() time.Time
	mu    sync.Mutex
	users map[string]*limitState
	calls int
}

type limitState struct {
	failures    []time.Time // within the window, oldest first
	inFlight    int
	lockedUntil time.Time
}

// Outcome is how a verification attempt ended, for the limiter.
type Outcome int

// The outcomes.
const (
	// Abandoned attempts never compared a face (unreadable photo, unknown
	// user, an error) and do not count.
	Abandoned Outcome = iota
	Matched           // resets the user's failures
	Failed            // counts towards the lockout
)

// NewLimiter returns a limiter; now is the clock (nil means time.Now).
func NewLimiter(cfg LimitConfig, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{cfg: cfg, now: now, users: map[string]*limitState{}}
}

// Config returns the limiter's settings.
func (l *Limiter) Config() LimitConfig { return l.cfg }

// Begin starts a verification attempt for user. When the user is locked
// out, or the attempts in flight would reach the limit, it returns a
// KindRateLimited error carrying Retry-After. Otherwise the caller must
// call done exactly once with the outcome.
func (l *Limiter) Begin(user string) (done func(Outcome), err error) {
	if l == nil || l.cfg.MaxFailures <= 0 {
		return func(Outcome) {}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	st := l.users[user]
	if st == nil {
		st = &limitState{}
		l.users[user] = st
	}
	st.prune(now, l.cfg.Window)
	if now.Before(st.lockedUntil) {
		return nil, locked(st.lockedUntil.Sub(now))
	}
	if len(st.failures)+st.inFlight >= l.cfg.MaxFailures {
		// Only parallel attempts get here: the failures alone would have
		// locked the user. Ask to retry once one finishes.
		return nil, WithRetryAfter(faceauth.E(faceauth.KindRateLimited, "too_many_attempts",
			"Too many verification attempts for this user are in progress; try again shortly."), time.Second)
	}
	st.inFlight++
	var once sync.Once
	return func(o Outcome) {
		once.Do(func() { l.finish(st, o) })
	}, nil
}

func (l *Limiter) finish(st *limitState, o Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st.inFlight--
	now := l.now()
	switch o {
	case Abandoned:
		return
	case Matched:
		st.failures = st.failures[:0]
		return
	}
	st.prune(now, l.cfg.Window)
	st.failures = append(st.failures, now)
	if len(st.failures) >= l.cfg.MaxFailures {
		st.lockedUntil = now.Add(l.cfg.Lockout)
		st.failures = st.failures[:0]
	}
}

// Locked reports how long user stays locked out, 0 when not locked.
func (l *Limiter) Locked(user string) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.users[user]
	if st == nil {
		return 0
	}
	return max(st.lockedUntil.Sub(l.now()), 0)
}

func locked(d time.Duration) error {
	mins := int((d + time.Minute - 1) / time.Minute)
	return WithRetryAfter(faceauth.E(faceauth.KindRateLimited, "user_locked",
		"Too many failed verifications for this user; try again in %d minute%s.", mins, plural(mins)), d)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (st *limitState) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(st.failures) && now.Sub(st.failures[i]) >= window {
		i++
	}
	st.failures = st.failures[i:]
}

// sweep drops idle entries now and then, so memory stays bounded by the
// users active within the window. Entries with attempts in flight stay, so
// finish always updates the live entry.
func (l *Limiter) sweep(now time.Time) {
	l.calls++
	if l.calls%1024 != 0 {
		return
	}
	for u, st := range l.users {
		st.prune(now, l.cfg.Window)
		if st.inFlight == 0 && len(st.failures) == 0 && !now.Before(st.lockedUntil) {
			delete(l.users, u)
		}
	}
}
