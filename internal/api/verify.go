package api

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/xplore/faceauth"
)

// Gallery returns the reference embeddings of one user.
type Gallery interface {
	// Embeddings returns the user's reference embeddings computed by model.
	// An unknown user is an error of kind KindNotFound.
	Embeddings(ctx context.Context, userID, model string) ([][]float32, error)
}

// Searcher finds the users whose references are closest to a probe (1:N).
type Searcher interface {
	// Search returns up to limit users with a reference of model at or above
	// threshold, best first, each with its best similarity.
	Search(ctx context.Context, probe []float32, model string, threshold float32, limit int) ([]faceauth.Match, error)
}

// FaceInfo describes the face that was used.
type FaceInfo struct {
	Box     faceauth.Box `json:"box"`
	Score   float32      `json:"score"`
	Quality float32      `json:"quality"`
}

// Liveness is the presentation-attack check of the face, when enabled.
type Liveness struct {
	Score     float32 `json:"score"`
	Threshold float32 `json:"threshold"`
	Live      bool    `json:"live"`
	// Model names the liveness model that judged, e.g. "fr_liveness@afa783b7".
	Model string `json:"model"`
}

// VerifyResponse is the body of a 200 answer to POST /api/verify.
type VerifyResponse struct {
	Verified bool `json:"verified"`
	// Similarity is present when Verified, or on every answer when the
	// operator turned failure scores on (FaceHandlers.FailureScores): a
	// failed attempt's score would help tune a fake.
	Similarity *float32  `json:"similarity,omitempty"`
	Threshold  float32   `json:"threshold"`
	Model      string    `json:"model"`
	UserID     string    `json:"user_id"`
	Face       FaceInfo  `json:"face"`
	Faces      int       `json:"faces"`
	Liveness   *Liveness `json:"liveness,omitempty"`
}

// IdentifyResponse is the body of a 200 answer to POST /api/identify.
type IdentifyResponse struct {
	Matches   []faceauth.Match `json:"matches"`
	Threshold float32          `json:"threshold"`
	Model     string           `json:"model"`
	Face      FaceInfo         `json:"face"`
	Faces     int              `json:"faces"`
	Liveness  *Liveness        `json:"liveness,omitempty"`
}

// Identify limits.
const (
	DefaultIdentifyLimit = 5
	MaxIdentifyLimit     = 50
)

// FaceHandlers serves verify and identify. The central service and the
// edge daemon build one each over their own gallery.
type FaceHandlers struct {
	// Engine analyses the probe photos; Info describes its models.
	Engine   faceauth.Engine
	Info     faceauth.EngineInfo
	Gallery  Gallery
	Searcher Searcher // nil: identify answers 503
	Limiter  *Limiter // nil: no lockout
	// Admission bounds the requests held at once and the face pipeline's
	// queue; nil admits everything.
	Admission *Admission
	// Liveness runs the presentation-attack check and refuses faces that
	// fail it.
	Liveness bool
	// FailureScores puts the similarity into failed verifications too
	// (VERIFY_FAILURE_SCORES); off by default.
	FailureScores bool
	MaxBodyBytes  int64 // <= 0 means DefaultMaxBodyBytes
	Metrics       *Metrics
	Log           *slog.Logger
	// OnVerify, when set, hears of every verify request this handler
	// answered: res is the 200 answer, or nil when err was answered
	// instead. The edge counts them for its heartbeat.
	OnVerify func(ctx context.Context, res *VerifyResponse, err error)
}

// Verify serves POST /api/verify: multipart user_id and image. It answers
// 200 with verified true or false (an unknown user is a false like a wrong
// face, after the same work), 400 for a bad user_id, 422 for an image
// without a usable face, 413 for a body over the limit and 429 with
// Retry-After while the user is locked out for this client.
func (h *FaceHandlers) Verify(w http.ResponseWriter, r *http.Request) {
	resp, err := h.verify(w, r)
	if h.OnVerify != nil {
		h.OnVerify(r.Context(), resp, err)
	}
	h.answer(w, r, resp, err)
}

