package edged

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/metrics"
)

// Handler serves the edge's HTTP API: POST /api/verify and POST
// /api/identify (package api's handlers, the same contract as central's,
// over the edge's own copy of the users), GET /healthz, GET /readyz,
// GET /metrics and the read-only status page at GET /. Nothing in it
// needs NATS or central.
func (e *Edge) Handler() http.Handler {
	fh := &api.FaceHandlers{
		Engine:        e.cfg.Engine,
		Info:          e.cfg.Info,
		Gallery:       edgeGallery{e},
		Searcher:      edgeSearcher{e},
		Limiter:       e.limiter,
		Admission:     e.admit,
		Liveness:      e.cfg.Liveness,
		FailureScores: e.cfg.FailureScores,
		MaxBodyBytes:  e.cfg.MaxBodyBytes,
		Metrics:       e.apiMet,
		Log:           e.log,
		OnVerify:      e.countVerify,
	}
	mux := http.NewServeMux()
	route := func(pattern, name string, h http.Handler) {
		mux.Handle(pattern, e.apiMet.Instrument(name, h))
	}
	verify := http.HandlerFunc(fh.Verify)
	route("POST /api/verify", "/api/verify",
		api.AllowWithoutToken(e.cfg.TokenlessVerify, e.log, api.RequireRole(e.checker, auth.RoleVerify, e.log, verify), verify))
	route("POST /api/identify", "/api/identify",
		api.RequireRole(e.checker, auth.RoleVerify, e.log, http.HandlerFunc(fh.Identify)))
	route("GET /healthz", "/healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	route("GET /readyz", "/readyz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rd := e.Ready()
		if !api.SameMachine(r) {
			rd.withholdDetails()
		}
		api.WriteJSON(w, http.StatusOK, rd)
	}))
	mux.Handle("GET /metrics", metrics.Handler(e.reg))
	route("GET /{$}", "/", http.HandlerFunc(e.statusPage))
	route("GET /status.css", "/status.css", http.HandlerFunc(statusStyle))
	mux.Handle("/", api.NotFound(e.log))
	return mux
}

// statusPage serves the status page (page.go) at GET /.
func (e *Edge) statusPage(w http.ResponseWriter, r *http.Request) {
	api.SetPageHeaders(w.Header(), api.StatusPageCSP)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusTmpl.Execute(w, e.statusView()); err != nil {
		e.log.Log(r.Context(), slog.LevelWarn, "status page not written", "err", err)
	}
}

// statusStyle serves its style sheet.
func statusStyle(w http.ResponseWriter, r *http.Request) {
	api.SetPageHeaders(w.Header(), api.StatusPageCSP)
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Write(statusCSS)
}

// Readiness is the body of GET /readyz. An open edge is always ready: it
// verifies from its file at once, and identifies once IdentifyReady.
// Synced says whether it has also caught up with the stream recently.
type Readiness struct {
	Ready bool `json:"ready"`
	// IdentifyReady says that the in-memory gallery holds the set, so
	// identify answers; verify needs only Ready.
	IdentifyReady   bool       `json:"identify_ready"`
	Synced          bool       `json:"synced"`
	Resyncing       bool       `json:"resyncing"`
	NATSConnected   bool       `json:"nats_connected"`
	Users           int        `json:"users"`
	AppliedSequence uint64     `json:"applied_sequence"`
	AppliedRevision uint64     `json:"applied_revision"`
	LastSync        *time.Time `json:"last_sync,omitempty"`
	Model           string     `json:"model"`
	TokenKeyID      string     `json:"token_key_id,omitempty"`
	// TokenRevocations is the version of the token revocation list held
	// (central's GET /api/revocations has the current one).
	TokenRevocations uint64   `json:"token_revocations"`
	RefusedModels    []string `json:"refused_models,omitempty"`
	ReceiptsOwed     int      `json:"receipts_owed"`
	// LastError and LastReject may name a user: GET /readyz gives their
	// text only to the edge's own machine (withholdDetails).
	LastError string `json:"last_error,omitempty"`
	// FeedKeyID is the feed key changes must be signed by; FeedRejected
	// counts the feed messages refused since start, LastReject says why
	// the last one was (docs/sync.md, "Signed feed").
	FeedKeyID    string `json:"feed_key_id,omitempty"`
	FeedRejected uint64 `json:"feed_rejected"`
	LastReject   string `json:"last_reject,omitempty"`
}

