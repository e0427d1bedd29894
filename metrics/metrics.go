// Package metrics is a small metrics registry that writes the Prometheus
// text exposition format (version 0.0.4): counters, gauges and histograms,
// each with optional labels. It covers what the central service and the edge
// daemon export, without the weight of a full client library.
//
// All methods are safe for concurrent use.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metrics and writes them out in registration order.
type Registry struct {
	mu      sync.Mutex
	metrics []metric
	names   map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{names: map[string]bool{}}
}

type metric interface {
	write(w *bufio.Writer)
}

func (r *Registry) add(name string, m metric) {
	if !validName(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names[name] {
		panic(fmt.Sprintf("metrics: %q registered twice", name))
	}
	r.names[name] = true
	r.metrics = append(r.metrics, m)
}

// WriteTo writes every metric in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	ms := slices.Clone(r.metrics)
	r.mu.Unlock()
	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	for _, m := range ms {
		m.write(bw)
	}
	err := bw.Flush()
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Handler serves the registry for a Prometheus scraper.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteTo(w)
	})
}

// family is the shared part of a labelled metric: its name, help, label
// names and children keyed by their joined label values.
type family[T any] struct {
	name, help, typ string
	labels          []string
	mu              sync.RWMutex
	children        map[string]*T
	keys            []string // insertion order, for stable output
	newChild        func() *T
}

func newFamily[T any](name, help, typ string, labels []string, newChild func() *T) *family[T] {
	for _, l := range labels {
		if !validName(l) || strings.HasPrefix(l, "__") || l == "le" {
			panic(fmt.Sprintf("metrics: invalid label name %q", l))
		}
	}
	return &family[T]{name: name, help: help, typ: typ, labels: labels, children: map[string]*T{}, newChild: newChild}
}

// child returns the series for the label values, creating it.
func (f *family[T]) child(values []string) *T {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values, got %d", f.name, len(f.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	f.mu.RLock()
	c := f.children[key]
	f.mu.RUnlock()
	if c != nil {
		return c
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c = f.children[key]; c == nil {
		c = f.newChild()
		f.children[key] = c
		f.keys = append(f.keys, key)
	}
	return c
}

func (f *family[T]) header(w *bufio.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ)
}

// each calls fn for every child with its rendered label pairs.
func (f *family[T]) each(fn func(labels string, c *T)) {
	f.mu.RLock()
	keys := slices.Clone(f.keys)
	children := make([]*T, len(keys))
	for i, k := range keys {
		children[i] = f.children[k]
	}
	f.mu.RUnlock()
	for i, k := range keys {
		var values []string
		if len(f.labels) > 0 {
			values = strings.Split(k, "\xff")
		}
		fn(renderLabels(f.labels, values), children[i])
	}
}

func renderLabels(names, values []string) string {
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escapeValue(values[i]))
		b.WriteByte('"')
	}
	return b.String()
}

// Counter is a monotonically increasing value.
type Counter struct{ bits atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Add adds v, which must not be negative.
func (c *Counter) Add(v float64) {
	if v < 0 {
		panic("metrics: counter decreased")
	}
	addFloat(&c.bits, v)
}

// Value returns the current value.
func (c *Counter) Value() float64 { return math.Float64frombits(c.bits.Load()) }

// CounterVec is a counter with labels.
type CounterVec struct{ f *family[Counter] }

// Counter registers a counter with the given label names.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	v := &CounterVec{f: newFamily(name, help, "counter", labels, func() *Counter { return new(Counter) })}
	r.add(name, v)
	return v
}

// With returns the counter for the label values, in label order.
func (v *CounterVec) With(values ...string) *Counter { return v.f.child(values) }

func (v *CounterVec) write(w *bufio.Writer) {
	v.f.header(w)
	v.f.each(func(l string, c *Counter) { sample(w, v.f.name, l, c.Value()) })
}

