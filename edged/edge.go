// Package edged is the edge daemon: it keeps a copy of the enrolled users'
// embeddings (never images) in a bbolt file, follows the change feed that
// central publishes over NATS JetStream, and answers verify and identify
// requests from that copy, also while NATS and central are unreachable.
//
// The pieces: db*.go hold the file (db.go opening and locking,
// db_gen.go the generations swapped for a full resync, db_apply.go applying
// changes, db_compact.go compaction for erasure, db_receipts.go the delete
// receipts owed, db_meta.go edge-wide settings), sync.go follows the feed
// and applies the gap rule, eraser.go compacts after deletes (and updates that
// dropped vectors) and then sends
// the receipts, http.go serves the same verify and identify contract as central.
package edged

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/gallery"
	pb "github.com/xplore/faceauth/proto"
)

// DBFileName is the name of the bbolt file in the data folder.
const DBFileName = "edge.db"

// Defaults of the Config fields left zero.
const (
	DefaultHeartbeat    = 5 * time.Second
	DefaultCompactDelay = 2 * time.Second
)

// Config configures an Edge.
type Config struct {
	// EdgeID names the edge in heartbeats, receipts and NATS subjects.
	EdgeID string
	// Sites are the sites the edge serves (pb.ParseSites): it receives
	// and keeps the users of these sites and those of no site. Empty: only
	// the users of no site.
	Sites []string
	// DataDir holds the bbolt file.
	DataDir string
	// Version is reported in heartbeats.
	Version string
	// Engine is the face pipeline. Info describes its models: Info.Model
	// decides which embeddings the edge accepts, Info.Dims sizes its
	// gallery.
	Engine faceauth.Engine
	Info   faceauth.EngineInfo
	// FeedPublicKey is the trust root: central's feed key (`central
	// feed-key` prints it). Every feed message must be signed by it, or by
	// a key it announced in a rotation. Unset, the edge pins the key central
	// announces on its first contact (trust on first use) and keeps it in
	// its file.
	FeedPublicKey ed25519.PublicKey
	// TokenPublicKey, when set, checks tokens until the edge has a key
	// from NATS. A key received from NATS, cached in the file, wins.
	TokenPublicKey ed25519.PublicKey
	// Heartbeat is the interval of status messages and of the check of
	// the stream for gaps; 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// CompactDelay gathers a burst of deletes (and of updates that
	// dropped vectors) into one compaction; 0
	// means DefaultCompactDelay.
	CompactDelay time.Duration
	// Liveness runs the presentation-attack check on verify and identify.
	Liveness bool
	// TokenlessVerify are the networks whose door controllers may call
	// POST /api/verify without a token (api.AllowWithoutToken); nil: none.
	TokenlessVerify []netip.Prefix
	// Limit is the per-user verify lockout; the zero value means
	// api.DefaultLimit.
	Limit api.LimitConfig
	// MaxBodyBytes bounds request bodies; 0 means api.DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// FailureScores puts the similarity into failed verifications.
	FailureScores bool
	// Admit bounds the verify and identify requests held at once; the zero
	// value means api.DefaultAdmit (slots: GOMAXPROCS).
	Admit api.AdmitConfig
	// Log receives the edge's logs; nil means slog.Default().
	Log *slog.Logger
}

