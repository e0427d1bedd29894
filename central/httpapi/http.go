// Package httpapi is central's HTTP API over its domain (package
// central): every route and every handler in this file, the OpenAPI
// document describing them, the web console mounted at /, and the
// operations metrics served at /metrics.
package httpapi

import (
	"context"
	_ "embed"
	"errors"
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
	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/console"
	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/config"
	"github.com/xplore/faceauth/internal/metrics"
	pb "github.com/xplore/faceauth/proto"
)

// Config configures the HTTP server.
type Config struct {
	Registry *central.Registry // with the face engine, for verify and identify too
	Tokens   api.TokenChecker
	Limiter  *api.Limiter // nil: no verify lockout
	// Admission bounds the image requests (verify, identify, register,
	// image additions, analyse) held at once; nil admits everything.
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
	Revocations   *central.Revocations        // revoked token subjects, refused on every route; nil: /api/revocations answers 503
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
	cfg        Config
	mux        *http.ServeMux
	faces      *api.FaceHandlers
	m          *api.Metrics
	log        *slog.Logger
	registered []Route
}

// NewServer returns the HTTP handler of the central service.
func NewServer(cfg Config) *Server {
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
	eng, info := cfg.Registry.Engine()
	s.faces = &api.FaceHandlers{
		Engine:        eng,
		Info:          info,
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

// routes is central's route table: every endpoint, each served by a
// handler below in this file (or package api's verify and identify).
// docs/api.md and openapi.json describe each; a test checks that the
// OpenAPI document lists exactly these.
func (s *Server) routes() {
	s.handle("GET /healthz", "", s.healthz)
	s.handle("GET /readyz", "", s.readyz)
	s.handle("GET /metrics", "", plain(metrics.Handler(s.cfg.Metrics).ServeHTTP))
	s.handle("GET /api/openapi.json", "", s.openapi)
	s.handle("POST /api/register", auth.RoleAdmin, s.register)
	s.handle("POST /api/verify", auth.RoleVerify, plain(s.faces.Verify))
	s.handle("POST /api/identify", auth.RoleVerify, plain(s.faces.Identify))
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
	s.handle("PUT /api/users/{id}/sites", auth.RoleAdmin, s.setSites)
	s.handle("GET /api/whoami", auth.RoleVerify, s.whoami)
	s.handle("POST /api/tokens", auth.RoleAdmin, s.mintToken)
	for _, r := range s.cfg.Extra {
		s.handle(r.Pattern, r.Role, plain(r.Handler.ServeHTTP))
	}
}

// handle registers h under pattern behind the role check, metrics, access
// log and panic recovery. The error h returns is its answer
// (api.WriteError), so a handler says what went wrong and returns.
func (s *Server) handle(pattern string, role auth.Role, handler func(http.ResponseWriter, *http.Request) error) {
	h := s.answer(handler)
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

// answer returns h as an http.HandlerFunc that answers h's error.
func (s *Server) answer(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			api.WriteError(w, r, s.log, err)
		}
	}
}

// plain adapts a handler that writes its own errors (package api's) to
// handle.
func plain(h http.HandlerFunc) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		h(w, r)
		return nil
	}
}

