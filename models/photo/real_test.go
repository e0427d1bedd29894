package photo

import (
	"encoding/csv"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xplore/faceauth"
)

// facesDir locates the shared labelled photos at ../shared/faces relative
// to the repository root (the directory holding go.mod), or skips.
func facesDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the package directory; cannot locate ../shared/faces")
		}
		dir = parent
	}
	faces := filepath.Join(dir, "..", "shared", "faces")
	if _, err := os.Stat(filepath.Join(faces, "robustness", "manifest.csv")); err != nil {
		t.Skipf("real photos not available (%s missing); these tests need the shared face set next to the repository", faces)
	}
	return faces
}

func readManifest(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, k := range recs[0] {
			if i < len(r) {
				m[k] = r[i]
			}
		}
		rows = append(rows, m)
	}
	return rows
}

// checkOutcome: an image either decodes or fails with a BadImage/TooLarge
// *faceauth.Error; anything else (another error type, a recovered panic)
// fails the test.
func checkOutcome(t *testing.T, im *Image, err error) {
	t.Helper()
	if err == nil {
		if im.W <= 0 || im.H <= 0 || len(im.Pix) != 3*im.W*im.H {
			t.Errorf("bad image %dx%d with %d bytes", im.W, im.H, len(im.Pix))
		}
		return
	}
	var fe *faceauth.Error
	if !errors.As(err, &fe) || (fe.Kind != faceauth.KindBadImage && fe.Kind != faceauth.KindTooLarge) {
		t.Errorf("error %v (%T) is not a BadImage/TooLarge *faceauth.Error", err, err)
	}
	var pe *panicError
	if errors.As(err, &pe) {
		t.Errorf("decoder panicked: %v", err)
	}
}

// extFormat is the format a file name claims.
func extFormat(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg":
		return FormatJPEG
	case ".png":
		return FormatPNG
	case ".webp":
		return FormatWebP
	}
	return ""
}

// TestRealPhotos decodes every file of the robustness set: broken files
// must fail with the right kind, all others decode; misnamed files are
// recognised by content; EXIF-rotated ones come out upright.
func TestRealPhotos(t *testing.T) {
	root := filepath.Join(facesDir(t), "robustness")
	rows := readManifest(t, filepath.Join(root, "manifest.csv"))
	rows = append(rows, readManifest(t, filepath.Join(root, "derived_manifest.csv"))...)
	for _, row := range rows {
		file, cat := row["file"], row["category"]
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(root, file))
			if err != nil {
				t.Fatal(err)
			}
			im, err := Decode(data, Options{})
			checkOutcome(t, im, err)
			switch {
			case cat == "broken":
				if err == nil {
					t.Fatalf("broken file decoded to %dx%d", im.W, im.H)
				}
				return
			case err != nil:
				t.Fatalf("%s file: %v", cat, err)
			}
			if cat == "misnamed_format" && im.Format == extFormat(file) {
				t.Errorf("format %q is what the name says, not what the content is", im.Format)
			}
			if max(im.W, im.H) > 2*DefaultTargetSide {
				t.Errorf("decoded %dx%d, larger than the reduced decode should give", im.W, im.H)
			}
			notes := row["notes"]
			// "EXIF Orientation=6; stored pixels are 640x480 landscape".
			if i := strings.Index(notes, "EXIF Orientation="); i >= 0 {
				want := int(notes[i+len("EXIF Orientation=")] - '0')
				if im.Orientation != want {
					t.Errorf("orientation %d, want %d", im.Orientation, want)
				}
			}
			if strings.Contains(notes, "stored pixels are 640x480 landscape") && !(im.OrigW == 480 && im.OrigH == 640 && im.H > im.W) {
				t.Errorf("got %dx%d (orig %dx%d), want upright portrait 480x640", im.W, im.H, im.OrigW, im.OrigH)
			}
			// recurser/exif-orientation-examples: Landscape_N is landscape
			// once upright, Portrait_N portrait.
			if strings.Contains(file, "exifexamples_Landscape") && im.W <= im.H {
				t.Errorf("Landscape example decoded %dx%d", im.W, im.H)
			}
			if strings.Contains(file, "exifexamples_Portrait") && im.W >= im.H {
				t.Errorf("Portrait example decoded %dx%d", im.W, im.H)
			}
		})
	}
}

// TestRealDerivedOrientation compares each lossless EXIF-orientation
// variant in robustness/derived with the single-channel PNG made from the
// same upright original: decoded at full size, the luma must match it,
// and match it far better than the un-rotated pixels would.
func TestRealDerivedOrientation(t *testing.T) {
	dir := filepath.Join(facesDir(t), "robustness", "derived")
	variants, _ := filepath.Glob(filepath.Join(dir, "*_exif[2-8].jpg"))
	if len(variants) == 0 {
		t.Skip("no *_exifN.jpg in " + dir)
	}
	for _, v := range variants {
		t.Run(filepath.Base(v), func(t *testing.T) {
			base := v[:strings.LastIndex(v, "_exif")]
			ref := decodeFile(t, base+"_gray.png")
			data, err := os.ReadFile(v)
			if err != nil {
				t.Fatal(err)
			}
			im, err := Decode(data, Options{TargetSide: -1})
			if err != nil {
				t.Fatal(err)
			}
			// jpegtran drops the partial MCU row or column its transform
			// cannot move: the upright result is the original minus up to
			// 15 pixels at the right or bottom.
			if im.W != im.OrigW || im.H != im.OrigH || im.W > ref.W || im.W < ref.W-15 || im.H > ref.H || im.H < ref.H-15 {
				t.Fatalf("decoded %dx%d (orig %dx%d), upright original is %dx%d", im.W, im.H, im.OrigW, im.OrigH, ref.W, ref.H)
			}
			got := lumaDiff(im, ref, false)
			wrong := lumaDiff(im, ref, true)
			t.Logf("orientation %d: luma diff %.2f upright, %.2f turned 180", im.Orientation, got, wrong)
			if got > 6 || wrong < 3*got+10 {
				t.Errorf("luma diff %.2f to the upright original (%.2f turned 180): not upright", got, wrong)
			}
		})
	}
}

func decodeFile(t *testing.T, path string) *Image {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := Decode(data, Options{TargetSide: -1})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// lumaDiff is the mean absolute difference between a's luma and b's grey
// (its red channel), over the central area of a, which is the top-left
// part of b; with turn, a is compared rotated by 180.
func lumaDiff(a, b *Image, turn bool) float64 {
	var sum, n float64
	for y := a.H / 8; y < a.H*7/8; y++ {
		for x := a.W / 8; x < a.W*7/8; x++ {
			ax, ay := x, y
			if turn {
				ax, ay = a.W-1-x, a.H-1-y
			}
			r, g, bl := a.At(ax, ay)
			l := (19595*float64(r) + 38470*float64(g) + 7471*float64(bl)) / 65536
			gr, _, _ := b.At(x, y)
			d := l - float64(gr)
			if d < 0 {
				d = -d
			}
			sum += d
			n++
		}
	}
	return sum / n
}

// TestAllSharedPhotos runs every image file under ../shared/faces through
// Decode: none may panic or fail with anything but a typed image error.
func TestAllSharedPhotos(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: decodes the whole shared face set")
	}
	root := facesDir(t)
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".csv", ".md", ".txt":
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		im, err := Decode(data, Options{})
		rel, _ := filepath.Rel(root, path)
		t.Run(rel, func(t *testing.T) { checkOutcome(t, im, err) })
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("decoded %d files", n)
}
