package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestHandler checks that a registry serves the standard runtime and
// process series next to its own, in the text format, and that two
// registries in one process register the same names without a clash.
func TestHandler(t *testing.T) {
	for range 2 {
		reg := NewRegistry()
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_requests_total", Help: "Requests."}, []string{"route"})
		reg.MustRegister(c)
		c.WithLabelValues(`GET /x"y`).Inc()

		rec := httptest.NewRecorder()
		Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("Content-Type = %q", ct)
		}
		body, _ := io.ReadAll(rec.Body)
		for _, want := range []string{
			"\ngo_goroutines ",
			"\nprocess_resident_memory_bytes ",
			`test_requests_total{route="GET /x\"y"} 1`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	}
}