// reply answers with v as JSON; it returns nil so that a handler can end
// with it.
func reply(w http.ResponseWriter, status int, v any) error {
	api.WriteJSON(w, status, v)
	return nil
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

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	return reply(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	reason := "the store does not answer"
	err := s.cfg.Registry.Ping(ctx)
	if eng, _ := s.cfg.Registry.Engine(); err == nil && eng == nil {
		reason = "the face models are not loaded"
		err = errors.New(reason)
	}
	if err == nil && s.cfg.Ready != nil {
		reason = "a service it depends on does not answer"
		err = s.cfg.Ready(ctx)
	}
	if err != nil {
		s.log.Warn("not ready", "err", err)
		// /readyz needs no token and nginx serves it to the internet; the
		// raw text can name the bucket, the store's or NATS's address.
		msg := "The service is not ready: " + reason + " (an admin token, or a request from central's own machine, gets the details)."
		if s.readsDetails(r) {
			msg = "The service is not ready: " + err.Error()
			if fe, ok := err.(*faceauth.Error); ok {
				msg = "The service is not ready: " + fe.Msg
			}
		}
		return reply(w, http.StatusServiceUnavailable, api.ErrorBody{Error: msg, Code: "not_ready"})
	}
	return reply(w, http.StatusOK, map[string]string{"status": "ready", "model": s.cfg.Registry.Model()})
}

// readsDetails reports whether r may read why central is not ready: it
// comes from central's own machine (not relayed by a proxy) or carries a
// valid admin token. A bad token is not an error here: /readyz answers
// probes, which send none.
func (s *Server) readsDetails(r *http.Request) bool {
	if api.SameMachine(r) {
		return true
	}
	if s.cfg.Tokens == nil || r.Header.Get("Authorization") == "" {
		return false
	}
	c, err := s.cfg.Tokens.Check(auth.BearerToken(r.Header.Get("Authorization")), time.Now())
	return err == nil && c.Role.Allows(auth.RoleAdmin)
}

//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDoc)
	return nil
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

func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	// The registry checks the fields, user_id first, for every caller.
	return s.enrol(w, r, func(form *api.Form) (*central.Result, error) {
		sites, err := formSites(form)
		if err != nil {
			return nil, err
		}
		return s.cfg.Registry.RegisterAt(r.Context(), form.Value("user_id"), form.Value("name"), sites, images(form))
	})
}

func (s *Server) addImages(w http.ResponseWriter, r *http.Request) error {
	return s.enrol(w, r, func(form *api.Form) (*central.Result, error) {
		return s.cfg.Registry.AddImages(r.Context(), r.PathValue("id"), images(form))
	})
}

// enrol serves a change that analyses the form's images (a register or an
// image addition): admitted, its images analysed one after the other in
// one face pipeline slot, the user's new state answered.
func (s *Server) enrol(w http.ResponseWriter, r *http.Request, change func(form *api.Form) (*central.Result, error)) error {
	form, leave, err := s.cfg.Admission.EnterForm(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	defer leave()
	release, err := s.cfg.Admission.Slot(r.Context())
	if err != nil {
		return err
	}
	defer release()
	res, err := change(form)
	if err != nil {
		return err
	}
	rec := res.Record
	s.log.Info("user changed", "user_id", rec.Id, "revision", rec.Revision, "references", len(rec.References),
		"created", res.Created, "changed", res.Changed, "by", subject(r))
	return reply(w, http.StatusCreated, RegisterResponse{
		UserID:     rec.Id,
		Name:       rec.Name,
		Revision:   rec.Revision,
		References: len(rec.References),
		Model:      s.cfg.Registry.Model(),
		Created:    res.Created,
	})
}

func images(form *api.Form) []central.Image {
	files := form.FilesOf("image")
	out := make([]central.Image, len(files))
	for i, f := range files {
		out[i] = central.Image{Data: f.Data, Label: f.Label(i)}
	}
	return out
}

func subject(r *http.Request) string {
	if c := api.ClaimsFrom(r.Context()); c != nil {
		return c.Subject
	}
	return ""
}

// ListResponse is the body of GET /api/users.
type ListResponse struct {
	Users []central.UserSummary `json:"users"`
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
	central.UserSummary
	Images []ReferenceInfo `json:"images"`
}

// pageLimit reads the limit query parameter of a paginated listing.
func pageLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return central.DefaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > central.MaxPageSize {
		return 0, faceauth.E(faceauth.KindInvalid, "invalid_limit",
			"The limit must be a whole number from 1 to %d.", central.MaxPageSize)
	}
	return n, nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := pageLimit(q)
	if err != nil {
		return err
	}
	users, next, err := s.cfg.Registry.List(r.Context(), q.Get("q"), q.Get("site"), q.Get("after"), limit)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, ListResponse{Users: users, Next: next})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.cfg.Registry.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	d := UserDetail{UserSummary: central.Summary(rec), Images: make([]ReferenceInfo, len(rec.References))}
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
	return reply(w, http.StatusOK, d)
}

