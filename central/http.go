package central

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/console"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/metrics"
	pb "github.com/xplore/faceauth/proto"
)

// ServerConfig configures the HTTP server.
type ServerConfig struct {
	Registry *Registry // with the face engine, for verify and identify too
	Tokens   api.TokenChecker
	Limiter  *api.Limiter // nil: no verify lockout
	// Admission bounds the image requests (verify, identify, register,
	// image additions) held at once; nil admits everything.
	Admission *api.Admission
	// Liveness makes verify and identify refuse faces that fail the
	// presentation-attack check.
	Liveness bool
	// TokenlessVerify are the networks whose door controllers may call
	// POST /api/verify without a token (api.AllowWithoutToken); nil: none.
	TokenlessVerify []netip.Prefix
	// FailureScores puts the similarity into failed verifications.
	FailureScores bool
	MaxBodyBytes  int64                       // <= 0: api.DefaultMaxBodyBytes
	Metrics       *prometheus.Registry        // served at /metrics; nil: metrics.NewRegistry()
	HTTPMetrics   *api.Metrics                // nil: made in Metrics with prefix faceauth_central
	Edges         EdgeMonitor                 // the change feed's view of the edges; nil: /api/edges and /api/deletions answer 503
	Revocations   *Revocations                // revoked token subjects, refused on every route; nil: /api/revocations answers 503
	Issuer        TokenIssuer                 // mints tokens for POST /api/tokens; nil: it answers 503
	Extra         []Route                     // more routes, e.g. the change feed's
	Log           *slog.Logger                // nil: slog.Default()
	Ready         func(context.Context) error // optional extra readiness check
}

// Route is one endpoint.
type Route struct {
	Pattern string    // a net/http ServeMux pattern with method, e.g. "GET /api/users/{id}"
	Role    auth.Role // "" for a public endpoint
	Handler http.Handler
}

// Server is the central service's HTTP API.
type Server struct {
	cfg        ServerConfig
	mux        *http.ServeMux
	faces      *api.FaceHandlers
	m          *api.Metrics
	log        *slog.Logger
	registered []Route
}

// NewServer returns the HTTP handler of the central service.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewRegistry()
	}
	cfg.Metrics.MustRegister(newOpsCollector(cfg.Registry, cfg.Edges, cfg.Log))
	if cfg.HTTPMetrics == nil {
		cfg.HTTPMetrics = api.NewMetrics(cfg.Metrics, "faceauth_central")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = api.DefaultMaxBodyBytes
	}
	if cfg.Revocations != nil {
		cfg.Tokens = api.WithRevocations(cfg.Tokens, cfg.Revocations.Map)
	}
	if cfg.Admission != nil {
		cfg.Admission.OnShed(cfg.HTTPMetrics.Shed)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), m: cfg.HTTPMetrics, log: cfg.Log}
	s.faces = &api.FaceHandlers{
		Engine:        cfg.Registry.eng,
		Info:          cfg.Registry.info,
		Gallery:       cfg.Registry,
		Searcher:      cfg.Registry,
		Limiter:       cfg.Limiter,
		Admission:     cfg.Admission,
		Liveness:      cfg.Liveness,
		FailureScores: cfg.FailureScores,
		MaxBodyBytes:  cfg.MaxBodyBytes,
		Metrics:       cfg.HTTPMetrics,
		Log:           cfg.Log,
	}
	s.routes()
	// The web console is pages, not API: outside Routes and the OpenAPI
	// document, and public, since every datum it shows needs a token.
	con := console.Handler()
	s.mux.Handle("GET /{$}", con)
	s.mux.Handle("GET "+console.Prefix, con)
	s.mux.Handle("/", api.NotFound(cfg.Log))
	return s
}

