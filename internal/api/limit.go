package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/xplore/faceauth"
)

// LimitConfig configures the verify lockout (docs/api.md#lockout).
type LimitConfig struct {
	// MaxFailures failed verifications of one user from one client within
	// Window lock that user for that client; 0 disables the lockout.
	MaxFailures int
	Window      time.Duration
	// Lockout is the first lock of a user for a client; each further lock
	// of the same pair before a success is twice as long, up to
	// MaxLockout.
	Lockout time.Duration
	// MaxLockout caps the doubling; 0 means 16 x Lockout.
	MaxLockout time.Duration
	// UserCeiling consecutive failures of one user, from all clients
	// together, without a success lock the user for every client (NIST SP
	// 800-63B 5.2.2: at most 100); 0 means DefaultUserCeiling.
	UserCeiling int
	// ClientMaxFailures failed verifications from one client within
	// Window, whatever the users, lock that client's verifications, with
	// the same doubling; a success does not reset them. The per-user
	// counts cannot see one face tried once against each of many user ids
	// (at a false-match rate of 1e-3, one accept in a thousand tries);
	// this bounds it. 0 means no such bound.
	ClientMaxFailures int
}

// DefaultUserCeiling is NIST SP 800-63B's upper bound of consecutive
// failed attempts on one account.
const DefaultUserCeiling = 100

// DefaultLimit is the lockout used when none is configured: 5 failures of
// a user from one client in 3 minutes lock the user for that client for
// 15 minutes, then 30, 60, ... up to 4 hours; 100 consecutive failures
// from all clients lock the user for everyone; 50 failures from one
// client in 3 minutes, of any users, lock that client's verifications
// (far more than a busy door's genuine failures).
var DefaultLimit = LimitConfig{MaxFailures: 5, Window: 3 * time.Minute, Lockout: 15 * time.Minute, UserCeiling: DefaultUserCeiling, ClientMaxFailures: DefaultClientMaxFailures}

// DefaultClientMaxFailures is DefaultLimit's ClientMaxFailures.
const DefaultClientMaxFailures = 50

func (c LimitConfig) maxLockout() time.Duration {
	if c.MaxLockout > 0 {
		return c.MaxLockout
	}
	return 16 * c.Lockout
}

func (c LimitConfig) ceiling() int {
	if c.UserCeiling > 0 {
		return c.UserCeiling
	}
	return DefaultUserCeiling
}

// lockFor is the length of lock number level+1: Lockout doubled level
// times, capped.
func (c LimitConfig) lockFor(level int) time.Duration {
	d := c.Lockout
	for range min(level, 30) {
		d *= 2
		if d >= c.maxLockout() {
			return c.maxLockout()
		}
	}
	return min(d, c.maxLockout())
}

// StateTTL is how long a lockout state must be kept after its last
// change for the policy to hold: the longest lock plus a window.
func (c LimitConfig) StateTTL() time.Duration {
	return max(c.maxLockout()+c.Window, 24*time.Hour)
}

