package edged

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/gallery"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models/face"
)

// Speed targets (docs/benchmarks.md): a 100k bootstrap within 10 s, a warm
// restart to ready within 1 s, a change verifiable on the edge within 250
// ms at p99, identify over 100k within 10 ms and an HTTP verify of a
// 640x480 JPEG within 20 ms median on one core (run with -cpu 1).

// percentile returns the p-th percentile (0..1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// BenchmarkBootstrap measures a fresh edge, from Open to serving every user
// of a stream of synthetic users with one embedding each.
func BenchmarkBootstrap(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			nats := startNATS(b)
			js := nats.client(b)
			model := testEngine(b).Info().Model
			for i := 0; i < n; i += 10_000 {
				publish(b, js, users(fmt.Sprintf("b%d-", i/10_000), min(10_000, n-i), uint64(i+1), model)...)
			}
			// A stream being written is waited on before the swap
			// (resyncQuiet); a bootstrap reads a settled one.
			time.Sleep(resyncQuiet)
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				e := startEdge(b, b.TempDir(), nats.url, func(c *Config) { c.Heartbeat = 5 * time.Second })
				for e.Users() != n {
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				b.StopTimer()
				e.stop()
				b.StartTimer()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/bootstrap")
		})
	}
}

// BenchmarkWarmRestart measures Open on a file of 100k users: until the
// edge verifies (Open returns: verification reads the file) and until it
// identifies (the gallery is built).
func BenchmarkWarmRestart(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	model := testEngine(b).Info().Model
	d, err := openDB(dbPath(dir), model)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 5000 {
		var es []entry
		for j := i; j < i+5000; j++ {
			es = append(es, entry{Seq: uint64(j + 1), Change: upsert(fmt.Sprintf("w%06d", j), uint64(j+1), model, vec(edgeDims, uint64(j)))})
		}
		if _, err := d.apply(0, es, edgeDims); err != nil {
			b.Fatal(err)
		}
	}
	d.close()
	cfg := Config{EdgeID: "edge-1", DataDir: dir, Engine: testEngine(b), Info: testEngine(b).Info(), Log: quietLog()}
	var verifyReady, identifyReady time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		e, err := Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		verifyReady += time.Since(start)
		<-e.loaded
		identifyReady += time.Since(start)
		if e.Users() != n {
			b.Fatalf("%d users loaded", e.Users())
		}
		b.StopTimer()
		e.Close()
		b.StartTimer()
	}
	b.ReportMetric(ms(verifyReady)/float64(b.N), "verify-ready-ms")
	b.ReportMetric(ms(identifyReady)/float64(b.N), "identify-ready-ms")

	// The part that is the file's: open it and read every vector, without
	// building the gallery.
	b.StopTimer()
	start := time.Now()
	d, err = openDB(dbPath(dir), model)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.load(func(string, [][]float32) error { return nil }); err != nil {
		b.Fatal(err)
	}
	d.close()
	b.ReportMetric(ms(time.Since(start)), "file-ms")
}

// BenchmarkSyncLatency measures, on loopback, the time from a change
// acknowledged by JetStream (central's publish) to the user being
// verifiable and identifiable on a running edge.
func BenchmarkSyncLatency(b *testing.B) {
	nats := startNATS(b)
	js := nats.client(b)
	model := testEngine(b).Info().Model
	publish(b, js, users("s", 1000, 1, model)...)
	e := startEdge(b, b.TempDir(), nats.url, func(c *Config) { c.Heartbeat = 5 * time.Second })
	for e.Users() != 1000 {
		time.Sleep(time.Millisecond)
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("live%07d", i)
		start := time.Now()
		publish(b, js, upsert(id, uint64(10_000+i), model, vec(edgeDims, uint64(10_000+i))))
		for !e.gallery.Has(id) {
			time.Sleep(20 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.ReportMetric(ms(percentile(lat, 0.5)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
}

// BenchmarkVerifyHTTP measures POST /api/verify of a 640x480 JPEG on the
// edge, token check, decode, detection, embedding and match included, with
// the default model (models.DefaultModel, the fusion ArcFace+dlib).
func BenchmarkVerifyHTTP(b *testing.B) { benchVerifyHTTP(b, realEngine(b)) }

// BenchmarkVerifyHTTPSingle is BenchmarkVerifyHTTP with ArcFace alone as
// the verification model.
func BenchmarkVerifyHTTPSingle(b *testing.B) {
	arc, err := face.New(context.Background(), face.Config{ModelsDir: testenv.ModelsDir(b), Model: "ArcFace", Workers: 1, Log: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	defer arc.Close()
	benchVerifyHTTP(b, arc)
}

func benchVerifyHTTP(b *testing.B, eng *face.Engine) {
	signer, _ := auth.SignerFromSecret("edge benchmark secret")
	tok, _ := signer.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())
	img := faceJPEG(b, "sample1.jpg", 640, 480)
	embedWith := func() []float32 {
		a, err := eng.Analyze(context.Background(), img, faceauth.Request{})
		if err != nil {
			b.Fatal(err)
		}
		return a.Embedding
	}
	nats := startNATS(b)
	js := nats.client(b)
	publish(b, js, upsert("alice", 1, eng.Info().Model, embedWith()))
	e := startEdge(b, b.TempDir(), nats.url, func(c *Config) { c.TokenPublicKey, c.Engine, c.Info = signer.PublicKey(), eng, eng.Info() })
	for e.Users() != 1 {
		time.Sleep(time.Millisecond)
	}
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	var lat []time.Duration
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for range b.N {
		start := time.Now()
		status, body := post(b, srv.URL+"/api/verify", tok, map[string]string{"user_id": "alice"}, img)
		lat = append(lat, time.Since(start))
		if status != 200 {
			b.Fatalf("%d %s", status, body)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(ms(percentile(lat, 0.5)), "median-ms")

	// The face pipeline alone on the same image, to show what the edge
	// adds (HTTP, token, multipart, lookup, match).
	b.StopTimer()
	var probe []time.Duration
	for range min(b.N, 100) {
		start := time.Now()
		embedWith()
		probe = append(probe, time.Since(start))
	}
	b.ReportMetric(ms(percentile(probe, 0.5)), "pipeline-median-ms")
}

// BenchmarkIdentify measures 1:N search on the edge (top 5 at the match
// threshold) over synthetic users, with ArcFace's 512-d embeddings and the
// fusion ArcFace+dlib's 640-d ones.
func BenchmarkIdentify(b *testing.B) {
	for _, dims := range []int{512, 512 + 128} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("dims=%d/users=%d", dims, n), func(b *testing.B) {
				e := &Edge{model: "m"}
				e.gallery = newTestGallery(b, n, dims)
				e.identifyReady.Store(true)
				s := edgeSearcher{e}
				q := vec(dims, uint64(n/2))
				b.ResetTimer()
				for range b.N {
					ms, err := s.Search(context.Background(), q, "m", 0.4, 5)
					if err != nil || len(ms) != 1 {
						b.Fatalf("%v %v", ms, err)
					}
				}
			})
		}
	}
}

// newTestGallery returns a gallery of n synthetic users "i<n>" with the
// vectors vec(dims, n).
func newTestGallery(b *testing.B, n, dims int) *gallery.Gallery {
	g := gallery.New(dims)
	err := g.Reset(func(add func(string, [][]float32) error) error {
		for i := range n {
			if err := add(fmt.Sprintf("i%06d", i), [][]float32{vec(dims, uint64(i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// cpuTime is the process's user and system CPU time (client, edge and NATS
// together): on a shared machine it varies less than wall time with the
// other processes' load.
func cpuTime(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