// routes registers every endpoint. docs/api.md and openapi.json describe
// each; a test checks that the OpenAPI document lists exactly these.
func (s *Server) routes() {
	s.handle("GET /healthz", "", s.healthz)
	s.handle("GET /readyz", "", s.readyz)
	s.handle("GET /metrics", "", metrics.Handler(s.cfg.Metrics).ServeHTTP)
	s.handle("GET /api/openapi.json", "", s.openapi)
	s.handle("POST /api/register", auth.RoleAdmin, s.register)
	s.handle("POST /api/verify", auth.RoleVerify, s.faces.Verify)
	s.handle("POST /api/identify", auth.RoleVerify, s.faces.Identify)
	s.handle("GET /api/users", auth.RoleAdmin, s.listUsers)
	s.handle("GET /api/users/{id}", auth.RoleAdmin, s.getUser)
	s.handle("DELETE /api/users/{id}", auth.RoleAdmin, s.deleteUser)
	s.handle("POST /api/users/{id}/images", auth.RoleAdmin, s.addImages)
	s.handle("DELETE /api/users/{id}/images/{image_id}", auth.RoleAdmin, s.removeImage)
	s.handle("GET /api/edges", auth.RoleAdmin, s.listEdges)
	s.handle("DELETE /api/edges/{id}", auth.RoleAdmin, s.forgetEdge)
	s.handle("GET /api/deletions", auth.RoleAdmin, s.listDeletions)
	s.handle("GET /api/revocations", auth.RoleAdmin, s.listRevocations)
	s.handle("POST /api/revocations", auth.RoleAdmin, s.revoke)
	s.handle("POST /api/analyse", auth.RoleAdmin, s.analyse)
	s.handle("GET /api/users/{id}/images/{image_id}", auth.RoleAdmin, s.userImage)
	s.handle("PATCH /api/users/{id}", auth.RoleAdmin, s.renameUser)
	s.handle("PUT /api/users/{id}/site", auth.RoleAdmin, s.setSite)
	s.handle("GET /api/whoami", auth.RoleVerify, s.whoami)
	s.handle("POST /api/tokens", auth.RoleAdmin, s.mintToken)
	for _, r := range s.cfg.Extra {
		s.handle(r.Pattern, r.Role, r.Handler.ServeHTTP)
	}
}

// handle registers h under pattern behind the role check, metrics, access
// log and panic recovery.
func (s *Server) handle(pattern string, role auth.Role, h http.HandlerFunc) {
	var next http.Handler = h
	if role != "" {
		next = api.RequireRole(s.cfg.Tokens, role, s.log, next)
	}
	if pattern == "POST /api/verify" {
		next = api.AllowWithoutToken(s.cfg.TokenlessVerify, s.log, next, h)
	}
	next = s.m.Instrument(pattern, next)
	next = s.recoverPanics(next)
	s.mux.Handle(pattern, next)
	s.registered = append(s.registered, Route{Pattern: pattern, Role: role, Handler: h})
}