// detailsWithheld stands for an error text in the GET /readyz of another
// machine.
const detailsWithheld = "withheld from other machines, as it may name a user: run edged status on the edge's machine, or see central's GET /api/edges"

// withholdDetails replaces the error texts, which may name a user (an id
// can be an e-mail address), for a client that is not on the edge's own
// machine: /readyz needs no token. That there is an error still shows.
func (r *Readiness) withholdDetails() {
	if r.LastError != "" {
		r.LastError = detailsWithheld
	}
	if r.LastReject != "" {
		r.LastReject = detailsWithheld
	}
}

// Ready reports the edge's readiness.
func (e *Edge) Ready() Readiness {
	st := e.Status()
	e.mu.Lock()
	defer e.mu.Unlock()
	r := Readiness{
		Ready:            true,
		IdentifyReady:    e.identifyReady.Load(),
		Resyncing:        e.resyncing,
		NATSConnected:    e.connected,
		Users:            e.gallery.Len(),
		AppliedSequence:  e.state.Seq,
		AppliedRevision:  e.state.Revision,
		Model:            e.model,
		TokenKeyID:       e.tokens.keyID(),
		TokenRevocations: e.tokens.revocationsVersion(),
		RefusedModels:    st.RefusedModels,
		ReceiptsOwed:     e.owed,
		LastError:        e.lastErr,
		FeedKeyID:        e.trust.keyID(),
		FeedRejected:     e.rejected.n,
		LastReject:       e.rejected.last,
	}
	if !e.lastSync.IsZero() {
		t := e.lastSync
		r.LastSync = &t
		// Synced: caught up within three heartbeats, and not rebuilding.
		r.Synced = !e.resyncing && time.Since(t) < 3*e.cfg.Heartbeat
	}
	return r
}

// edgeGallery gives the verify handler a user's embeddings from the file,
// which is always the latest applied state.
type edgeGallery struct{ e *Edge }

// Embeddings implements api.Gallery.
func (g edgeGallery) Embeddings(ctx context.Context, userID, model string) ([][]float32, error) {
	if model != g.e.model {
		return nil, faceauth.E(faceauth.KindInternal, "model_mismatch", "The edge holds %s embeddings, not %s.", g.e.model, model)
	}
	r, err := g.e.db.lookup(userID)
	if err != nil {
		return nil, err
	}
	if r == nil {
		// The same error as central's, so clients see one contract.
		return nil, faceauth.E(faceauth.KindNotFound, "user_not_found", "No user %q is registered.", userID)
	}
	if len(r.Vecs) == 0 {
		return nil, faceauth.E(faceauth.KindUnavailable, "model_not_available",
			"User %q is enrolled only with a model this edge does not run (%s); ask the administrator to re-enrol them.", userID, r.Refused)
	}
	return r.Vecs, nil
}

// edgeSearcher is 1:N over the in-memory gallery.
type edgeSearcher struct{ e *Edge }

// Search implements api.Searcher.
func (s edgeSearcher) Search(ctx context.Context, probe []float32, model string, threshold float32, limit int) ([]faceauth.Match, error) {
	if model != s.e.model {
		return nil, faceauth.E(faceauth.KindInternal, "model_mismatch", "The edge holds %s embeddings, not %s.", s.e.model, model)
	}
	if !s.e.identifyReady.Load() {
		return nil, api.WithRetryAfter(faceauth.E(faceauth.KindUnavailable, "identify_loading",
			"The edge is still loading its users for identification; try again in a moment."), time.Second)
	}
	return s.e.gallery.Search(probe, limit, threshold), nil
}

