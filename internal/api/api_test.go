package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/metrics"
)

var quiet = slog.New(slog.DiscardHandler)

func TestWriteError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		msg        string
		retryAfter string
	}{
		{"invalid", faceauth.E(faceauth.KindInvalid, "invalid_user_id", "Bad id."), 400, "invalid_user_id", "Bad id.", ""},
		{"bad image", faceauth.E(faceauth.KindBadImage, "truncated_image", "Cut."), 422, "truncated_image", "Cut.", ""},
		{"no face", faceauth.E(faceauth.KindNoFace, "no_face", "None."), 422, "no_face", "None.", ""},
		{"too large", faceauth.E(faceauth.KindTooLarge, "image_too_large", "Big."), 413, "image_too_large", "Big.", ""},
		{"not found", faceauth.E(faceauth.KindNotFound, "user_not_found", "Who?"), 404, "user_not_found", "Who?", ""},
		{"conflict", faceauth.E(faceauth.KindConflict, "last_reference", "Last."), 409, "last_reference", "Last.", ""},
		{"unauthenticated", faceauth.E(faceauth.KindUnauthenticated, "missing_token", "Token."), 401, "missing_token", "Token.", ""},
		{"forbidden", faceauth.E(faceauth.KindForbidden, "forbidden", "No."), 403, "forbidden", "No.", ""},
		{"rate limited", WithRetryAfter(faceauth.E(faceauth.KindRateLimited, "user_locked", "Wait."), 90*time.Second+time.Millisecond), 429, "user_locked", "Wait.", "91"},
		{"unavailable", faceauth.E(faceauth.KindUnavailable, "store_unavailable", "Down."), 503, "store_unavailable", "Down.", ""},
		{"wrapped", fmt.Errorf("ctx: %w", faceauth.E(faceauth.KindNotFound, "x", "X.")), 404, "x", "X.", ""},
		{"internal leaks nothing", errors.New("open /secret/path: permission denied"), 500, "internal", "An internal error occurred.", ""},
		{"internal kind leaks nothing", faceauth.E(faceauth.KindInternal, "oops", "secret detail"), 500, "internal", "An internal error occurred.", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteError(rec, httptest.NewRequest("POST", "/api/verify", nil), quiet, tt.err)
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d", rec.Code, tt.status)
			}
			var body ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if body.Code != tt.code || body.Error != tt.msg {
				t.Errorf("body %+v, want %s %q", body, tt.code, tt.msg)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

// multipartBody builds a form with text fields and files (field, name, data).
func multipartBody(t testing.TB, fields map[string]string, files ...[3]string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for _, f := range files {
		w, err := mw.CreateFormFile(f[0], f[1])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f[2]))
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func TestParseForm(t *testing.T) {
	ct, body := multipartBody(t, map[string]string{"user_id": "alice"}, [3]string{"image", "a.jpg", "AAAA"}, [3]string{"image", "b.jpg", "BBBB"})
	bigCT, bigBody := multipartBody(t, nil, [3]string{"image", "x.jpg", strings.Repeat("x", 2000)})
	var dup bytes.Buffer
	dw := multipart.NewWriter(&dup)
	dw.WriteField("user_id", "alice")
	dw.WriteField("user_id", "mallory")
	dw.Close()
	tests := []struct {
		name    string
		ct      string
		body    io.Reader
		length  int64 // -1: unknown (chunked)
		limit   int64
		code    string
		nImages int
	}{
		{"ok", ct, bytes.NewReader(body), int64(len(body)), 1 << 20, "", 2},
		{"declared too large", bigCT, bytes.NewReader(bigBody), int64(len(bigBody)), 1024, "body_too_large", 0},
		{"chunked too large", bigCT, bytes.NewReader(bigBody), -1, 1024, "body_too_large", 0},
		{"not multipart", "application/json", strings.NewReader("{}"), 2, 1024, "not_multipart", 0},
		{"no boundary", "multipart/form-data", strings.NewReader("x"), 1, 1024, "not_multipart", 0},
		{"duplicate field", dw.FormDataContentType(), bytes.NewReader(dup.Bytes()), int64(dup.Len()), 1 << 20, "duplicate_field", 0},
		{"truncated", ct, bytes.NewReader(body[:len(body)/2]), -1, 1 << 20, "malformed_form", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/register", tt.body)
			r.Header.Set("Content-Type", tt.ct)
			r.ContentLength = tt.length
			form, err := ParseForm(httptest.NewRecorder(), r, tt.limit)
			if tt.code != "" {
				var fe *faceauth.Error
				if !errors.As(err, &fe) || fe.Code != tt.code {
					t.Fatalf("err = %v, want code %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			files := form.FilesOf("image")
			if form.Value("user_id") != "alice" || len(files) != tt.nImages || string(files[1].Data) != "BBBB" || files[1].Name != "b.jpg" {
				t.Fatalf("form = %+v", form)
			}
			if got := files[0].Label(0); got != `image 1 ("a.jpg")` {
				t.Errorf("Label = %s", got)
			}
		})
	}
}

func TestRequireRole(t *testing.T) {
	s, err := auth.SignerFromSecret("a test secret that is long enough")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	admin, _ := s.Issue("ops", auth.RoleAdmin, time.Hour, now)
	verify, _ := s.Issue("door", auth.RoleVerify, time.Hour, now)
	expired, _ := s.Issue("old", auth.RoleAdmin, time.Second, now.Add(-time.Hour))
	other, _ := auth.SignerFromSecret("some other secret, also long")
	foreign, _ := other.Issue("ops", auth.RoleAdmin, time.Hour, now)
	revokedTok, _ := s.Issue("lost-door", auth.RoleVerify, time.Hour, now.Add(-time.Minute))
	reissued, _ := s.Issue("lost-door", auth.RoleVerify, time.Hour, now.Add(2*time.Second))
	// The public key only, as an edge holds it, and one revoked subject.
	edge := WithRevocations(auth.NewVerifier(s.PublicKey()), func() auth.Revocations {
		return auth.Revocations{"lost-door": now}
	})

	tests := []struct {
		name   string
		header string
		need   auth.Role
		status int
		code   string
	}{
		{"admin on admin", "Bearer " + admin, auth.RoleAdmin, 200, ""},
		{"admin may verify", "Bearer " + admin, auth.RoleVerify, 200, ""},
		{"verify on verify", "Bearer " + verify, auth.RoleVerify, 200, ""},
		{"verify on admin", "Bearer " + verify, auth.RoleAdmin, 403, "forbidden"},
		{"no header", "", auth.RoleVerify, 401, "missing_token"},
		{"basic auth", "Basic YTpi", auth.RoleVerify, 401, "missing_token"},
		{"garbage", "Bearer nope", auth.RoleVerify, 401, "invalid_token"},
		{"expired", "Bearer " + expired, auth.RoleAdmin, 401, "token_expired"},
		{"other key", "Bearer " + foreign, auth.RoleAdmin, 401, "invalid_token"},
		{"revoked", "Bearer " + revokedTok, auth.RoleVerify, 401, "token_revoked"},
		{"issued after the revocation", "Bearer " + reissued, auth.RoleVerify, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sawClaims *auth.Claims
			h := RequireRole(edge, tt.need, quiet, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sawClaims = ClaimsFrom(r.Context())
			}))
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 200 {
				if sawClaims == nil {
					t.Fatal("handler saw no claims")
				}
				return
			}
			var body ErrorBody
			json.Unmarshal(rec.Body.Bytes(), &body)
			if body.Code != tt.code {
				t.Errorf("code %q, want %q (%s)", body.Code, tt.code, body.Error)
			}
			if tt.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// fakeClock is a settable clock for the limiter.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLimiter(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := NewLimiter(LimitConfig{MaxFailures: 3, Window: time.Minute, Lockout: 10 * time.Minute}, clock.now)
	ctx := t.Context()
	attempt := func(user string, o Outcome) error {
		done, err := l.Begin(ctx, user, "door-1")
		if err != nil {
			return err
		}
		done(o)
		return nil
	}
	step := func(d time.Duration) { clock.t = clock.t.Add(d) }

	// Two failures, a success resets, three failures lock.
	for _, o := range []Outcome{Failed, Failed, Matched, Failed, Failed} {
		if err := attempt("alice", o); err != nil {
			t.Fatal(err)
		}
	}
	// Abandoned attempts (no face) do not count.
	for range 10 {
		if err := attempt("alice", Abandoned); err != nil {
			t.Fatal(err)
		}
	}
	if err := attempt("alice", Failed); err != nil {
		t.Fatal(err) // the third failure is answered; it locks afterwards
	}
	err := attempt("alice", Matched)
	var re *RetryError
	if faceauth.KindOf(err) != faceauth.KindRateLimited || !errors.As(err, &re) || re.After != 10*time.Minute {
		t.Fatalf("locked user: %v", err)
	}
	if err := attempt("bob", Failed); err != nil {
		t.Fatalf("another user is not locked: %v", err)
	}
	if got, _ := l.Locked(ctx, "alice", "door-1"); got != 10*time.Minute {
		t.Errorf("Locked = %v", got)
	}
	if got, _ := l.Locked(ctx, "alice", "door-2"); got != 0 {
		t.Errorf("Locked for another client = %v", got)
	}
	step(9 * time.Minute)
	if err := attempt("alice", Matched); err == nil || !errors.As(err, &re) || re.After != time.Minute {
		t.Fatalf("still locked with 1 minute left: %v", err)
	}
	step(time.Minute)
	if err := attempt("alice", Failed); err != nil {
		t.Fatalf("lock expired: %v", err)
	}

	// Failures older than the window do not count.
	for range 2 {
		attempt("carol", Failed)
	}
	step(61 * time.Second)
	for range 2 {
		if err := attempt("carol", Failed); err != nil {
			t.Fatalf("old failures counted: %v", err)
		}
	}

	// In-flight attempts count: a burst cannot exceed the limit.
	var dones []func(Outcome)
	for range 3 {
		d, err := l.Begin(ctx, "dave", "door-1")
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, d)
	}
	if _, err := l.Begin(ctx, "dave", "door-1"); faceauth.KindOf(err) != faceauth.KindRateLimited {
		t.Fatalf("fourth parallel attempt: %v", err)
	}
	for _, d := range dones {
		d(Failed)
		d(Failed) // a second call is ignored
	}
	if d, _ := l.Locked(ctx, "dave", "door-1"); d == 0 {
		t.Fatal("three parallel failures did not lock")
	}

	// Disabled limiter and nil limiter let everything through.
	for _, off := range []*Limiter{nil, NewLimiter(LimitConfig{}, nil)} {
		for range 100 {
			if err := func() error { d, err := off.Begin(ctx, "x", "y"); d(Failed); return err }(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestInstrument(t *testing.T) {
	// This checks the route and
	// status labels the middleware records.
	m := newTestMetrics()
	h := m.Instrument("GET /api/users/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, quiet, faceauth.E(faceauth.KindNotFound, "user_not_found", "x"))
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/users/bob", nil))
	if got := testutil.ToFloat64(m.requests.WithLabelValues("GET /api/users/{id}", "404")); got != 1 {
		t.Errorf("404 count = %v", got)
	}
}

func newTestMetrics() *Metrics { return NewMetrics(metrics.NewRegistry(), "test") }
