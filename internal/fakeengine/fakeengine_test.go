package fakeengine

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"math"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/facetest"
	"github.com/xplore/faceauth/models/photo"
)

// reencode decodes a JPEG and encodes it again at quality q, as the tests
// of the services make "another photo of the same face".
func reencode(t *testing.T, data []byte, q int) []byte {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// codeOf is the code of the *faceauth.Error in err's chain, or "".
func codeOf(err error) string {
	var e *faceauth.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestAnalyze(t *testing.T) {
	eng := New(Config{})
	alice := JPEG(t, Person("alice", 0))
	half := faceauth.Box{X1: 0.05, Y1: 0.05, X2: 0.45, Y2: 0.45}
	otherHalf := faceauth.Box{X1: 0.55, Y1: 0.55, X2: 0.95, Y2: 0.95}
	small := faceauth.Box{X1: 0.85, Y1: 0.85, X2: 0.9, Y2: 0.9}
	tests := []struct {
		name     string
		img      []byte
		req      faceauth.Request
		code     string // "" for success; "any" for any code of kind
		kind     faceauth.Kind
		faces    int
		selected int
		id       string  // whose embedding, when embedded
		sim      float32 // its similarity to id's
		live     float32 // the liveness score, when checked
	}{
		{"probe", alice, faceauth.Request{}, "", 0, 1, 0, "alice", 1, 0},
		{"enroll", alice, faceauth.Request{Purpose: faceauth.PurposeEnroll}, "", 0, 1, 0, "alice", 1, 0},
		{"png", PNG(t, Person("alice", 3)), faceauth.Request{}, "", 0, 1, 0, "alice", 1, 0},
		{"re-encoded at 50", reencode(t, alice, 50), faceauth.Request{}, "", 0, 1, 0, "alice", 1, 0},
		{"re-encoded at 99", reencode(t, alice, 99), faceauth.Request{}, "", 0, 1, 0, "alice", 1, 0},
		{"jpeg quality 30", func() []byte {
			b, err := Person("alice", 1).EncodeJPEG(30)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}(), faceauth.Request{}, "", 0, 1, 0, "alice", 1, 0},
		{"large picture", JPEG(t, Picture{Faces: []Face{{ID: "alice"}}, Width: 1024, Height: 768}), faceauth.Request{}, "", 0, 1, 0, "alice", 1, 0},
		{"offset", JPEG(t, Picture{Faces: []Face{{ID: "alice", Offset: 0.3}}}), faceauth.Request{}, "", 0, 1, 0, "alice", 0.7, 0},
		{"live", alice, faceauth.Request{Liveness: true}, "", 0, 1, 0, "alice", 1, 0.99},
		{"spoof", JPEG(t, Picture{Faces: []Face{{ID: "eve", Liveness: 0.01}}}), faceauth.Request{Liveness: true}, "", 0, 1, 0, "eve", 1, 0.01},
		{"no grid", facetest.NoFaceJPEG(t), faceauth.Request{}, "no_face", faceauth.KindNoFace, 0, 0, "", 0, 0},
		{"no faces", JPEG(t, Picture{}), faceauth.Request{}, "no_face", faceauth.KindNoFace, 0, 0, "", 0, 0},
		{"two alike, enroll", JPEG(t, Picture{Faces: []Face{{ID: "a", Box: half}, {ID: "b", Box: otherHalf}}}),
			faceauth.Request{Purpose: faceauth.PurposeEnroll}, "several_faces", faceauth.KindNoFace, 0, 0, "", 0, 0},
		{"two alike, probe", JPEG(t, Picture{Faces: []Face{{ID: "a", Box: half}, {ID: "b", Box: otherHalf}}}),
			faceauth.Request{}, "", 0, 2, 0, "a", 1, 0},
		{"dominant and small, enroll", JPEG(t, Picture{Faces: []Face{{ID: "tiny", Box: small}, {ID: "main", Box: half}}}),
			faceauth.Request{Purpose: faceauth.PurposeEnroll}, "", 0, 2, 0, "main", 1, 0},
		{"detect", JPEG(t, Picture{Faces: []Face{{ID: "a", Box: half}, {ID: "b", Box: otherHalf}}}),
			faceauth.Request{Purpose: faceauth.PurposeDetect}, "", 0, 2, -1, "", 0, 0},
		{"too small", JPEG(t, Picture{Faces: []Face{{ID: "tiny", Box: small}}}), faceauth.Request{}, "face_too_small", faceauth.KindNoFace, 0, 0, "", 0, 0},
		{"low quality, enroll", JPEG(t, Picture{Faces: []Face{{ID: "blur", Quality: 0.1}}}),
			faceauth.Request{Purpose: faceauth.PurposeEnroll}, "face_low_quality", faceauth.KindNoFace, 0, 0, "", 0, 0},
		{"low quality, probe", JPEG(t, Picture{Faces: []Face{{ID: "blur", Quality: 0.1}}}), faceauth.Request{}, "", 0, 1, 0, "blur", 1, 0},
		{"empty", nil, faceauth.Request{}, "empty_image", faceauth.KindBadImage, 0, 0, "", 0, 0},
		{"not an image", []byte("hello, this is not a picture at all"), faceauth.Request{}, "unsupported_format", faceauth.KindBadImage, 0, 0, "", 0, 0},
		// "truncated_image" with libjpeg-turbo, "corrupt_image" without cgo.
		{"truncated", alice[:len(alice)/2], faceauth.Request{}, "any", faceauth.KindBadImage, 0, 0, "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := eng.Analyze(t.Context(), tt.img, tt.req)
			if tt.code != "" {
				if faceauth.KindOf(err) != tt.kind || tt.code != "any" && codeOf(err) != tt.code {
					t.Fatalf("got %v (kind %v, code %q), want kind %v code %q", err, faceauth.KindOf(err), codeOf(err), tt.kind, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Faces) != tt.faces || a.Selected != tt.selected {
				t.Fatalf("%d faces, selected %d; want %d, %d", len(a.Faces), a.Selected, tt.faces, tt.selected)
			}
			for _, f := range a.Faces {
				if f.Box.X2 <= f.Box.X1 || f.Box.X2 > float32(a.Width) || f.Box.Y2 > float32(a.Height) || f.Score <= 0 {
					t.Errorf("face %+v in a %dx%d image", f, a.Width, a.Height)
				}
			}
			if tt.id == "" {
				if a.Embedding != nil || a.Model != "" {
					t.Errorf("embedded %d values of %q, want nothing", len(a.Embedding), a.Model)
				}
				return
			}
			if a.Model != DefaultModel || len(a.Embedding) != DefaultDims {
				t.Fatalf("model %q with %d values, want %q with %d", a.Model, len(a.Embedding), DefaultModel, DefaultDims)
			}
			if got := faceauth.Similarity(a.Embedding, eng.Embedding(tt.id)); math.Abs(float64(got-tt.sim)) > 0.01 {
				t.Errorf("similarity to %s's embedding %.3f, want %.3f", tt.id, got, tt.sim)
			}
			var norm float64
			for _, v := range a.Embedding {
				norm += float64(v) * float64(v)
			}
			if math.Abs(norm-1) > 1e-4 {
				t.Errorf("embedding norm² %g, want 1", norm)
			}
			if a.LivenessChecked != tt.req.Liveness || tt.req.Liveness && math.Abs(float64(a.Liveness-tt.live)) > 0.01 {
				t.Errorf("liveness %g checked %v, want %g checked %v", a.Liveness, a.LivenessChecked, tt.live, tt.req.Liveness)
			}
		})
	}
}

// TestIdentities: different identities do not match, nor does the same
// identity under another model; the same identity in other pictures does.
func TestIdentities(t *testing.T) {
	eng := New(Config{})
	other := New(Config{Model: "fake@2", Dims: DefaultDims})
	ids := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"}
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			if s := faceauth.Similarity(eng.Embedding(a), eng.Embedding(b)); s >= eng.Info().Threshold {
				t.Errorf("%s and %s match (%.3f)", a, b, s)
			}
		}
		if s := faceauth.Similarity(eng.Embedding(a), other.Embedding(a)); s >= eng.Info().Threshold {
			t.Errorf("%s under two models matches (%.3f)", a, s)
		}
		p1, p2 := JPEG(t, Person(a, 1)), JPEG(t, Person(a, 2))
		if bytes.Equal(p1, p2) {
			t.Fatalf("two variants of %s have the same bytes", a)
		}
		a1, err := eng.Analyze(t.Context(), p1, faceauth.Request{})
		if err != nil {
			t.Fatal(err)
		}
		a2, err := eng.Analyze(t.Context(), p2, faceauth.Request{})
		if err != nil {
			t.Fatal(err)
		}
		if s := faceauth.Similarity(a1.Embedding, a2.Embedding); s < 0.999 {
			t.Errorf("two pictures of %s: similarity %.3f", a, s)
		}
	}
}

func TestInfoAndLimits(t *testing.T) {
	if got, want := New(Config{}).Info(), (faceauth.EngineInfo{Model: DefaultModel, Dims: DefaultDims, Threshold: DefaultThreshold,
		LivenessModel: DefaultLivenessModel, LivenessThreshold: DefaultLivenessThreshold}); got != want {
		t.Errorf("Info %+v, want %+v", got, want)
	}
	eng := New(Config{Model: "fake@small", Dims: 16, Photo: photo.Options{MaxPixels: 100 * 100}})
	if _, err := eng.Analyze(t.Context(), JPEG(t, Person("alice", 0)), faceauth.Request{}); codeOf(err) != "image_too_large" {
		t.Errorf("a 256x256 picture over a 100x100 limit: %v, want image_too_large", err)
	}
	a, err := eng.Analyze(t.Context(), JPEG(t, Picture{Faces: []Face{{ID: "alice"}}, Width: 64, Height: 96}), faceauth.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Model != "fake@small" || len(a.Embedding) != 16 || a.Width != 64 || a.Height != 96 {
		t.Errorf("model %q, %d values, %dx%d", a.Model, len(a.Embedding), a.Width, a.Height)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := eng.Analyze(ctx, JPEG(t, Person("alice", 0)), faceauth.Request{}); err != context.Canceled {
		t.Errorf("ended context: %v", err)
	}
	if eng.Calls() != 3 {
		t.Errorf("Calls %d, want 3", eng.Calls())
	}
}

func TestPictureErrors(t *testing.T) {
	long := string(make([]byte, maxIDBytes+1))
	tests := []struct {
		name string
		p    Picture
	}{
		{"width not a multiple of 32", Picture{Width: 100}},
		{"id too long", Picture{Faces: []Face{{ID: long}}}},
		{"empty box", Picture{Faces: []Face{{ID: "a", Box: faceauth.Box{X1: 0.5, Y1: 0.5, X2: 0.5, Y2: 0.6}}}}},
		{"quality over 1", Picture{Faces: []Face{{ID: "a", Quality: 2}}}},
		{"does not fit", Picture{Faces: []Face{{ID: long[1:]}, {ID: long[1:]}}, Width: 256, Height: 64}},
	}
	for _, tt := range tests {
		if _, err := tt.p.EncodeJPEG(90); err == nil {
			t.Errorf("%s: encoded", tt.name)
		}
	}
}

// TestPicturesShareNoBytes: past the JPEG headers (tables every picture
// shares), two people's pictures have no run of bytes in common, so a test
// that greps a store for one's photo does not find it in the other's.
func TestPicturesShareNoBytes(t *testing.T) {
	a, b := JPEG(t, Person("person0", 0)), JPEG(t, Person("person1", 0))
	for _, at := range []int{len(a) / 2, 2 * len(a) / 3, 3 * len(a) / 4} {
		if bytes.Contains(b, a[at:at+64]) {
			t.Errorf("person1's picture holds the 64 bytes of person0's at %d", at)
		}
	}
}

// BenchmarkAnalyze is the fake's cost for one 256x256 JPEG probe.
func BenchmarkAnalyze(b *testing.B) {
	eng := New(Config{})
	img, err := Person("alice", 0).EncodeJPEG(90)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := eng.Analyze(b.Context(), img, faceauth.Request{}); err != nil {
			b.Fatal(err)
		}
	}
}