// Edge is a running edge: the file, the in-memory gallery loaded from it
// and the counters its heartbeat reports. Open it, serve Handler, and call
// Run to follow the feed.
type Edge struct {
	cfg     Config
	log     *slog.Logger
	model   string
	db      *db
	gallery *gallery.Gallery
	tokens  *tokenKeys
	checker api.TokenChecker // tokens, also refusing revoked ones
	trust   feedTrust        // the feed key messages must be signed by
	// tokenRev is the revision of the token key message last applied, so
	// that an older one replayed on NATS is refused.
	tokenRev atomic.Uint64
	started  time.Time

	reg      *prometheus.Registry
	apiMet   *api.Metrics
	limiter  *api.Limiter
	locks    *api.MemoryLocks // the limiter's states, reported in heartbeats
	admit    *api.Admission
	verifies struct{ total, accepted, rejected atomic.Uint64 }

	// changed wakes the heartbeat after a change; dirtyCh wakes the
	// eraser after a delete or a resync.
	changed chan struct{}
	dirtyCh chan struct{}
	// needReload is set when a resync was swapped in but the gallery was
	// not rebuilt; only the sync goroutine uses it.
	needReload bool

	// loaded is closed when the first gallery load has ended; loadErr
	// (written before) says whether it failed, in which case the sync
	// rebuilds the set from the stream. identifyReady is set while the
	// gallery holds the served set.
	loaded        chan struct{}
	loadErr       error
	identifyReady atomic.Bool

	mu        sync.Mutex // guards the fields below
	state     syncState
	refused   map[string]int
	lastSync  time.Time
	atHead    bool // the last delivery left nothing of the edge's sites pending
	lastErr   string
	resyncing bool
	connected bool
	invalid   uint64
	compacts  uint64
	resyncN   uint64
	owed      int
	rejected  rejects
}

