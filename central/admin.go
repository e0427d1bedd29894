package central

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/config"
)

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
func (s *Server) analyse(w http.ResponseWriter, r *http.Request) {
	form, err := api.ParseForm(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	files := form.FilesOf("image")
	switch {
	case len(files) == 0:
		api.WriteError(w, r, s.log, faceauth.E(faceauth.KindInvalid, "missing_image", "The image field is required."))
		return
	case len(files) > 1:
		api.WriteError(w, r, s.log, faceauth.E(faceauth.KindInvalid, "too_many_images", "Send exactly one image."))
		return
	}
	img := files[0].Data
	resp := AnalyseResponse{Model: s.cfg.Registry.Model(), Faces: []api.FaceInfo{}, Selected: -1}
	a, err := s.cfg.Registry.Analyse(r.Context(), img)
	if err != nil {
		var fe *faceauth.Error
		kind := faceauth.KindOf(err)
		if (kind != faceauth.KindNoFace && kind != faceauth.KindBadImage) || !errors.As(err, &fe) {
			api.WriteError(w, r, s.log, err)
			return
		}
		resp.Refusal = &api.ErrorBody{Error: fe.Msg, Code: fe.Code}
		if kind == faceauth.KindNoFace {
			// Show the faces that were found, unjudged.
			if d, derr := s.cfg.Registry.eng.Analyze(r.Context(), img, faceauth.Request{Purpose: faceauth.PurposeDetect}); derr == nil {
				resp.Faces, resp.Width, resp.Height = faceInfos(d.Faces), d.Width, d.Height
			}
		}
		api.WriteJSON(w, http.StatusOK, resp)
		return
	}
	resp.Usable = true
	resp.Faces, resp.Width, resp.Height, resp.Selected = faceInfos(a.Faces), a.Width, a.Height, a.Selected
	api.WriteJSON(w, http.StatusOK, resp)
}

// userImage serves GET /api/users/{id}/images/{image_id}: the stored
// photo, never cached by the browser (it is biometric data) and never
// run as anything but an image.
func (s *Server) userImage(w http.ResponseWriter, r *http.Request) {
	data, ct, err := s.cfg.Registry.Image(r.Context(), r.PathValue("id"), r.PathValue("image_id"))
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
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
}

// renameUser serves PATCH /api/users/{id}: form field name, the new
// display name ("" clears it).
func (s *Server) renameUser(w http.ResponseWriter, r *http.Request) {
	form, err := api.ParseForm(w, r, 64<<10)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	if _, ok := form.Values["name"]; !ok {
		api.WriteError(w, r, s.log, faceauth.E(faceauth.KindInvalid, "missing_name", "The name field is required (empty clears the name)."))
		return
	}
	res, err := s.cfg.Registry.Rename(r.Context(), r.PathValue("id"), form.Value("name"))
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	rec := res.Record
	s.log.Info("user renamed", "user_id", rec.Id, "revision", rec.Revision, "changed", res.Changed, "by", subject(r))
	api.WriteJSON(w, http.StatusOK, RegisterResponse{
		UserID: rec.Id, Name: rec.Name, Revision: rec.Revision, References: len(rec.References), Model: s.cfg.Registry.Model(),
	})
}

// SiteResponse is the body of PUT /api/users/{id}/site.
type SiteResponse struct {
	UserID   string `json:"user_id"`
	Site     string `json:"site"`
	Revision uint64 `json:"revision"`
	Changed  bool   `json:"changed"`
}

// setSite serves PUT /api/users/{id}/site: the form field site names the
// site whose edges alone receive the user; empty sends it to every edge.
// The edges of the site it leaves erase it and send receipts
// (GET /api/deletions).
func (s *Server) setSite(w http.ResponseWriter, r *http.Request) {
	form, err := api.ParseForm(w, r, 64<<10)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	if _, ok := form.Values["site"]; !ok {
		api.WriteError(w, r, s.log, faceauth.E(faceauth.KindInvalid, "missing_site", "The site field is required (empty sends the user to every edge)."))
		return
	}
	res, err := s.cfg.Registry.SetSite(r.Context(), r.PathValue("id"), form.Value("site"))
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	rec := res.Record
	s.log.Info("user site set", "user_id", rec.Id, "site", rec.Site, "revision", rec.Revision, "changed", res.Changed, "by", subject(r))
	api.WriteJSON(w, http.StatusOK, SiteResponse{UserID: rec.Id, Site: rec.Site, Revision: rec.Revision, Changed: res.Changed})
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
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	c := api.ClaimsFrom(r.Context())
	resp := WhoAmIResponse{Subject: c.Subject, Role: c.Role, IssuedAt: c.IssuedAt}
	if !c.ExpiresAt.IsZero() {
		t := c.ExpiresAt
		resp.ExpiresAt = &t
	}
	api.WriteJSON(w, http.StatusOK, resp)
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
func (s *Server) mintToken(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Issuer == nil {
		api.WriteError(w, r, s.log, faceauth.E(faceauth.KindUnavailable, "no_issuer", "This central cannot mint tokens: it has no signing key."))
		return
	}
	form, err := api.ParseForm(w, r, 64<<10)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	sub := form.Value("subject")
	if err := validateText("subject", sub, MaxSubjectLen, true); err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	role, err := auth.ParseRole(form.Value("role"))
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	ttl := DefaultTokenTTL
	if v := form.Value("ttl"); v != "" {
		if ttl, err = config.ParseDuration(v); err != nil {
			api.WriteError(w, r, s.log, faceauth.E(faceauth.KindInvalid, "invalid_ttl",
				"The ttl must be a duration such as 24h or 2160h, or 0 for a token that never expires."))
			return
		}
	}
	now := time.Now()
	tok, err := s.cfg.Issuer.Issue(sub, role, ttl, now)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	resp := TokenResponse{Token: tok, Subject: sub, Role: role}
	if ttl > 0 {
		// As the token has it: whole seconds after its issue time.
		t := time.Unix(now.Unix()+int64((ttl+time.Second-1)/time.Second), 0).UTC()
		resp.ExpiresAt = &t
	}
	s.log.Info("token minted", "subject", sub, "role", role, "ttl", ttl, "by", subject(r))
	api.WriteJSON(w, http.StatusCreated, resp)
}
