package face

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/testenv"
)

// cpuTime is the process's user and system CPU time: on a shared machine
// it varies less than wall time with the other processes' load.
func cpuTime(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEmbedDlib is the dlib stage alone on the first face of
// sample1.jpg: its chip (68-point fit, 150x150 warp) and inference.
func BenchmarkEmbedDlib(b *testing.B) {
	s := newStageBench(b)
	e := modelEngine(b, "dlib", 1)
	w, err := e.pool.get(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer e.pool.put(w)
	start := cpuTime(b)
	for b.Loop() {
		if _, err := w.answer(s.r, &s.f, nil, &e.ans); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/1e6/float64(b.N), "cpu-ms/op")
}

// BenchmarkProbe640JPEGModels is BenchmarkProbe640JPEG for each model
// choice, measured side by side (with CPU time per probe).
func BenchmarkProbe640JPEGModels(b *testing.B) {
	r := decodeRaster(b, testenv.Sample(b, "sample1.jpg"))
	cut := float64(r.w) - float64(r.h)*4/3
	img := resizedJPEG(b, r, cut/2, 0, float64(r.w)-cut/2, float64(r.h), 640, 480)
	for _, model := range []string{"ArcFace", "dlib", "ArcFace+dlib"} {
		b.Run(model, func(b *testing.B) {
			e := modelEngine(b, model, 1)
			ctx := context.Background()
			start := cpuTime(b)
			for b.Loop() {
				if _, err := e.Analyze(ctx, img, faceauth.Request{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-start)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
}

// BenchmarkEmbeddings250Models is BenchmarkEmbeddings250 for each model
// choice, measured side by side (with CPU time per probe).
func BenchmarkEmbeddings250Models(b *testing.B) {
	photos := faces250(b, testEngine(b, 1))
	for _, model := range []string{"ArcFace", "dlib", "ArcFace+dlib"} {
		b.Run(model, func(b *testing.B) {
			e := modelEngine(b, model, 1)
			ctx := context.Background()
			i := 0
			start := cpuTime(b)
			for b.Loop() {
				e.Analyze(ctx, photos[i%len(photos)], faceauth.Request{})
				i++
			}
			cpu := cpuTime(b) - start
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "embeddings/s")
			b.ReportMetric(float64(b.N)/cpu.Seconds(), "embeddings/cpu-s")
		})
	}
}