// Open opens the edge's file in cfg.DataDir and loads its users into
// memory. The edge can verify as soon as Open returns, before any contact
// with NATS.
func Open(cfg Config) (*Edge, error) {
	if err := pb.ValidateEdgeID(cfg.EdgeID); err != nil {
		return nil, err
	}
	if cfg.Engine == nil || cfg.Info.Model == "" || cfg.Info.Dims <= 0 || cfg.Info.Dims > gallery.MaxDims {
		return nil, errors.New("edged: a face pipeline and its embedding size are required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("edged: a data folder is required")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.CompactDelay <= 0 {
		cfg.CompactDelay = DefaultCompactDelay
	}
	if cfg.Limit == (api.LimitConfig{}) {
		cfg.Limit = api.DefaultLimit
	}
	if cfg.Admit == (api.AdmitConfig{}) {
		cfg.Admit = api.DefaultAdmit
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	e := &Edge{
		cfg:     cfg,
		log:     log,
		model:   cfg.Info.Model,
		gallery: gallery.New(cfg.Info.Dims),
		tokens:  &tokenKeys{},
		started: time.Now(),
		locks:   api.NewMemoryLocks(),
		admit:   api.NewAdmission(cfg.Admit),
		changed: make(chan struct{}, 1),
		dirtyCh: make(chan struct{}, 1),
		loaded:  make(chan struct{}),
		refused: map[string]int{},
	}
	e.limiter = api.NewLimiterWith(cfg.Limit, e.locks, nil, log)
	e.checker = api.WithRevocations(e.tokens, e.tokens.revocations)
	d, err := openDB(filepath.Join(cfg.DataDir, DBFileName), e.model)
	if err != nil {
		return nil, err
	}
	e.db = d
	if err := e.init(); err != nil {
		d.close()
		return nil, err
	}
	e.registerMetrics()
	// Verification reads the file and works from here on; identification
	// waits for the gallery, whose build takes about a second per 100k
	// users.
	go e.initialLoad()
	return e, nil
}

// initialLoad builds the gallery from the file.
func (e *Edge) initialLoad() {
	defer close(e.loaded)
	start := time.Now()
	if err := e.reload(); err != nil {
		e.loadErr = err
		e.log.Error("the stored set could not be loaded; rebuilding it from the stream", "err", err)
		e.setError(err)
		return
	}
	e.log.Info("users loaded for identification", "users", e.gallery.Len(), "took", time.Since(start).Round(time.Millisecond))
}

func (e *Edge) init() error {
	if old, err := e.db.edgeID(); err != nil {
		return err
	} else if old != e.cfg.EdgeID {
		if old != "" {
			e.log.Warn("the data folder was used by another edge id", "was", old, "now", e.cfg.EdgeID)
		}
		if err := e.db.setEdgeID(e.cfg.EdgeID); err != nil {
			return err
		}
	}
	if dropped, err := e.db.setSites(e.cfg.Sites); err != nil {
		return err
	} else if dropped {
		e.log.Warn("the edge's sites changed: the cached users were dropped and are fetched again for the new sites", "sites", e.cfg.Sites)
	}
	st, err := e.db.state()
	if err != nil {
		return err
	}
	e.state = st
	if err := e.initTrust(); err != nil {
		return err
	}
	cached, tokenRev, err := e.db.tokenKey()
	if err != nil {
		return err
	}
	e.tokenRev.Store(tokenRev)
	switch {
	case cached != nil:
		if len(cached.PublicKey) != ed25519.PublicKeySize {
			return fmt.Errorf("edged: the cached token key has %d bytes, not %d", len(cached.PublicKey), ed25519.PublicKeySize)
		}
		e.tokens.set(ed25519.PublicKey(cached.PublicKey))
		if e.cfg.TokenPublicKey != nil && !e.cfg.TokenPublicKey.Equal(ed25519.PublicKey(cached.PublicKey)) {
			e.log.Warn("the provisioned token key differs from the one last received from NATS; using the received one",
				"provisioned", auth.KeyIDOf(e.cfg.TokenPublicKey), "received", cached.KeyId)
		}
	case e.cfg.TokenPublicKey != nil:
		if len(e.cfg.TokenPublicKey) != ed25519.PublicKeySize {
			return fmt.Errorf("edged: the token public key has %d bytes, not %d", len(e.cfg.TokenPublicKey), ed25519.PublicKeySize)
		}
		e.tokens.set(e.cfg.TokenPublicKey)
	}
	revs, err := e.db.revocations()
	if err != nil {
		return err
	}
	if revs != nil {
		e.tokens.useRevocations(revs)
	}
	e.log.Info("edge opened", "sequence", st.Seq, "revision", st.Revision,
		"model", e.model, "token_key", e.tokens.keyID(), "feed_key", e.trust.keyID())
	return nil
}

// reload replaces the gallery with the served set of the file.
func (e *Edge) reload() error {
	var counts loadCounts
	err := e.gallery.Reset(func(add func(string, [][]float32) error) error {
		var err error
		counts, err = e.db.load(add)
		return err
	})
	if err != nil {
		return fmt.Errorf("edged: load the user set: %w", err)
	}
	e.identifyReady.Store(true)
	e.mu.Lock()
	e.refused = counts.Refused
	e.mu.Unlock()
	for m, n := range counts.Refused {
		e.log.Warn("users enrolled only with a model this edge does not run are left out", "model", m, "users", n, "edge_model", e.model)
	}
	return nil
}

// Close closes the file. Call it after Run has returned.
func (e *Edge) Close() error {
	<-e.loaded
	return e.db.close()
}

// resyncs returns the number of full resyncs finished since Open.
func (e *Edge) resyncs() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.resyncN
}

// EdgeID returns the edge's id.
func (e *Edge) EdgeID() string { return e.cfg.EdgeID }

// Users returns the number of users in the gallery: those the edge can
// identify, and verify, once the first load has ended.
func (e *Edge) Users() int { return e.gallery.Len() }

// Status returns the edge's heartbeat as it would be sent now.
func (e *Edge) Status() *pb.EdgeStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &pb.EdgeStatus{
		EdgeId:          e.cfg.EdgeID,
		Version:         e.cfg.Version,
		Model:           e.model,
		AppliedRevision: e.state.Revision,
		AppliedSequence: e.state.Seq,
		UserCount:       int64(e.gallery.Len()),
		SentAt:          timestamppb.Now(),
		StartedAt:       timestamppb.New(e.started),
		VerifyTotal:     e.verifies.total.Load(),
		VerifyAccepted:  e.verifies.accepted.Load(),
		VerifyRejected:  e.verifies.rejected.Load(),
		LastError:       e.lastErr,
		Resyncing:       e.resyncing,

		TokenRevocations: e.tokens.revocationsVersion(),
		FeedKeyId:        e.trust.keyID(),
		FeedRejected:     e.rejected.n,
		LastReject:       e.rejected.last,
		Sites:            e.cfg.Sites,
		CaughtUp:         e.atHead && !e.resyncing,
	}
	if !e.rejected.lastAt.IsZero() {
		s.LastRejectAt = timestamppb.New(e.rejected.lastAt)
	}
	keys, locked := e.locks.Counts(time.Now())
	s.LockoutKeys, s.LockoutLocked = uint32(keys), uint32(locked)
	if !e.lastSync.IsZero() {
		s.LastSync = timestamppb.New(e.lastSync)
	}
	for m, n := range e.refused {
		if n > 0 {
			s.RefusedModels = append(s.RefusedModels, m)
		}
	}
	slices.Sort(s.RefusedModels)
	return s
}

