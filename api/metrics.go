package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/xplore/faceauth/metrics"
)

// Metrics are the request metrics both services export.
type Metrics struct {
	requests *metrics.CounterVec   // route, status
	latency  *metrics.HistogramVec // route
	stages   *metrics.HistogramVec // stage
	outcomes *metrics.CounterVec   // outcome
}

// NewMetrics registers the request metrics in reg with names starting
// with prefix (e.g. "faceauth_central").
func NewMetrics(reg *metrics.Registry, prefix string) *Metrics {
	return &Metrics{
		requests: reg.Counter(prefix+"_http_requests_total", "HTTP requests by route and status.", "route", "status"),
		latency:  reg.Histogram(prefix+"_http_request_seconds", "HTTP request latency by route.", nil, "route"),
		stages: reg.Histogram(prefix+"_stage_seconds",
			"Latency of request stages: face (image decode, detection, landmarks, embedding, liveness), lookup (reference embeddings), match, store (writes).", nil, "stage"),
		outcomes: reg.Counter(prefix+"_verify_total",
			"Verify and identify outcomes: verified, rejected, not_live, matched, no_match, no_face, bad_image, unknown_user, locked.", "outcome"),
	}
}

// Stage records the duration of a request stage since start. A nil
// *Metrics records nothing.
func (m *Metrics) Stage(stage string, start time.Time) {
	if m != nil {
		m.stages.With(stage).Observe(time.Since(start).Seconds())
	}
}

// Outcome counts a verify or identify outcome.
func (m *Metrics) Outcome(outcome string) {
	if m != nil {
		m.outcomes.With(outcome).Inc()
	}
}

// Instrument counts requests and their latency under route, which should
// be the route pattern (never the raw path, which would make a series per
// user).
func (m *Metrics) Instrument(route string, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	lat := m.latency.With(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		lat.Observe(time.Since(start).Seconds())
		m.requests.With(route, strconv.Itoa(sw.status)).Inc()
	})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