// countVerify counts verify answers for the heartbeat: every request with
// a valid token (the handler is behind the token check), and of the
// answered ones those verified and those rejected.
func (e *Edge) countVerify(_ context.Context, res *api.VerifyResponse, err error) {
	e.verifies.total.Add(1)
	switch {
	case err != nil:
	case res.Verified:
		e.verifies.accepted.Add(1)
	default:
		e.verifies.rejected.Add(1)
	}
}

// registerMetrics sets up /metrics: the request metrics shared with
// central and the edge's own state, read when scraped.
func (e *Edge) registerMetrics() {
	e.reg = metrics.NewRegistry()
	e.apiMet = api.NewMetrics(e.reg, "faceauth_edge")
	e.admit.OnShed(e.apiMet.Shed)
	locked := func(f func() float64) func() float64 {
		return func() float64 {
			e.mu.Lock()
			defer e.mu.Unlock()
			return f()
		}
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	gauge := func(name, help string, f func() float64) {
		e.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		e.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge("faceauth_edge_users", "Users this edge can verify.", func() float64 { return float64(e.gallery.Len()) })
	gauge("faceauth_edge_applied_sequence", "Users-stream sequence of the last applied change.", locked(func() float64 { return float64(e.state.Seq) }))
	gauge("faceauth_edge_applied_revision", "Highest change revision applied.", locked(func() float64 { return float64(e.state.Revision) }))
	gauge("faceauth_edge_last_sync_timestamp_seconds", "When the edge last knew it was caught up with the stream (Unix seconds; 0: never).", locked(func() float64 {
		if e.lastSync.IsZero() {
			return 0
		}
		return float64(e.lastSync.UnixNano()) / 1e9
	}))
	gauge("faceauth_edge_resyncing", "1 while a full resync is being built.", locked(func() float64 { return b(e.resyncing) }))
	gauge("faceauth_edge_nats_connected", "1 while connected to NATS.", locked(func() float64 { return b(e.connected) }))
	gauge("faceauth_edge_refused_users", "Users left out because they carry only embeddings of models this edge does not run.", locked(func() float64 {
		n := 0
		for _, c := range e.refused {
			n += c
		}
		return float64(n)
	}))
	counter("faceauth_edge_invalid_changes_total", "Feed changes skipped as unusable.", locked(func() float64 { return float64(e.invalid) }))
	counter("faceauth_edge_feed_rejected_total", "Feed messages refused since start: unsigned, not signed by the trusted feed key, badly signed, or replayed older ones.", locked(func() float64 { return float64(e.rejected.n) }))
	counter("faceauth_edge_resyncs_total", "Full resyncs finished since start.", locked(func() float64 { return float64(e.resyncN) }))
	counter("faceauth_edge_compactions_total", "File compactions done to remove erased data.", locked(func() float64 { return float64(e.compacts) }))
	gauge("faceauth_edge_receipts_owed", "Delete receipts waiting to be sent.", locked(func() float64 { return float64(e.owed) }))
	gauge("faceauth_edge_lockout_keys", "Verify lockout keys (user and client pairs, clients' identifications) with recent failures, counted by this edge alone.", func() float64 {
		keys, _ := e.locks.Counts(time.Now())
		return float64(keys)
	})
	gauge("faceauth_edge_lockout_locked", "Verify lockout keys locked now at this edge.", func() float64 {
		_, locked := e.locks.Counts(time.Now())
		return float64(locked)
	})
	gauge("faceauth_edge_token_key_loaded", "1 when the edge has a token key.", func() float64 { return b(e.tokens.keyID() != "") })
	gauge("faceauth_edge_token_revocations_version", "Version of the token revocation list held (0: none).", func() float64 {
		return float64(e.tokens.revocationsVersion())
	})
}