// setError records the last error for the heartbeat; nil clears it.
func (e *Edge) setError(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		e.lastErr = ""
		return
	}
	e.lastErr = err.Error()
}

// notify wakes the goroutine waiting on ch without blocking.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// tokenKeys holds the key tokens are checked with and the revoked token
// subjects; both change when central publishes new ones.
type tokenKeys struct {
	v    atomic.Pointer[auth.Verifier]
	revs atomic.Pointer[revoked]
}

// revoked is a token revocation list as tokenKeys uses it.
type revoked struct {
	version uint64
	m       auth.Revocations
}

func (t *tokenKeys) revocationsVersion() uint64 {
	if r := t.revs.Load(); r != nil {
		return r.version
	}
	return 0
}

// revocations returns the revoked subjects (nil: none), for
// api.WithRevocations.
func (t *tokenKeys) revocations() auth.Revocations {
	if r := t.revs.Load(); r != nil {
		return r.m
	}
	return nil
}

func (t *tokenKeys) useRevocations(l *pb.TokenRevocations) {
	t.revs.Store(&revoked{version: l.GetVersion(), m: l.RevokedAt()})
}

func (t *tokenKeys) set(pub ed25519.PublicKey) { t.v.Store(auth.NewVerifier(pub)) }

func (t *tokenKeys) keyID() string {
	if v := t.v.Load(); v != nil {
		return v.KeyID()
	}
	return ""
}

// Check implements api.TokenChecker with the key alone; Edge.checker adds
// the revocations.
func (t *tokenKeys) Check(token string, now time.Time) (*auth.Claims, error) {
	v := t.v.Load()
	if v == nil {
		return nil, faceauth.E(faceauth.KindUnavailable, "no_token_key",
			"This edge has no token key yet: connect it to NATS once, or provision the key with --token-public-key.")
	}
	return v.Check(token, now)
}

// setRevocations caches and uses l, when it is newer than the list held.
// An older one is a replay (central's versions only grow) and is refused.
func (e *Edge) setRevocations(l *pb.TokenRevocations) error {
	switch held := e.tokens.revocationsVersion(); {
	case l.GetVersion() < held:
		return fmt.Errorf("%w: token revocations version %d is older than the %d held (replayed)", pb.ErrRejected, l.GetVersion(), held)
	case l.GetVersion() == held:
		return nil
	}
	if err := e.db.setRevocations(l); err != nil {
		return err
	}
	e.tokens.useRevocations(l)
	e.log.Info("token revocations received", "version", l.GetVersion(), "subjects", len(l.GetRevocations()))
	return nil
}

// setTokenKey caches and uses k, the verified token key of a message of
// revision rev, when it is new. A different key in an older message is a
// replay and is refused.
func (e *Edge) setTokenKey(k *pb.TokenKey, rev uint64) error {
	if len(k.GetPublicKey()) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: the token key from NATS has %d bytes, not %d", pb.ErrRejected, len(k.GetPublicKey()), ed25519.PublicKeySize)
	}
	pub := ed25519.PublicKey(k.PublicKey)
	if v := e.tokens.v.Load(); v != nil && v.PublicKey().Equal(pub) {
		return nil
	}
	if held := e.tokenRev.Load(); rev <= held {
		return fmt.Errorf("%w: a token key message of revision %d, not newer than the %d held (replayed)", pb.ErrRejected, rev, held)
	}
	if err := e.db.setTokenKey(k, rev); err != nil {
		return err
	}
	e.tokenRev.Store(rev)
	e.tokens.set(pub)
	e.log.Info("token key received", "key_id", auth.KeyIDOf(pub))
	return nil
}