// LockState is the failure accounting of one key: a user for one client,
// a user for all clients, a client's verifications of all users, or a
// client's identifications. It holds no user
// id, name or embedding.
type LockState struct {
	// Failures are the recent failures, oldest first (per client keys).
	Failures []time.Time `json:"failures,omitempty"`
	// Consecutive counts failures since the last success (per user keys).
	Consecutive int `json:"consecutive,omitempty"`
	// Level counts the locks since the last success; the next is twice as
	// long.
	Level       int       `json:"level,omitempty"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

func (st *LockState) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(st.Failures) && now.Sub(st.Failures[i]) >= window {
		i++
	}
	st.Failures = st.Failures[i:]
}

// ErrLockConflict is returned by LockStore.Save when the key changed since
// it was loaded.
var ErrLockConflict = errors.New("lockout state changed concurrently")

// LockStore keeps lockout states by key. MemoryLocks keeps them in the
// process (the edge); kvlocks.Store in a JetStream key-value bucket that
// central replicas share and that survives restarts.
type LockStore interface {
	// Load returns the state of key, the zero state when there is none,
	// and a revision for Save (0 when absent).
	Load(ctx context.Context, key string) (LockState, uint64, error)
	// Save stores st under key if key is still at rev, else returns
	// ErrLockConflict.
	Save(ctx context.Context, key string, st LockState, rev uint64) error
}

// Limiter is the verify and identify lockout. A user is locked for one
// client (a token subject: one door) after MaxFailures failures from it
// within Window, with locks that double while failures continue; a user is
// locked for every client after UserCeiling consecutive failures from all
// clients; a client is locked after ClientMaxFailures failures of any users
// within Window; a client's identifications that match nobody are limited
// the same way. The states live in a LockStore.
//
// Attempts in flight count against the limit until they finish, so a burst
// of parallel requests cannot exceed it; they are counted in this process.
type Limiter struct {
	cfg   LimitConfig
	now   func() time.Time
	store LockStore
	log   *slog.Logger

	mu       sync.Mutex
	inFlight map[string]int
}

// Outcome is how a verification attempt ended, for the limiter.
type Outcome int

// The outcomes.
const (
	// Abandoned attempts never compared a face (unreadable photo, an
	// error) and do not count.
	Abandoned Outcome = iota
	Matched           // resets the user's failures
	Failed            // counts towards the lockout
)

// NewLimiter returns a limiter keeping its states in memory; now is the
// clock (nil means time.Now).
func NewLimiter(cfg LimitConfig, now func() time.Time) *Limiter {
	store := NewMemoryLocks()
	if now != nil {
		store.now = now // the store judges which states are locked by the same clock
	}
	return NewLimiterWith(cfg, store, now, nil)
}

// NewLimiterWith returns a limiter keeping its states in store; log
// receives the failures to record an outcome (nil: slog.Default()).
func NewLimiterWith(cfg LimitConfig, store LockStore, now func() time.Time, log *slog.Logger) *Limiter {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Limiter{cfg: cfg, now: now, store: store, log: log, inFlight: map[string]int{}}
}

// Config returns the limiter's settings.
func (l *Limiter) Config() LimitConfig { return l.cfg }

// identifyUser stands for "any user" in the key of a client's
// identifications, verifyUser in that of a client's verifications of all
// users (ClientMaxFailures); no user id can contain a NUL byte.
const (
	identifyUser = "\x00identify"
	verifyUser   = "\x00verify"
)

// lockKey is the store key of a user (client "" for all clients): a hash,
// so the store holds no user id.
func lockKey(user, client string) string {
	kind := "pair"
	if client == "" {
		kind = "user"
	}
	h := sha256.Sum256([]byte("faceauth-lockout\x00" + kind + "\x00" + user + "\x00" + client))
	return kind + "." + hex.EncodeToString(h[:16])
}

// Begin starts a verification attempt of user from client (a token
// subject). When the user is locked out for that client or for everyone,
// or the attempts in flight would reach the limit, it returns a
// KindRateLimited error carrying Retry-After; when the store cannot be
// read, a KindUnavailable error (failing closed). Otherwise the caller must
// call done exactly once with the outcome.
func (l *Limiter) Begin(ctx context.Context, user, client string) (done func(Outcome), err error) {
	return l.begin(ctx, user, client, true)
}

// BeginIdentify starts an identification from client: one that matches
// nobody counts as a failure of the client, so guessing faces is limited
// like guessing users.
func (l *Limiter) BeginIdentify(ctx context.Context, client string) (done func(Outcome), err error) {
	return l.begin(ctx, identifyUser, client, false)
}

func (l *Limiter) begin(ctx context.Context, user, client string, perUser bool) (func(Outcome), error) {
	if l == nil || l.cfg.MaxFailures <= 0 {
		return func(Outcome) {}, nil
	}
	now := l.now()
	pairKey, userKey, clientKey := lockKey(user, client), "", ""
	clientFailures := 0
	if perUser {
		userKey = lockKey(user, "")
		if d, err := l.lockedFor(ctx, userKey, now); err != nil || d > 0 {
			return nil, orLocked(err, d)
		}
		if l.cfg.ClientMaxFailures > 0 {
			clientKey = lockKey(verifyUser, client)
			st, _, err := l.store.Load(ctx, clientKey)
			if err != nil {
				return nil, unavailable(err)
			}
			if now.Before(st.LockedUntil) {
				return nil, clientLocked(st.LockedUntil.Sub(now))
			}
			st.prune(now, l.cfg.Window)
			clientFailures = len(st.Failures)
		}
	}
	pair, _, err := l.store.Load(ctx, pairKey)
	if err != nil {
		return nil, unavailable(err)
	}
	if now.Before(pair.LockedUntil) {
		return nil, locked(pair.LockedUntil.Sub(now))
	}
	pair.prune(now, l.cfg.Window)

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(pair.Failures)+l.inFlight[pairKey] >= l.cfg.MaxFailures ||
		(clientKey != "" && clientFailures+l.inFlight[clientKey] >= l.cfg.ClientMaxFailures) {
		// Only parallel attempts get here: the failures alone would have
		// locked the pair or the client. Ask to retry once one finishes.
		return nil, WithRetryAfter(faceauth.E(faceauth.KindRateLimited, "too_many_attempts",
			"Too many verification attempts are in progress; try again shortly."), time.Second)
	}
	l.inFlight[pairKey]++
	if clientKey != "" {
		l.inFlight[clientKey]++
	}
	var once sync.Once
	return func(o Outcome) {
		once.Do(func() { l.finish(context.WithoutCancel(ctx), pairKey, userKey, clientKey, o) })
	}, nil
}

// failed returns the change that counts a failure at now in a per-client
// state, locking it at the limit-th within the window.
func (l *Limiter) failed(now time.Time, limit int) func(*LockState) bool {
	return func(st *LockState) bool {
		st.prune(now, l.cfg.Window)
		st.Failures = append(st.Failures, now)
		if len(st.Failures) >= limit {
			st.LockedUntil = now.Add(l.cfg.lockFor(st.Level))
			st.Level++
			st.Failures = nil
		}
		return true
	}
}

func (l *Limiter) finish(ctx context.Context, pairKey, userKey, clientKey string, o Outcome) {
	l.mu.Lock()
	for _, k := range []string{pairKey, clientKey} {
		if k == "" {
			continue
		}
		if l.inFlight[k]--; l.inFlight[k] <= 0 {
			delete(l.inFlight, k)
		}
	}
	l.mu.Unlock()
	if o == Abandoned {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := l.now()
	var err error
	switch o {
	case Matched:
		reset := func(st *LockState) bool {
			changed := len(st.Failures) > 0 || st.Consecutive > 0 || st.Level > 0
			*st = LockState{LockedUntil: st.LockedUntil}
			return changed
		}
		err = l.update(ctx, pairKey, reset)
		if userKey != "" {
			err = errors.Join(err, l.update(ctx, userKey, reset))
		}
	case Failed:
		err = l.update(ctx, pairKey, l.failed(now, l.cfg.MaxFailures))
		if clientKey != "" {
			// A success does not reset it: a spray would interleave one.
			err = errors.Join(err, l.update(ctx, clientKey, l.failed(now, l.cfg.ClientMaxFailures)))
		}
		if userKey != "" {
			err = errors.Join(err, l.update(ctx, userKey, func(st *LockState) bool {
				st.Consecutive++
				if st.Consecutive >= l.cfg.ceiling() && !now.Before(st.LockedUntil) {
					st.LockedUntil = now.Add(l.cfg.lockFor(st.Level))
					st.Level++
				}
				return true
			}))
		}
	}
	if err != nil {
		l.log.Error("could not record a verification outcome in the lockout state", "err", err)
	}
}

// update applies change to key's state and saves it, retrying when
// another attempt or replica changed it meanwhile; change reports whether
// there is anything to save.
func (l *Limiter) update(ctx context.Context, key string, change func(*LockState) bool) error {
	for range 20 {
		st, rev, err := l.store.Load(ctx, key)
		if err != nil {
			return err
		}
		if !change(&st) {
			return nil
		}
		err = l.store.Save(ctx, key, st, rev)
		if !errors.Is(err, ErrLockConflict) {
			return err
		}
	}
	return ErrLockConflict
}

// lockedFor returns how long key stays locked, 0 when not locked.
func (l *Limiter) lockedFor(ctx context.Context, key string, now time.Time) (time.Duration, error) {
	st, _, err := l.store.Load(ctx, key)
	if err != nil {
		return 0, err
	}
	return max(st.LockedUntil.Sub(now), 0), nil
}

// Locked reports how long user stays locked out for client (for everyone,
// or for that client alone), 0 when not locked.
func (l *Limiter) Locked(ctx context.Context, user, client string) (time.Duration, error) {
	if l == nil || l.cfg.MaxFailures <= 0 {
		return 0, nil
	}
	now := l.now()
	a, err := l.lockedFor(ctx, lockKey(user, ""), now)
	if err != nil {
		return 0, err
	}
	b, err := l.lockedFor(ctx, lockKey(user, client), now)
	return max(a, b), err
}

func orLocked(err error, d time.Duration) error {
	if err != nil {
		return unavailable(err)
	}
	return locked(d)
}

func unavailable(err error) error {
	return WithRetryAfter(faceauth.Wrap(err, faceauth.KindUnavailable, "lockout_unavailable",
		"The lockout state cannot be read right now, so verification is refused; try again shortly."), 5*time.Second)
}

func locked(d time.Duration) error {
	mins := int((d + time.Minute - 1) / time.Minute)
	return WithRetryAfter(faceauth.E(faceauth.KindRateLimited, "user_locked",
		"Too many failed attempts; try again in %d minute%s.", mins, plural(mins)), d)
}

func clientLocked(d time.Duration) error {
	mins := int((d + time.Minute - 1) / time.Minute)
	return WithRetryAfter(faceauth.E(faceauth.KindRateLimited, "client_locked",
		"Too many failed verifications from this client; try again in %d minute%s.", mins, plural(mins)), d)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// MemoryLocks is a LockStore in the process's memory: states are lost on
// restart and not shared. Entries untouched for StateTTL are dropped now
// and then, and at most MaxMemoryLocks are kept: every failed attempt on a
// new user id adds keys, so without a bound a verify token (or a network
// allowed to verify without one) could grow the process by a few hundred
// bytes per attempt until it is killed, which would also forget every lock.
type MemoryLocks struct {
	mu    sync.Mutex
	m     map[string]memLock
	calls int
	max   int              // MaxMemoryLocks unless a test sets it
	now   func() time.Time // time.Now unless a test sets it
}

type memLock struct {
	st      LockState
	rev     uint64
	touched time.Time
}

// MaxMemoryLocks is how many lockout states a MemoryLocks keeps, about
// 80 MB of them (some 310 bytes each). An edge's genuine states are far
// fewer: a key is only written by a failure (or the success that resets
// it), and is dropped a day after its last change. When a new key would exceed the bound, the
// eighth of the states touched longest ago is dropped, unlocked ones
// before locked ones: to erase a state, an attacker must first add some
// 7/8 MaxMemoryLocks newer ones, about 100,000 failed attempts that each
// take a face comparison.
const MaxMemoryLocks = 1 << 18

// NewMemoryLocks returns an empty in-memory store.
func NewMemoryLocks() *MemoryLocks {
	return &MemoryLocks{m: map[string]memLock{}, max: MaxMemoryLocks, now: time.Now}
}

// Load implements LockStore.
func (s *MemoryLocks) Load(_ context.Context, key string) (LockState, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	st := e.st
	st.Failures = append([]time.Time(nil), st.Failures...)
	return st, e.rev, nil
}

// Save implements LockStore.
func (s *MemoryLocks) Save(_ context.Context, key string, st LockState, rev uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[key]
	if old.rev != rev {
		return ErrLockConflict
	}
	now := s.now()
	if s.calls++; s.calls%1024 == 0 {
		for k, e := range s.m {
			if now.Sub(e.touched) > 24*time.Hour && now.After(e.st.LockedUntil) {
				delete(s.m, k)
			}
		}
	}
	if !ok && len(s.m) >= s.max {
		s.evict(now)
	}
	s.m[key] = memLock{st: st, rev: rev + 1, touched: now}
	return nil
}

// evict drops the eighth of the states touched longest ago, unlocked ones
// first, so that a new one fits under s.max. Dropping many at once keeps
// the cost of the sort to a few comparisons per Save.
func (s *MemoryLocks) evict(now time.Time) {
	type aged struct {
		key     string
		locked  bool
		touched time.Time
	}
	all := make([]aged, 0, len(s.m))
	for k, e := range s.m {
		all = append(all, aged{k, now.Before(e.st.LockedUntil), e.touched})
	}
	slices.SortFunc(all, func(a, b aged) int {
		if a.locked != b.locked {
			if a.locked {
				return 1
			}
			return -1
		}
		return a.touched.Compare(b.touched)
	})
	for _, a := range all[:min(len(all), max(len(all)-s.max+1, s.max/8, 1))] {
		delete(s.m, a.key)
	}
}

// Counts returns how many keys the store holds and how many of them are
// locked now, for the edge's heartbeat and metrics.
func (s *MemoryLocks) Counts(now time.Time) (keys, locked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.m {
		keys++
		if now.Before(e.st.LockedUntil) {
			locked++
		}
	}
	return keys, locked
}