// Routes returns the registered endpoints.
func (s *Server) Routes() []Route { return append([]Route(nil), s.registered...) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				api.WriteError(w, r, s.log, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	err := s.cfg.Registry.Ping(ctx)
	if err == nil && s.cfg.Registry.eng == nil {
		err = fmt.Errorf("the face models are not loaded")
	}
	if err == nil && s.cfg.Ready != nil {
		err = s.cfg.Ready(ctx)
	}
	if err != nil {
		s.log.Warn("not ready", "err", err)
		msg := "The service is not ready: " + err.Error()
		if fe, ok := err.(*faceauth.Error); ok {
			msg = "The service is not ready: " + fe.Msg
		}
		api.WriteJSON(w, http.StatusServiceUnavailable, api.ErrorBody{Error: msg, Code: "not_ready"})
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready", "model": s.cfg.Registry.Model()})
}

//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDoc)
}

// RegisterResponse is the body of a successful register or image
// addition.
type RegisterResponse struct {
	UserID     string `json:"user_id"`
	Name       string `json:"name,omitempty"`
	Revision   uint64 `json:"revision"`
	References int    `json:"references"`
	Model      string `json:"model"`
	Created    bool   `json:"created"`
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	leave, err := s.cfg.Admission.Enter()
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	defer leave()
	form, err := api.ParseForm(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	// The registry checks the fields, user_id first, for every caller.
	res, err := s.inSlot(r, func() (*Result, error) {
		return s.cfg.Registry.RegisterAt(r.Context(), form.Value("user_id"), form.Value("name"), form.Value("site"), images(form))
	})
	s.answerChange(w, r, res, err)
}

func (s *Server) addImages(w http.ResponseWriter, r *http.Request) {
	leave, err := s.cfg.Admission.Enter()
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	defer leave()
	form, err := api.ParseForm(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	res, err := s.inSlot(r, func() (*Result, error) {
		return s.cfg.Registry.AddImages(r.Context(), r.PathValue("id"), images(form))
	})
	s.answerChange(w, r, res, err)
}

// inSlot runs a change that analyses images in a face pipeline slot; its
// images are analysed one after the other, so one slot is enough.
func (s *Server) inSlot(r *http.Request, change func() (*Result, error)) (*Result, error) {
	release, err := s.cfg.Admission.Slot(r.Context())
	if err != nil {
		return nil, err
	}
	defer release()
	return change()
}

func images(form *api.Form) []Image {
	files := form.FilesOf("image")
	out := make([]Image, len(files))
	for i, f := range files {
		out[i] = Image{Data: f.Data, Label: f.Label(i)}
	}
	return out
}

func (s *Server) answerChange(w http.ResponseWriter, r *http.Request, res *Result, err error) {
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	rec := res.Record
	s.log.Info("user changed", "user_id", rec.Id, "revision", rec.Revision, "references", len(rec.References),
		"created", res.Created, "changed", res.Changed, "by", subject(r))
	api.WriteJSON(w, http.StatusCreated, RegisterResponse{
		UserID:     rec.Id,
		Name:       rec.Name,
		Revision:   rec.Revision,
		References: len(rec.References),
		Model:      s.cfg.Registry.Model(),
		Created:    res.Created,
	})
}

func subject(r *http.Request) string {
	if c := api.ClaimsFrom(r.Context()); c != nil {
		return c.Subject
	}
	return ""
}

// UserSummary is a user in a listing.
type UserSummary struct {
	UserID     string `json:"user_id"`
	Name       string `json:"name,omitempty"`
	Revision   uint64 `json:"revision"`
	References int    `json:"references"`
	// Site is the site whose edges receive the user; empty: every edge.
	Site      string    `json:"site,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ListResponse is the body of GET /api/users.
type ListResponse struct {
	Users []UserSummary `json:"users"`
	// Next is the after parameter for the next page; absent on the last.
	Next string `json:"next,omitempty"`
}

// ReferenceInfo describes one reference image, without its embedding.
type ReferenceInfo struct {
	ImageID        string       `json:"image_id"`
	ContentType    string       `json:"content_type"`
	Size           int64        `json:"size"`
	Model          string       `json:"model"`
	Box            faceauth.Box `json:"box"`
	DetectionScore float32      `json:"detection_score"`
	Quality        float32      `json:"quality"`
	AddedAt        time.Time    `json:"added_at"`
}

// UserDetail is the body of GET /api/users/{id}.
type UserDetail struct {
	UserSummary
	Images []ReferenceInfo `json:"images"`
}

func summary(rec *pb.UserRecord) UserSummary {
	return UserSummary{
		UserID:     rec.Id,
		Name:       rec.Name,
		Revision:   rec.Revision,
		References: len(rec.References),
		Site:       rec.Site,
		CreatedAt:  rec.CreatedAt.AsTime(),
		UpdatedAt:  rec.UpdatedAt.AsTime(),
	}
}

// pageLimit reads the limit query parameter of a paginated listing.
func pageLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, faceauth.E(faceauth.KindInvalid, "invalid_limit",
			"The limit must be a whole number from 1 to %d.", MaxPageSize)
	}
	return n, nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := pageLimit(q)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	users, next, err := s.cfg.Registry.List(r.Context(), q.Get("q"), q.Get("after"), limit)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, ListResponse{Users: users, Next: next})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	rec, err := s.cfg.Registry.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	d := UserDetail{UserSummary: summary(rec), Images: make([]ReferenceInfo, len(rec.References))}
	for i, ref := range rec.References {
		d.Images[i] = ReferenceInfo{
			ImageID:        ref.ImageId,
			ContentType:    ref.ContentType,
			Size:           ref.Size,
			Model:          ref.Embedding.GetModel(),
			Box:            ref.GetBox().Face(),
			DetectionScore: ref.DetectionScore,
			Quality:        ref.Quality,
			AddedAt:        ref.AddedAt.AsTime(),
		}
	}
	api.WriteJSON(w, http.StatusOK, d)
}

// DeleteResponse is the body of DELETE /api/users/{id}.
type DeleteResponse struct {
	UserID   string `json:"user_id"`
	Revision uint64 `json:"revision"`
	Deleted  bool   `json:"deleted"`
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Registry.Delete(r.Context(), r.PathValue("id"))
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	s.log.Info("user deleted", "user_id", res.UserID, "revision", res.Revision, "by", subject(r))
	api.WriteJSON(w, http.StatusOK, DeleteResponse{UserID: res.UserID, Revision: res.Revision, Deleted: true})
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Registry.RemoveImage(r.Context(), r.PathValue("id"), r.PathValue("image_id"))
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	rec := res.Record
	s.log.Info("image removed", "user_id", rec.Id, "image_id", r.PathValue("image_id"), "revision", rec.Revision, "by", subject(r))
	api.WriteJSON(w, http.StatusOK, RegisterResponse{
		UserID: rec.Id, Name: rec.Name, Revision: rec.Revision, References: len(rec.References), Model: s.cfg.Registry.Model(),
	})
}
