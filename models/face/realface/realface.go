// Package realface gives tests the real face engine and real face crops,
// each made once per test binary; they skip, saying so, without the
// models (testenv.ModelsDir).
package realface

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models/face"
)

var quiet = slog.New(slog.DiscardHandler)

// The real engine and the real face crops are made once per test binary:
// loading the models and cutting faces out of the sample photos costs
// seconds.
var fixture struct {
	once  sync.Once
	eng   *face.Engine
	crops [][]byte // single-face JPEGs, each of a different person
	err   error
}

// Engine returns the real face engine (ArcFace).
func Engine(t testing.TB) *face.Engine {
	t.Helper()
	load(t)
	return fixture.eng
}

// Crops returns JPEG crops of single faces of different people, cut
// from the pinned sample group photos.
func Crops(t testing.TB) [][]byte {
	t.Helper()
	load(t)
	return fixture.crops
}

func load(t testing.TB) {
	t.Helper()
	dir := testenv.ModelsDir(t)
	var samples []string
	for i := 1; i <= 6; i++ {
		samples = append(samples, testenv.Sample(t, fmt.Sprintf("sample%d.jpg", i)))
	}
	fixture.once.Do(func() {
		ctx := context.Background()
		// ArcFace alone, not the default fusion: the registry does not care
		// which model embeds, and TestSwitchToFusedModel moves from this one
		// to the fusion.
		fixture.eng, fixture.err = face.New(ctx, face.Config{ModelsDir: dir, Model: "ArcFace", Workers: 2, Log: quiet})
		if fixture.err != nil {
			return
		}
		for _, s := range samples {
			crops, err := cropFaces(ctx, fixture.eng, s)
			if err != nil {
				fixture.err = err
				return
			}
			fixture.crops = append(fixture.crops, crops...)
		}
		if len(fixture.crops) < 8 {
			fixture.err = fmt.Errorf("only %d single-face crops from the sample photos", len(fixture.crops))
		}
	})
	if fixture.err != nil {
		t.Fatal(fixture.err)
	}
}

// cropFaces cuts every face of a group photo that has room around it (no
// other face within the margin) and keeps the crops in which the engine
// enrolls exactly one face.
func cropFaces(ctx context.Context, eng *face.Engine, path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	a, err := eng.Analyze(ctx, data, faceauth.Request{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	sx, sy := 1.0, 1.0
	if a.Width > 0 && a.Height > 0 {
		sx, sy = float64(b.Dx())/float64(a.Width), float64(b.Dy())/float64(a.Height)
	}
	rects := make([]image.Rectangle, len(a.Faces))
	for i, f := range a.Faces {
		rects[i] = image.Rect(int(float64(f.Box.X1)*sx), int(float64(f.Box.Y1)*sy), int(float64(f.Box.X2)*sx), int(float64(f.Box.Y2)*sy))
	}
	var out [][]byte
	for i, r := range rects {
		m := r.Dx() * 6 / 10
		c := image.Rect(r.Min.X-m, r.Min.Y-m, r.Max.X+m, r.Max.Y+m).Intersect(b)
		clear := r.Dx() >= 48
		for j, o := range rects {
			if j != i && o.Overlaps(c) {
				clear = false
			}
		}
		if !clear {
			continue
		}
		crop := image.NewRGBA(image.Rect(0, 0, c.Dx(), c.Dy()))
		draw.Draw(crop, crop.Bounds(), img, c.Min, draw.Src)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, crop, &jpeg.Options{Quality: 92}); err != nil {
			return nil, err
		}
		if _, err := eng.Analyze(ctx, buf.Bytes(), faceauth.Request{Purpose: faceauth.PurposeEnroll}); err != nil {
			continue
		}
		out = append(out, buf.Bytes())
	}
	return out, nil
}