// DeleteResponse is the body of DELETE /api/users/{id}.
type DeleteResponse struct {
	UserID   string `json:"user_id"`
	Revision uint64 `json:"revision"`
	Deleted  bool   `json:"deleted"`
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	res, err := s.cfg.Registry.Delete(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.log.Info("user deleted", "user_id", res.UserID, "revision", res.Revision, "by", subject(r))
	return reply(w, http.StatusOK, DeleteResponse{UserID: res.UserID, Revision: res.Revision, Deleted: true})
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request) error {
	res, err := s.cfg.Registry.RemoveImage(r.Context(), r.PathValue("id"), r.PathValue("image_id"))
	if err != nil {
		return err
	}
	rec := res.Record
	s.log.Info("image removed", "user_id", rec.Id, "image_id", r.PathValue("image_id"), "revision", rec.Revision, "by", subject(r))
	return reply(w, http.StatusOK, RegisterResponse{
		UserID: rec.Id, Name: rec.Name, Revision: rec.Revision, References: len(rec.References), Model: s.cfg.Registry.Model(),
	})
}

// The endpoints the console needs beyond the original API: a photo's
// analysis without storing it, a reference image's bytes, a rename, who a
// token is, and minting a token.

// AnalyseResponse is the body of POST /api/analyse: what a register of the
// photo would find, and whether it would be accepted.
type AnalyseResponse struct {
	// Usable says that registering the photo would succeed.
	Usable bool `json:"usable"`
	// Refusal is the error a register of the photo would answer, when not
	// Usable.
	Refusal *api.ErrorBody `json:"refusal,omitempty"`
	Model   string         `json:"model"`
	// Width and Height are the size of the upright image, in the pixels
	// of the boxes (0 when the image could not be read).
	Width  int `json:"width"`
	Height int `json:"height"`
	// Faces lists every face found, most dominant first.
	Faces []api.FaceInfo `json:"faces"`
	// Selected is the index in Faces of the face that would be enrolled,
	// -1 when none.
	Selected int `json:"selected"`
}

func faceInfos(fs []faceauth.Face) []api.FaceInfo {
	out := make([]api.FaceInfo, len(fs))
	for i, f := range fs {
		out[i] = api.FaceInfo{Box: f.Box, Score: f.Score, Quality: f.Quality}
	}
	return out
}

// analyse serves POST /api/analyse: one image, analysed as a register
// would, nothing stored. A photo the engine refuses is a 200 with usable
// false and the refusal, so the console can show the faces it found.
func (s *Server) analyse(w http.ResponseWriter, r *http.Request) error {
	// Admitted like every image request: without it a burst of analyses
	// holds every body in memory and decodes past the pipeline's bound.
	form, leave, err := s.cfg.Admission.EnterForm(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	defer leave()
	files := form.FilesOf("image")
	switch {
	case len(files) == 0:
		return faceauth.E(faceauth.KindInvalid, "missing_image", "The image field is required.")
	case len(files) > 1:
		return faceauth.E(faceauth.KindInvalid, "too_many_images", "Send exactly one image.")
	}
	img := files[0].Data
	release, err := s.cfg.Admission.Slot(r.Context())
	if err != nil {
		return err
	}
	defer release()
	resp := AnalyseResponse{Model: s.cfg.Registry.Model(), Faces: []api.FaceInfo{}, Selected: -1}
	a, err := s.cfg.Registry.Analyse(r.Context(), img)
	if err != nil {
		var fe *faceauth.Error
		kind := faceauth.KindOf(err)
		if (kind != faceauth.KindNoFace && kind != faceauth.KindBadImage) || !errors.As(err, &fe) {
			return err
		}
		resp.Refusal = &api.ErrorBody{Error: fe.Msg, Code: fe.Code}
		if kind == faceauth.KindNoFace {
			// Show the faces that were found, unjudged.
			if d, derr := s.cfg.Registry.Detect(r.Context(), img); derr == nil {
				resp.Faces, resp.Width, resp.Height = faceInfos(d.Faces), d.Width, d.Height
			}
		}
		return reply(w, http.StatusOK, resp)
	}
	resp.Usable = true
	resp.Faces, resp.Width, resp.Height, resp.Selected = faceInfos(a.Faces), a.Width, a.Height, a.Selected
	return reply(w, http.StatusOK, resp)
}

// userImage serves GET /api/users/{id}/images/{image_id}: the stored
// photo, never cached by the browser (it is biometric data) and never
// run as anything but an image.
func (s *Server) userImage(w http.ResponseWriter, r *http.Request) error {
	data, ct, err := s.cfg.Registry.Image(r.Context(), r.PathValue("id"), r.PathValue("image_id"))
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Content-Disposition", "inline")
	w.WriteHeader(http.StatusOK)
	w.Write(data)
	return nil
}

// renameUser serves PATCH /api/users/{id}: form field name, the new
// display name ("" clears it).
func (s *Server) renameUser(w http.ResponseWriter, r *http.Request) error {
	form, err := fieldForm(w, r, "name", "The name field is required (empty clears the name).")
	if err != nil {
		return err
	}
	res, err := s.cfg.Registry.Rename(r.Context(), r.PathValue("id"), form.Value("name"))
	if err != nil {
		return err
	}
	rec := res.Record
	s.log.Info("user renamed", "user_id", rec.Id, "revision", rec.Revision, "changed", res.Changed, "by", subject(r))
	return reply(w, http.StatusOK, RegisterResponse{
		UserID: rec.Id, Name: rec.Name, Revision: rec.Revision, References: len(rec.References), Model: s.cfg.Registry.Model(),
	})
}

// maxTextForm bounds the bodies of forms without images.
const maxTextForm = 64 << 10

// fieldForm parses a form without images that must hold field, which may
// be empty; missing is the sentence when it does not.
func fieldForm(w http.ResponseWriter, r *http.Request, field, missing string) (*api.Form, error) {
	form, err := api.ParseForm(w, r, maxTextForm)
	if err != nil {
		return nil, err
	}
	if _, ok := form.Values[field]; !ok {
		return nil, faceauth.E(faceauth.KindInvalid, "missing_"+field, "%s", missing)
	}
	return form, nil
}

// formSites reads the sites field: a comma-separated list of sites, none
// for every edge. The field site, which once named the one site, is
// refused rather than ignored: ignoring it would send the user to every
// edge.
func formSites(form *api.Form) ([]string, error) {
	if _, ok := form.Values["site"]; ok {
		return nil, faceauth.E(faceauth.KindInvalid, "invalid_field",
			"The field site is now sites: a comma-separated list of the user's sites.")
	}
	return pb.ParseUserSites(form.Value("sites"))
}

// SitesResponse is the body of PUT /api/users/{id}/sites.
type SitesResponse struct {
	UserID string `json:"user_id"`
	// Sites are the user's sites now; empty: every edge.
	Sites    []string `json:"sites"`
	Revision uint64   `json:"revision"`
	Changed  bool     `json:"changed"`
}

// setSites serves PUT /api/users/{id}/sites: the form field sites lists
// the sites whose edges alone receive the user, comma-separated; empty
// sends it to every edge. The edges of the sites it leaves that serve none
// of the new ones erase it and send receipts (GET /api/deletions).
func (s *Server) setSites(w http.ResponseWriter, r *http.Request) error {
	form, err := fieldForm(w, r, "sites", "The sites field is required (a comma-separated list; empty sends the user to every edge).")
	if err != nil {
		return err
	}
	sites, err := formSites(form)
	if err != nil {
		return err
	}
	res, err := s.cfg.Registry.SetSites(r.Context(), r.PathValue("id"), sites)
	if err != nil {
		return err
	}
	rec := res.Record
	s.log.Info("user sites set", "user_id", rec.Id, "sites", rec.Sites, "revision", rec.Revision, "changed", res.Changed, "by", subject(r))
	return reply(w, http.StatusOK, SitesResponse{UserID: rec.Id, Sites: append([]string{}, rec.Sites...), Revision: rec.Revision, Changed: res.Changed})
}

// WhoAmIResponse is the body of GET /api/whoami.
type WhoAmIResponse struct {
	Subject   string     `json:"subject"`
	Role      auth.Role  `json:"role"`
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// whoami serves GET /api/whoami: the claims of the caller's token, so the
// console shows only what the role may use.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	c := api.ClaimsFrom(r.Context())
	resp := WhoAmIResponse{Subject: c.Subject, Role: c.Role, IssuedAt: c.IssuedAt}
	if !c.ExpiresAt.IsZero() {
		t := c.ExpiresAt
		resp.ExpiresAt = &t
	}
	return reply(w, http.StatusOK, resp)
}

// TokenIssuer mints tokens; *auth.Signer implements it.
type TokenIssuer interface {
	Issue(subject string, role auth.Role, ttl time.Duration, now time.Time) (string, error)
}

// DefaultTokenTTL is the validity of a token minted without a ttl, as
// `central token create` gives.
const DefaultTokenTTL = 90 * 24 * time.Hour

// TokenResponse is the body of POST /api/tokens.
type TokenResponse struct {
	Token     string     `json:"token"`
	Subject   string     `json:"subject"`
	Role      auth.Role  `json:"role"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// mintToken serves POST /api/tokens: form fields subject, role and ttl
// (a duration; 0 never expires; default 2160h). The token is in the answer
// only: it is neither stored nor logged.
func (s *Server) mintToken(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Issuer == nil {
		return faceauth.E(faceauth.KindUnavailable, "no_issuer", "This central cannot mint tokens: it has no signing key.")
	}
	form, err := api.ParseForm(w, r, maxTextForm)
	if err != nil {
		return err
	}
	sub := form.Value("subject")
	if err := central.ValidateSubject(sub); err != nil {
		return err
	}
	role, err := auth.ParseRole(form.Value("role"))
	if err != nil {
		return err
	}
	ttl := DefaultTokenTTL
	if v := form.Value("ttl"); v != "" {
		if ttl, err = config.ParseDuration(v); err != nil {
			return faceauth.E(faceauth.KindInvalid, "invalid_ttl",
				"The ttl must be a duration such as 24h or 2160h, or 0 for a token that never expires.")
		}
	}
	now := time.Now()
	tok, err := s.cfg.Issuer.Issue(sub, role, ttl, now)
	if err != nil {
		return err
	}
	resp := TokenResponse{Token: tok, Subject: sub, Role: role}
	if ttl > 0 {
		// As the token has it: whole seconds after its issue time.
		t := time.Unix(now.Unix()+int64((ttl+time.Second-1)/time.Second), 0).UTC()
		resp.ExpiresAt = &t
	}
	s.log.Info("token minted", "subject", sub, "role", role, "ttl", ttl, "by", subject(r))
	return reply(w, http.StatusCreated, resp)
}

// EdgeMonitor reports what central knows about the edges from the change
// feed; *fleet.Monitor implements it.
type EdgeMonitor interface {
	Edges(now time.Time) []fleet.EdgeState
	Deletions(dels []*pb.Deletion) []fleet.DeletionState
	Forget(ctx context.Context, edgeID string) error
}

// EdgesResponse is the body of GET /api/edges.
type EdgesResponse struct {
	Edges []fleet.EdgeState `json:"edges"`
}

// DeletionsResponse is the body of GET /api/deletions.
type DeletionsResponse struct {
	Deletions []fleet.DeletionState `json:"deletions"`
	// Next is the cursor of the next page (the after parameter); empty on
	// the last page.
	Next string `json:"next,omitempty"`
}

func errNoMonitor() error {
	return faceauth.E(faceauth.KindUnavailable, "feed_not_running",
		"Edges are not monitored: the change feed (NATS) is not running in this central process.")
}

func (s *Server) listEdges(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Edges == nil {
		return errNoMonitor()
	}
	return reply(w, http.StatusOK, EdgesResponse{Edges: s.cfg.Edges.Edges(time.Now())})
}

// ForgetEdgeResponse is the body of DELETE /api/edges/{id}.
type ForgetEdgeResponse struct {
	ID        string `json:"id"`
	Forgotten bool   `json:"forgotten"`
}

// forgetEdge drops an edge taken out of service from /api/edges and from
// the pending lists of /api/deletions; otherwise a decommissioned device
// shows as offline, and fails `central edges --check`, for ever. An edge
// that is still running reappears at its next heartbeat.
func (s *Server) forgetEdge(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Edges == nil {
		return errNoMonitor()
	}
	id := r.PathValue("id")
	if err := pb.ValidateEdgeID(id); err != nil {
		return err
	}
	known := false
	for _, e := range s.cfg.Edges.Edges(time.Now()) {
		known = known || e.ID == id
	}
	if !known {
		return faceauth.E(faceauth.KindNotFound, "edge_not_found",
			"No edge %q has reported to this central.", id)
	}
	if err := s.cfg.Edges.Forget(r.Context(), id); err != nil {
		return faceauth.Wrap(err, faceauth.KindUnavailable, "feed_unavailable",
			"The edge could not be forgotten: the change feed (NATS) did not answer; try again.")
	}
	s.log.Info("edge forgotten", "edge", id)
	return reply(w, http.StatusOK, ForgetEdgeResponse{ID: id, Forgotten: true})
}

// listDeletions pages through the registry's deletion records in ascending
// revision, each with the edges that have and have not confirmed the
// purge. pending=true keeps only deletions some edge has not confirmed
// (a page may then hold fewer than limit).
func (s *Server) listDeletions(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Edges == nil {
		return errNoMonitor()
	}
	q := r.URL.Query()
	limit, err := pageLimit(q)
	if err != nil {
		return err
	}
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return faceauth.E(faceauth.KindInvalid, "invalid_cursor",
				"The after parameter must be the next value of an earlier page.")
		}
		after = n
	}
	pendingOnly := false
	if v := q.Get("pending"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return faceauth.E(faceauth.KindInvalid, "invalid_pending",
				"The pending parameter must be true or false.")
		}
		pendingOnly = b
	}
	dels, next, err := s.cfg.Registry.DeletionRecords(r.Context(), after, limit)
	if err != nil {
		return err
	}
	resp := DeletionsResponse{Deletions: []fleet.DeletionState{}}
	for _, d := range s.cfg.Edges.Deletions(dels) {
		if !pendingOnly || len(d.Pending) > 0 {
			resp.Deletions = append(resp.Deletions, d)
		}
	}
	if next > 0 {
		resp.Next = strconv.FormatUint(next, 10)
	}
	return reply(w, http.StatusOK, resp)
}

// RevocationInfo is one revoked token subject.
type RevocationInfo struct {
	Subject   string    `json:"subject"`
	RevokedAt time.Time `json:"revoked_at"`
	Reason    string    `json:"reason,omitempty"`
}

// RevocationsResponse is the body of GET /api/revocations.
type RevocationsResponse struct {
	// Version grows with every revocation; edges report the one they hold.
	Version     uint64           `json:"version"`
	Revocations []RevocationInfo `json:"revocations"`
}

func revocationInfo(x *pb.TokenRevocation) RevocationInfo {
	return RevocationInfo{Subject: x.Subject, RevokedAt: x.RevokedAt.AsTime(), Reason: x.Reason}
}

func errNoRevocations() error {
	return faceauth.E(faceauth.KindUnavailable, "revocations_unavailable",
		"Token revocation is not configured in this central process.")
}

func (s *Server) listRevocations(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Revocations == nil {
		return errNoRevocations()
	}
	list := s.cfg.Revocations.List()
	resp := RevocationsResponse{Version: list.Version, Revocations: make([]RevocationInfo, len(list.Revocations))}
	for i, x := range list.Revocations {
		resp.Revocations[i] = revocationInfo(x)
	}
	return reply(w, http.StatusOK, resp)
}

// revoke revokes the tokens of the form's subject issued up to now.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Revocations == nil {
		return errNoRevocations()
	}
	form, err := api.ParseForm(w, r, maxTextForm)
	if err != nil {
		return err
	}
	rv, err := s.cfg.Revocations.Revoke(r.Context(), form.Value("subject"), form.Value("reason"))
	if err != nil {
		return err
	}
	s.log.Info("tokens revoked", "subject", rv.Subject, "reason", rv.Reason, "by", subject(r))
	return reply(w, http.StatusOK, revocationInfo(rv))
}
