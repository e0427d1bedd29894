// Package facetest makes test photos: camera-like frames from the pinned sample
// photos and a photo without a face, for the tests of the packages that
// serve verification.
package facetest

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"testing"

	"golang.org/x/image/draw"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/testenv"
)

// Frame returns a w x h JPEG cut around the dominant face of the pinned
// sample photo name (testenv.Sample), the face spanning 1/widths of the
// frame's width: the size and framing of a camera at a door.
func Frame(t testing.TB, eng faceauth.Engine, name string, w, h int, widths float32) []byte {
	t.Helper()
	data, err := os.ReadFile(testenv.Sample(t, name))
	if err != nil {
		t.Fatal(err)
	}
	a, err := eng.Analyze(context.Background(), data, faceauth.Request{Purpose: faceauth.PurposeDetect})
	if err != nil || len(a.Faces) == 0 {
		t.Fatalf("no face in %s: %v", name, err)
	}
	src, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b := a.Faces[0].Box
	cx, cy := (b.X1+b.X2)/2, (b.Y1+b.Y2)/2
	fw := (b.X2 - b.X1) * widths
	fh := fw * float32(h) / float32(w)
	r := image.Rect(int(cx-fw/2), int(cy-fh/2), int(cx+fw/2), int(cy+fh/2)).Intersect(src.Bounds())
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, r, draw.Src, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// NoFaceJPEG returns a smooth 320x240 colour gradient as a JPEG: a valid
// photo without a face, for the paths that must refuse one (the real engine
// and the fake both find nothing in it).
func NoFaceJPEG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for y := range 240 {
		for x := range 320 {
			img.Set(x, y, color.RGBA{uint8(x * 255 / 320), uint8(y * 255 / 240), 128, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
