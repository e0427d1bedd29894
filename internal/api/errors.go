// Package api holds the HTTP pieces that the central service and the edge
// daemon share, so both offer the same contract for verify and identify:
// JSON errors with stable codes, multipart intake with a body limit, bearer
// token checks with roles, the verify and identify handlers over small
// interfaces, the per-user verify lockout and request metrics.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/xplore/faceauth"
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error string `json:"error"` // one human sentence
	Code  string `json:"code"`  // stable snake_case code
}

// Status returns the HTTP status for an error kind.
func Status(k faceauth.Kind) int {
	switch k {
	case faceauth.KindInvalid:
		return http.StatusBadRequest
	case faceauth.KindBadImage, faceauth.KindNoFace:
		return http.StatusUnprocessableEntity
	case faceauth.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case faceauth.KindNotFound:
		return http.StatusNotFound
	case faceauth.KindConflict:
		return http.StatusConflict
	case faceauth.KindUnauthenticated:
		return http.StatusUnauthorized
	case faceauth.KindForbidden:
		return http.StatusForbidden
	case faceauth.KindRateLimited:
		return http.StatusTooManyRequests
	case faceauth.KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// RetryError is an error that tells the client when to try again; the
// response carries it as a Retry-After header.
type RetryError struct {
	Err   error
	After time.Duration
}

// Error implements error.
func (e *RetryError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *RetryError) Unwrap() error { return e.Err }

// WithRetryAfter attaches a Retry-After duration to err.
func WithRetryAfter(err error, after time.Duration) error {
	return &RetryError{Err: err, After: after}
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1, as the
// Retry-After header needs.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// WriteError answers with err as a JSON ErrorBody. A *faceauth.Error gives
// its kind's status, code and sentence; anything else is an internal error
// whose details are logged, never sent.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var fe *faceauth.Error
	body := ErrorBody{Error: "An internal error occurred.", Code: "internal"}
	status := http.StatusInternalServerError
	switch {
	case errors.As(err, &fe) && fe.Kind != faceauth.KindInternal:
		status = Status(fe.Kind)
		body = ErrorBody{Error: fe.Msg, Code: fe.Code}
		if body.Code == "" {
			body.Code = fe.Kind.String()
		}
		level := slog.LevelDebug
		if status >= 500 {
			level = slog.LevelWarn
		}
		log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "code", body.Code, "err", err)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		status = 499
		body = ErrorBody{Error: "The request was cancelled.", Code: "cancelled"}
		log.Debug("request cancelled", "method", r.Method, "path", r.URL.Path)
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
		body = ErrorBody{Error: "The request timed out; try again.", Code: "timeout"}
		log.Warn("request timed out", "method", r.Method, "path", r.URL.Path, "err", err)
	default:
		log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var re *RetryError
	if errors.As(err, &re) {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds(re.After)))
	}
	WriteJSON(w, status, body)
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		// Only a bug can get here: every response type marshals.
		status = http.StatusInternalServerError
		data = []byte(`{"error":"An internal error occurred.","code":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// NotFound answers every request that matches no route, in the same JSON
// error form as the rest of the API.
func NotFound(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, log, faceauth.E(faceauth.KindNotFound, "no_route", "There is no endpoint %s %s.", r.Method, r.URL.Path))
	})
}