// Gauge is a value that goes up and down.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds v (which may be negative).
func (g *Gauge) Add(v float64) { addFloat(&g.bits, v) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// GaugeVec is a gauge with labels.
type GaugeVec struct{ f *family[Gauge] }

// Gauge registers a gauge with the given label names.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	v := &GaugeVec{f: newFamily(name, help, "gauge", labels, func() *Gauge { return new(Gauge) })}
	r.add(name, v)
	return v
}

// With returns the gauge for the label values, in label order.
func (v *GaugeVec) With(values ...string) *Gauge { return v.f.child(values) }

func (v *GaugeVec) write(w *bufio.Writer) {
	v.f.header(w)
	v.f.each(func(l string, g *Gauge) { sample(w, v.f.name, l, g.Value()) })
}

// gaugeFunc is a gauge read from a function at scrape time.
type gaugeFunc struct {
	name, help string
	fn         func() float64
}

// GaugeFunc registers an unlabelled gauge whose value fn returns when the
// registry is written, for values owned elsewhere (a cache size, a
// revision).
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	r.add(name, &gaugeFunc{name: name, help: help, fn: fn})
}

func (g *gaugeFunc) write(w *bufio.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", g.name, escapeHelp(g.help), g.name)
	sample(w, g.name, "", g.fn())
}

// DefBuckets are latency buckets in seconds, from 1 ms to 10 s.
var DefBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Histogram counts observations into cumulative buckets.
type Histogram struct {
	upper  []float64 // shared with the family; read-only
	counts []atomic.Uint64
	count  atomic.Uint64
	sum    atomic.Uint64 // float64 bits
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.upper, v) // first bucket with upper >= v
	if i < len(h.counts) {
		h.counts[i].Add(1)
	}
	addFloat(&h.sum, v)
	h.count.Add(1)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// HistogramVec is a histogram with labels.
type HistogramVec struct {
	f     *family[Histogram]
	upper []float64
}

// Histogram registers a histogram with the given bucket upper bounds
// (ascending; nil means DefBuckets) and label names.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if buckets == nil {
		buckets = DefBuckets
	}
	if !slices.IsSorted(buckets) || len(slices.Compact(slices.Clone(buckets))) != len(buckets) {
		panic(fmt.Sprintf("metrics: %s buckets are not strictly ascending", name))
	}
	upper := slices.Clone(buckets)
	v := &HistogramVec{upper: upper}
	v.f = newFamily(name, help, "histogram", labels, func() *Histogram {
		return &Histogram{upper: upper, counts: make([]atomic.Uint64, len(upper))}
	})
	r.add(name, v)
	return v
}

// With returns the histogram for the label values, in label order.
func (v *HistogramVec) With(values ...string) *Histogram { return v.f.child(values) }

func (v *HistogramVec) write(w *bufio.Writer) {
	v.f.header(w)
	v.f.each(func(l string, h *Histogram) {
		// Buckets and count are read without a lock while Observe may run;
		// max keeps +Inf no smaller than the last bucket.
		var cum uint64
		for i, ub := range v.upper {
			cum += h.counts[i].Load()
			sample(w, v.f.name+"_bucket", joinLabels(l, `le="`+formatFloat(ub)+`"`), float64(cum))
		}
		count := h.count.Load()
		sample(w, v.f.name+"_bucket", joinLabels(l, `le="+Inf"`), float64(max(count, cum)))
		sample(w, v.f.name+"_sum", l, math.Float64frombits(h.sum.Load()))
		sample(w, v.f.name+"_count", l, float64(max(count, cum)))
	})
}

func joinLabels(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

func sample(w *bufio.Writer, name, labels string, v float64) {
	w.WriteString(name)
	if labels != "" {
		w.WriteByte('{')
		w.WriteString(labels)
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func addFloat(bits *atomic.Uint64, v float64) {
	for {
		old := bits.Load()
		if bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
var valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeValue(s string) string { return valueEscaper.Replace(s) }
