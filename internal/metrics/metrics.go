// Package metrics sets up the Prometheus registry each daemon serves at
// /metrics, with github.com/prometheus/client_golang: the daemon's own
// series plus the standard Go runtime (go_*) and process (process_*) ones.
//
// Each daemon instance gets its own registry rather than the library's
// global default, so several servers in one process (tests, a central
// with its edges in one binary) never collide on a name.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// LatencyBuckets are the histogram buckets of request and stage latencies,
// in seconds: from 1 ms (an edge's gallery match) to 10 s (a slow
// register), finer than prometheus.DefBuckets at the low end.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewRegistry returns a registry holding the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves reg for a Prometheus scraper. A collector that fails
// makes the scrape answer 500 with the error, rather than silently serve a
// partial set.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
