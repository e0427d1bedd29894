package metrics

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestExposition(t *testing.T) {
	r := NewRegistry()
	req := r.Counter("http_requests_total", "Requests by route and status.", "route", "status")
	lat := r.Histogram("stage_seconds", "Latency per stage.", []float64{0.01, 0.1, 1}, "stage")
	users := r.Gauge("users", "Registered users.")
	r.GaugeFunc("revision", "Store revision.", func() float64 { return 42 })

	req.With("POST /api/verify", "200").Inc()
	req.With("POST /api/verify", "200").Add(2)
	req.With(`GET /x"y`, "404").Inc()
	lat.With("detect").Observe(0.005)
	lat.With("detect").Observe(0.05)
	lat.With("detect").Observe(5)
	users.With().Set(7)
	users.With().Add(-2)

	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP http_requests_total Requests by route and status.
# TYPE http_requests_total counter
http_requests_total{route="POST /api/verify",status="200"} 3
http_requests_total{route="GET /x\"y",status="404"} 1
# HELP stage_seconds Latency per stage.
# TYPE stage_seconds histogram
stage_seconds_bucket{stage="detect",le="0.01"} 1
stage_seconds_bucket{stage="detect",le="0.1"} 2
stage_seconds_bucket{stage="detect",le="1"} 2
stage_seconds_bucket{stage="detect",le="+Inf"} 3
stage_seconds_sum{stage="detect"} 5.055
stage_seconds_count{stage="detect"} 3
# HELP users Registered users.
# TYPE users gauge
users 5
# HELP revision Store revision.
# TYPE revision gauge
revision 42
`
	if got := b.String(); got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}

	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q", ct)
	}
	if rec.Body.String() != want {
		t.Error("handler output differs from WriteTo")
	}
}

func TestConcurrentCounts(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c", "c", "k")
	h := r.Histogram("h", "h", nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 1000 {
				c.With([]string{"a", "b"}[i%2]).Inc()
				h.With().Observe(0.003)
			}
		})
	}
	wg.Wait()
	if got := c.With("a").Value() + c.With("b").Value(); got != 8000 {
		t.Errorf("counter total = %v, want 8000", got)
	}
	if got := h.With().Count(); got != 8000 {
		t.Errorf("histogram count = %d, want 8000", got)
	}
}

func TestRegistrationPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func(r *Registry)
	}{
		{"duplicate", func(r *Registry) { r.Counter("a", ""); r.Gauge("a", "") }},
		{"bad name", func(r *Registry) { r.Counter("a-b", "") }},
		{"reserved label", func(r *Registry) { r.Histogram("h", "", nil, "le") }},
		{"unsorted buckets", func(r *Registry) { r.Histogram("h", "", []float64{1, 0.5}) }},
		{"wrong label count", func(r *Registry) { r.Counter("c", "", "x").With("1", "2") }},
		{"negative add", func(r *Registry) { r.Counter("c", "").With().Add(-1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.f(NewRegistry())
		})
	}
}
