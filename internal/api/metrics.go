package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xplore/faceauth/internal/metrics"
)

// Metrics are the request metrics both services export.
type Metrics struct {
	requests *prometheus.CounterVec   // route, status
	latency  *prometheus.HistogramVec // route
	stages   *prometheus.HistogramVec // stage
	outcomes *prometheus.CounterVec   // outcome
	shed     *prometheus.CounterVec   // reason
}

// Outcomes are the verify and identify outcomes counted in
// <prefix>_verify_total. Each starts at 0, so that rate() and the
// dashboard see a series before the first one happens.
var Outcomes = []string{"verified", "rejected", "not_live", "matched", "no_match", "no_face", "bad_image", "unknown_user", "locked", "busy"}

// Stages are the request stages timed in <prefix>_stage_seconds.
var Stages = []string{"face", "lookup", "match", "store"}

// NewMetrics registers the request metrics in reg with names starting
// with prefix (e.g. "faceauth_central").
func NewMetrics(reg prometheus.Registerer, prefix string) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "_http_requests_total",
			Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    prefix + "_http_request_seconds",
			Help:    "HTTP request latency by route.",
			Buckets: metrics.LatencyBuckets,
		}, []string{"route"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    prefix + "_stage_seconds",
			Help:    "Latency of request stages: face (image decode, detection, landmarks, embedding, liveness), lookup (reference embeddings), match, store (writes).",
			Buckets: metrics.LatencyBuckets,
		}, []string{"stage"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "_verify_total",
			Help: "Verify and identify outcomes: " + strings.Join(Outcomes, ", ") + ".",
		}, []string{"outcome"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "_shed_total",
			Help: "Image requests answered 503 by admission: queue_full (shed on arrival), client_share (shed on arrival: the client holds its share) or wait (no pipeline slot within the wait).",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.requests, m.latency, m.stages, m.outcomes, m.shed)
	for _, o := range Outcomes {
		m.outcomes.WithLabelValues(o)
	}
	for _, r := range []string{"queue_full", "client_share", "wait"} {
		m.shed.WithLabelValues(r)
	}
	for _, s := range Stages {
		m.stages.WithLabelValues(s)
	}
	return m
}

// Stage records the duration of a request stage since start. A nil
// *Metrics records nothing.
func (m *Metrics) Stage(stage string, start time.Time) {
	if m != nil {
		m.stages.WithLabelValues(stage).Observe(time.Since(start).Seconds())
	}
}

// Shed counts a request shed by admission; pass it to Admission.OnShed.
func (m *Metrics) Shed(reason string) {
	if m != nil {
		m.shed.WithLabelValues(reason).Inc()
	}
}

// Outcome counts a verify or identify outcome.
func (m *Metrics) Outcome(outcome string) {
	if m != nil {
		m.outcomes.WithLabelValues(outcome).Inc()
	}
}

// Instrument counts requests and their latency under route, which should
// be the route pattern (never the raw path, which would make a series per
// user).
func (m *Metrics) Instrument(route string, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	lat := m.latency.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		lat.Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
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
