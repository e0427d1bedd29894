// Command facecrop cuts single-face photos out of group photos, for the
// end-to-end test (scripts/e2e.sh): the pinned sample photos show several
// people each, and register needs one face per photo.
//
//	go run ./scripts/facecrop -models-dir models/cache -out DIR -n 2 PHOTO...
//
// For each of the first n faces that have room around them it writes
// personK.jpg (a tight crop) and personK-wide.jpg (a wider crop of the same
// face: other bytes and framing, for verifying against the first), and
// checks with the real face engine that each crop enrolls as one face.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models"
	"github.com/xplore/faceauth/models/face"
)

func main() {
	def := models.DefaultDir
	if d := os.Getenv("MODELS_DIR"); d != "" {
		def = d
	}
	dir := flag.String("models-dir", def, "folder holding the fetched model files (default $MODELS_DIR or models/cache)")
	out := flag.String("out", ".", "folder to write the crops to")
	n := flag.Int("n", 2, "how many people to cut out")
	flag.Parse()
	if err := run(context.Background(), *dir, *out, *n, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "facecrop:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, out string, n int, photos []string) error {
	if len(photos) == 0 {
		return fmt.Errorf("no photos given")
	}
	eng, err := face.New(ctx, face.Config{ModelsDir: dir, Workers: 1, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer eng.Close()
	k := 0
	for _, p := range photos {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		crops, err := cut(ctx, eng, data)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, c := range crops {
			if k == n {
				return nil
			}
			k++
			for _, f := range []struct {
				suffix string
				data   []byte
			}{{"", c.tight}, {"-wide", c.wide}} {
				name := filepath.Join(out, fmt.Sprintf("person%d%s.jpg", k, f.suffix))
				if err := os.WriteFile(name, f.data, 0o644); err != nil {
					return err
				}
				fmt.Println(name)
			}
		}
	}
	return fmt.Errorf("only %d of %d people have a clear face in the photos", k, n)
}

type crop struct{ tight, wide []byte }

// cut returns the faces of a group photo that have no other face within
// a wide margin, each as a tight and a wide crop that both enroll.
func cut(ctx context.Context, eng *face.Engine, data []byte) ([]crop, error) {
	found, err := eng.Analyze(ctx, data, faceauth.Request{Purpose: faceauth.PurposeDetect})
	if err != nil {
		return nil, err
	}
	faces, w, h := found.Faces, found.Width, found.Height
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	// Detect reports boxes in the upright full-size photo; the sample
	// photos carry no EXIF rotation, so only a scale can differ.
	sx, sy := float64(b.Dx())/float64(w), float64(b.Dy())/float64(h)
	rects := make([]image.Rectangle, len(faces))
	for i, f := range faces {
		rects[i] = image.Rect(int(float64(f.Box.X1)*sx), int(float64(f.Box.Y1)*sy), int(float64(f.Box.X2)*sx), int(float64(f.Box.Y2)*sy))
	}
	var out []crop
	for i, r := range rects {
		if r.Dx() < 64 {
			continue
		}
		wide := grow(r, 10).Intersect(b)
		clear := true
		for j, o := range rects {
			if j != i && o.Overlaps(wide) {
				clear = false
			}
		}
		if !clear {
			continue
		}
		var c crop
		if c.tight, err = encode(img, grow(r, 6).Intersect(b), 92); err != nil {
			return nil, err
		}
		if c.wide, err = encode(img, wide, 85); err != nil {
			return nil, err
		}
		if !enrolls(ctx, eng, c.tight) || !enrolls(ctx, eng, c.wide) {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// grow widens r on every side by tenths of its width.
func grow(r image.Rectangle, tenths int) image.Rectangle {
	m := r.Dx() * tenths / 10
	return image.Rect(r.Min.X-m, r.Min.Y-m, r.Max.X+m, r.Max.Y+m)
}

func encode(img image.Image, r image.Rectangle, quality int) ([]byte, error) {
	dst := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(dst, dst.Bounds(), img, r.Min, draw.Src)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: quality}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func enrolls(ctx context.Context, eng *face.Engine, img []byte) bool {
	a, err := eng.Analyze(ctx, img, faceauth.Request{Purpose: faceauth.PurposeEnroll})
	return err == nil && len(a.Faces) == 1
}
