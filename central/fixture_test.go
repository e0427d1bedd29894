package central

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/store/filestore"
	"github.com/xplore/faceauth/central/store/s3store"
	"github.com/xplore/faceauth/internal/fakeengine"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/internal/versitygw"
	"github.com/xplore/faceauth/models/face"
	pb "github.com/xplore/faceauth/proto"
)

var quiet = slog.New(slog.DiscardHandler)

// The logic tests (the store, revisions, erasure, publishing, lockouts,
// tokens, the HTTP API) run on the fake engine: pictures of made-up people
// (internal/fakeengine), no model files. The tests whose subject is face
// behaviour (real photos, fusion, benchmarks) use realEngine and realCrops,
// which skip, saying so, without the models (testenv.ModelsDir).
var fake = fakeengine.New(fakeengine.Config{})

// testEngine returns the fake engine.
func testEngine(testing.TB) *fakeengine.Engine { return fake }

var fakeCrops struct {
	once  sync.Once
	crops [][]byte
}

// faceCrops returns JPEG pictures of single faces of ten different people
// (fake "person0" ... "person9"; testEngine.Embedding has their embeddings).
func faceCrops(t testing.TB) [][]byte {
	t.Helper()
	fakeCrops.once.Do(func() {
		for i := range 10 {
			b, err := fakeengine.Person(fmt.Sprintf("person%d", i), 0).EncodeJPEG(92)
			if err != nil {
				panic(err)
			}
			fakeCrops.crops = append(fakeCrops.crops, b)
		}
	})
	return fakeCrops.crops
}

// The real engine and the real face crops are made once per test binary:
// loading the models and cutting faces out of the sample photos costs
// seconds.
var fixture struct {
	once  sync.Once
	eng   *face.Engine
	crops [][]byte // single-face JPEGs, each of a different person
	err   error
}

// realEngine returns the real face engine (ArcFace).
func realEngine(t testing.TB) *face.Engine {
	t.Helper()
	load(t)
	return fixture.eng
}

// realCrops returns JPEG crops of single faces of different people, cut
// from the pinned sample group photos.
func realCrops(t testing.TB) [][]byte {
	t.Helper()
	load(t)
	return fixture.crops
}

// realServer is newTestServer on the real engine.
func realServer(t testing.TB, change func(*ServerConfig)) *testServer {
	t.Helper()
	eng := realEngine(t)
	return newTestServer(t, func(c *ServerConfig) {
		c.Registry = NewRegistry(Config{Store: c.Registry.store, Engine: eng, Info: eng.Info(), Log: quiet})
		if change != nil {
			change(c)
		}
	})
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

// variant re-encodes a crop at another JPEG quality: the same face, other
// bytes, so another image id.
func variant(t testing.TB, crop []byte, quality int) []byte {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(crop))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// enrollableVariants returns n distinct images (other bytes, so other
// image ids) that each enroll on the fake engine: re-encodings of the
// crops at high qualities.
func enrollableVariants(t testing.TB, crops [][]byte, n int) [][]byte {
	t.Helper()
	eng := testEngine(t)
	var out [][]byte
	for q := 99; q >= 80 && len(out) < n; q-- {
		for _, c := range crops {
			v := variant(t, c, q)
			if _, err := eng.Analyze(context.Background(), v, faceauth.Request{Purpose: faceauth.PurposeEnroll}); err == nil {
				out = append(out, v)
			}
			if len(out) == n {
				break
			}
		}
	}
	if len(out) < n {
		t.Fatalf("only %d enrollable variants", len(out))
	}
	return out
}

// noFaceJPEG is a smooth gradient: a valid photo without a face.
func noFaceJPEG(t testing.TB) []byte {
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

// backends are the stores every registry test runs against.
var backends = []struct {
	name string
	open func(t testing.TB) faceauth.Store
}{
	{"filestore", func(t testing.TB) faceauth.Store {
		s, err := filestore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"s3store", func(t testing.TB) faceauth.Store {
		gw := versitygw.Start(t, versitygw.Options{Buckets: []string{"faceauth"}})
		s, err := s3store.New(t.Context(), s3store.Config{
			Bucket:          "faceauth",
			Region:          gw.Region,
			Endpoint:        gw.Endpoint,
			Prefix:          "central-test",
			AccessKeyID:     gw.AccessKey,
			SecretAccessKey: gw.SecretKey,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// recorder is a Publisher that keeps what it was given.
type recorder struct {
	mu      sync.Mutex
	changes []*pb.UserChange
}

func (r *recorder) Publish(c *pb.UserChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
}

func (r *recorder) all() []*pb.UserChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pb.UserChange(nil), r.changes...)
}

// faultyStore fails the writes that fail() selects: a fault the real
// stores cannot be made to produce on demand (a crash or outage half-way
// through a register).
type faultyStore struct {
	faceauth.Store
	mu   sync.Mutex
	fail func(op, key string) bool
}

var errInjected = errors.New("injected store failure")

func (f *faultyStore) check(op, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil && f.fail(op, key) {
		return fmt.Errorf("%s %s: %w", op, key, errInjected)
	}
	return nil
}

func (f *faultyStore) Put(ctx context.Context, key string, data []byte, c faceauth.Cond) (string, error) {
	if err := f.check("put", key); err != nil {
		return "", err
	}
	return f.Store.Put(ctx, key, data, c)
}

func (f *faultyStore) Delete(ctx context.Context, key string) error {
	if err := f.check("delete", key); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

func (f *faultyStore) setFail(fn func(op, key string) bool) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

// allKeys lists every key under prefix.
func allKeys(t testing.TB, s faceauth.Store, prefix string) []string {
	t.Helper()
	var out []string
	after := ""
	for {
		keys, err := s.List(context.Background(), prefix, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, keys...)
		if len(keys) < 1000 {
			return out
		}
		after = keys[len(keys)-1]
	}
}

// RemoveDebris passes through to a store that leaves temporary files.
func (f *faultyStore) RemoveDebris(ctx context.Context, prefix string, dryRun bool) ([]string, error) {
	if d, ok := f.Store.(DebrisRemover); ok {
		return d.RemoveDebris(ctx, prefix, dryRun)
	}
	return nil, nil
}
