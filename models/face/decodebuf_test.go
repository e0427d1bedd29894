package face

import (
	"context"
	"math"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/testenv"
)

// A worker decodes each image into the pixels of the previous one
// (keepPixels): a photo must analyse exactly the same after a larger and
// after a smaller photo went through the same worker, and the buffer is
// kept between requests.
func TestDecodeBufferReuse(t *testing.T) {
	e, err := New(context.Background(), Config{ModelsDir: testenv.ModelsDir(t), Model: "ArcFace", Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r := decodeRaster(t, testenv.Sample(t, "sample1.jpg"))
	cut := float64(r.w) - float64(r.h)*4/3
	img := func(w, h int) []byte {
		return resizedJPEG(t, r, cut/2, 0, float64(r.w)-cut/2, float64(r.h), w, h)
	}
	probe := func(b []byte) []float32 {
		a, err := e.Analyze(context.Background(), b, faceauth.Request{Purpose: faceauth.PurposeProbe})
		if err != nil {
			t.Fatal(err)
		}
		return a.Embedding
	}
	frame := img(640, 480)
	first := probe(frame) // into a fresh buffer
	w := e.pool.all[0]
	if cap(w.pix) < 3*640*480 {
		t.Fatalf("the worker kept %d bytes of pixels, want at least a 640x480 frame", cap(w.pix))
	}
	for _, other := range [][]byte{img(1024, 768), img(320, 240)} {
		probe(other)
		again := probe(frame)
		for i := range first {
			if math.Float32bits(again[i]) != math.Float32bits(first[i]) {
				t.Fatalf("embedding value %d is %g after another photo, %g before", i, again[i], first[i])
			}
		}
	}
}