func (h *FaceHandlers) verify(w http.ResponseWriter, r *http.Request) (*VerifyResponse, error) {
	form, leave, err := h.Admission.EnterForm(w, r, h.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	defer leave()
	userID := form.Value("user_id")
	if err := faceauth.ValidateUserID(userID); err != nil {
		return nil, err
	}
	img, err := oneImage(form)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	done, err := h.Limiter.Begin(ctx, userID, Client(r))
	if err != nil {
		return nil, h.refused(err)
	}
	// Only a face that was compared counts: an unreadable photo says
	// nothing about who is trying.
	outcome := Abandoned
	defer func() { done(outcome) }()

	model := h.Info.Model
	start := time.Now()
	refs, err := h.Gallery.Embeddings(ctx, userID, model)
	h.Metrics.Stage("lookup", start)
	// An unknown user gets the answer of a wrong face after the same work
	// (the pipeline and a comparison), and counts as a failure, so neither
	// the answer, its timing nor the lockout tells who is registered.
	unknown := faceauth.KindOf(err) == faceauth.KindNotFound
	if err != nil && !unknown {
		return nil, err
	}
	a, err := h.probe(ctx, img)
	if err != nil {
		return nil, err
	}
	if unknown {
		refs = [][]float32{decoy(len(a.Embedding))}
	}
	start = time.Now()
	var best float32 = -1
	for _, ref := range refs {
		best = max(best, faceauth.Similarity(a.Embedding, ref))
	}
	h.Metrics.Stage("match", start)
	resp := &VerifyResponse{
		Threshold: h.Info.Threshold,
		Model:     model,
		UserID:    userID,
		Face:      faceInfo(a),
		Faces:     len(a.Faces),
		Liveness:  h.liveness(a),
	}
	resp.Verified = !unknown && best >= resp.Threshold && (resp.Liveness == nil || resp.Liveness.Live)
	if resp.Verified || h.FailureScores {
		resp.Similarity = &best
	}
	outcome = Failed
	if resp.Verified {
		outcome = Matched
	}
	switch {
	case unknown:
		h.Metrics.Outcome("unknown_user")
	case resp.Verified:
		h.Metrics.Outcome("verified")
	case resp.Liveness != nil && !resp.Liveness.Live:
		h.Metrics.Outcome("not_live")
	default:
		h.Metrics.Outcome("rejected")
	}
	h.Log.Info("verify", "user_id", userID, "verified", resp.Verified, "unknown_user", unknown, "similarity", best, "faces", resp.Faces)
	return resp, nil
}

// Identify serves POST /api/identify: multipart image and optional limit.
// It answers the users whose references match the dominant face, best
// first; none is an empty list, not an error.
func (h *FaceHandlers) Identify(w http.ResponseWriter, r *http.Request) {
	resp, err := h.identify(w, r)
	h.answer(w, r, resp, err)
}

// answer writes resp, or err when it is not nil.
func (h *FaceHandlers) answer(w http.ResponseWriter, r *http.Request, resp any, err error) {
	if err != nil {
		WriteError(w, r, h.Log, err)
		return
	}
	WriteJSON(w, http.StatusOK, resp)
}

// refused counts a lockout's refusal (KindRateLimited) and returns err.
func (h *FaceHandlers) refused(err error) error {
	if faceauth.KindOf(err) == faceauth.KindRateLimited {
		h.Metrics.Outcome("locked")
	}
	return err
}

func (h *FaceHandlers) identify(w http.ResponseWriter, r *http.Request) (*IdentifyResponse, error) {
	form, leave, err := h.Admission.EnterForm(w, r, h.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	defer leave()
	limit := DefaultIdentifyLimit
	if s := form.Value("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxIdentifyLimit {
			return nil, faceauth.E(faceauth.KindInvalid, "invalid_limit", "The limit must be a whole number from 1 to %d.", MaxIdentifyLimit)
		}
		limit = n
	}
	img, err := oneImage(form)
	if err != nil {
		return nil, err
	}
	if h.Searcher == nil {
		return nil, faceauth.E(faceauth.KindUnavailable, "identify_unavailable", "Identification is not available on this server.")
	}
	ctx := r.Context()
	client := Client(r)
	done, err := h.Limiter.BeginIdentify(ctx, client)
	if err != nil {
		return nil, h.refused(err)
	}
	outcome := Abandoned
	defer func() { done(outcome) }()
	a, err := h.probe(ctx, img)
	if err != nil {
		return nil, err
	}
	resp := &IdentifyResponse{
		Matches:   []faceauth.Match{},
		Threshold: h.Info.Threshold,
		Model:     h.Info.Model,
		Face:      faceInfo(a),
		Faces:     len(a.Faces),
		Liveness:  h.liveness(a),
	}
	if resp.Liveness != nil && !resp.Liveness.Live {
		h.Metrics.Outcome("not_live")
		outcome = Failed
		return resp, nil
	}
	start := time.Now()
	matches, err := h.Searcher.Search(ctx, a.Embedding, resp.Model, resp.Threshold, limit)
	h.Metrics.Stage("match", start)
	if err != nil {
		return nil, err
	}
	// A user locked out, for everyone or for this client, is not
	// identified either: identify must not get round verify's lockout.
	for _, m := range matches {
		d, err := h.Limiter.Locked(ctx, m.UserID, client)
		if err != nil {
			return nil, unavailable(err)
		}
		if d == 0 {
			resp.Matches = append(resp.Matches, m)
		}
	}
	outcome = Failed
	if len(resp.Matches) > 0 {
		outcome = Matched
		h.Metrics.Outcome("matched")
	} else {
		h.Metrics.Outcome("no_match")
	}
	return resp, nil
}

// probe runs the pipeline in an admitted slot and counts refusals.
func (h *FaceHandlers) probe(ctx context.Context, img []byte) (*faceauth.Analysis, error) {
	release, err := h.Admission.Slot(ctx)
	if err != nil {
		h.Metrics.Outcome("busy")
		return nil, err
	}
	defer release()
	start := time.Now()
	a, err := h.Engine.Analyze(ctx, img, faceauth.Request{Liveness: h.Liveness})
	h.Metrics.Stage("face", start)
	switch faceauth.KindOf(err) {
	case faceauth.KindNoFace:
		h.Metrics.Outcome("no_face")
	case faceauth.KindBadImage, faceauth.KindTooLarge:
		h.Metrics.Outcome("bad_image")
	}
	return a, err
}

func (h *FaceHandlers) liveness(a *faceauth.Analysis) *Liveness {
	if !h.Liveness {
		return nil
	}
	th := h.Info.LivenessThreshold
	return &Liveness{Score: a.Liveness, Threshold: th, Live: a.LivenessChecked && a.Liveness >= th, Model: h.Info.LivenessModel}
}

func faceInfo(a *faceauth.Analysis) FaceInfo {
	f, ok := a.SelectedFace()
	if !ok {
		return FaceInfo{}
	}
	return FaceInfo{
		Box:     f.Box,
		Score:   f.Score,
		Quality: f.Quality,
	}
}

// oneImage returns the single image part of a verify or identify form.
func oneImage(form *Form) ([]byte, error) {
	files := form.FilesOf("image")
	switch {
	case len(files) == 0:
		return nil, faceauth.E(faceauth.KindInvalid, "missing_image", "The image field is required.")
	case len(files) > 1:
		return nil, faceauth.E(faceauth.KindInvalid, "too_many_images", "Send exactly one image.")
	case len(files[0].Data) == 0:
		return nil, faceauth.E(faceauth.KindBadImage, "empty_image", "The image is empty.")
	}
	return files[0].Data, nil
}

// Client names who is asking, for the lockout: the token's subject (one
// door, one kiosk), else the remote address.
func Client(r *http.Request) string {
	if c := ClaimsFrom(r.Context()); c != nil && c.Subject != "" {
		return "sub:" + c.Subject
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "addr:" + host
}

// decoy is the reference an unknown user is compared with: a unit vector
// no face embedding comes near, as long as a real one.
func decoy(dims int) []float32 {
	v := make([]float32, max(dims, 1))
	v[0] = 1
	return v
}
