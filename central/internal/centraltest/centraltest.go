// Package centraltest holds what the tests of central and its HTTP API
// share: the fake engine's pictures, the stores they run against, and a
// store that fails on demand. The tests of face behaviour on the real
// engine use models/face/realface.
package centraltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/store/filestore"
	"github.com/xplore/faceauth/central/store/s3store"
	"github.com/xplore/faceauth/internal/fakeengine"
	"github.com/xplore/faceauth/internal/versitygw"
	pb "github.com/xplore/faceauth/proto"
)

// The logic tests (the store, revisions, erasure, publishing, lockouts,
// tokens, the HTTP API) run on the fake engine: pictures of made-up people
// (internal/fakeengine), no model files. The tests whose subject is face
// behaviour (real photos, fusion, benchmarks) use realface.Engine and Crops,
// which skip, saying so, without the models (testenv.ModelsDir).
var fake = fakeengine.New(fakeengine.Config{})

// Engine returns the fake engine.
func Engine(testing.TB) *fakeengine.Engine { return fake }

var fakeCrops struct {
	once  sync.Once
	crops [][]byte
}

// FaceCrops returns JPEG pictures of single faces of ten different people
// (fake "person0" ... "person9"; Engine.Embedding has their embeddings).
func FaceCrops(t testing.TB) [][]byte {
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

// Variant re-encodes a crop at another JPEG quality: the same face, other
// bytes, so another image id.
func Variant(t testing.TB, crop []byte, quality int) []byte {
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

// EnrollableVariants returns n distinct images (other bytes, so other
// image ids) that each enroll on the fake engine: re-encodings of the
// crops at high qualities.
func EnrollableVariants(t testing.TB, crops [][]byte, n int) [][]byte {
	t.Helper()
	eng := Engine(t)
	var out [][]byte
	for q := 99; q >= 80 && len(out) < n; q-- {
		for _, c := range crops {
			v := Variant(t, c, q)
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

// Backend is a store the tests run against.
type Backend struct {
	Name string
	Open func(t testing.TB) faceauth.Store
}

// Backends are the stores every registry test runs against.
var Backends = []Backend{
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

// Recorder is a Publisher that keeps what it was given.
type Recorder struct {
	mu      sync.Mutex
	changes []*pb.UserChange
}

// Publish keeps c.
func (r *Recorder) Publish(c *pb.UserChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
}

// All returns what was published, in order.
func (r *Recorder) All() []*pb.UserChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pb.UserChange(nil), r.changes...)
}

// FaultyStore fails the writes that SetFail selects: a fault the real
// stores cannot be made to produce on demand (a crash or outage half-way
// through a register).
type FaultyStore struct {
	faceauth.Store
	mu   sync.Mutex
	fail func(op, key string) bool
}

// ErrInjected is the error of a write FaultyStore fails.
var ErrInjected = errors.New("injected store failure")

func (f *FaultyStore) check(op, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil && f.fail(op, key) {
		return fmt.Errorf("%s %s: %w", op, key, ErrInjected)
	}
	return nil
}

// Put fails when SetFail selects the write.
func (f *FaultyStore) Put(ctx context.Context, key string, data []byte, c faceauth.Cond) (string, error) {
	if err := f.check("put", key); err != nil {
		return "", err
	}
	return f.Store.Put(ctx, key, data, c)
}

// Delete fails when SetFail selects the delete.
func (f *FaultyStore) Delete(ctx context.Context, key string) error {
	if err := f.check("delete", key); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

// SetFail selects the writes that fail.
func (f *FaultyStore) SetFail(fn func(op, key string) bool) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

// AllKeys lists every key under prefix.
func AllKeys(t testing.TB, s faceauth.Store, prefix string) []string {
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
func (f *FaultyStore) RemoveDebris(ctx context.Context, prefix string, dryRun bool) ([]string, error) {
	type debrisRemover interface {
		RemoveDebris(ctx context.Context, prefix string, dryRun bool) ([]string, error)
	}
	if d, ok := f.Store.(debrisRemover); ok {
		return d.RemoveDebris(ctx, prefix, dryRun)
	}
	return nil, nil
}

// MemStore is a faceauth.Store in memory with the real stores' semantics
// (conditional writes, byte-order listing): a fake, because 100,000 users
// on the file store or versitygw take minutes to write on this machine,
// and only the count of reads is measured.
type MemStore struct {
	mu     sync.Mutex
	objs   map[string][]byte
	sorted []string // the keys in order; nil after a key came or went
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{objs: map[string][]byte{}} }

// Get implements faceauth.Store.
func (m *MemStore) Get(_ context.Context, key string) ([]byte, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.objs[key]
	if !ok {
		return nil, "", faceauth.ErrNotFound
	}
	return bytes.Clone(d), filestore.Version(d), nil
}

// Put implements faceauth.Store.
func (m *MemStore) Put(_ context.Context, key string, data []byte, c faceauth.Cond) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.objs[key]
	if c.IfNoneMatch && ok || c.IfMatch != "" && (!ok || filestore.Version(cur) != c.IfMatch) {
		return "", faceauth.ErrPrecondition
	}
	if !ok {
		m.sorted = nil
	}
	m.objs[key] = bytes.Clone(data)
	return filestore.Version(data), nil
}

// Delete implements faceauth.Store.
func (m *MemStore) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok {
		delete(m.objs, key)
		m.sorted = nil
	}
	return nil
}

// List implements faceauth.Store.
func (m *MemStore) List(_ context.Context, prefix, after string, limit int) ([]string, error) {
	m.mu.Lock()
	if m.sorted == nil {
		m.sorted = slices.Sorted(maps.Keys(m.objs))
	}
	keys := m.sorted
	m.mu.Unlock()
	var out []string
	i, _ := slices.BinarySearch(keys, max(prefix, after))
	for _, k := range keys[i:] {
		if !strings.HasPrefix(k, prefix) {
			break
		}
		if k > after {
			out = append(out, k)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// Ping implements faceauth.Store.
func (m *MemStore) Ping(context.Context) error { return nil }
