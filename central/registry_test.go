package central

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/internal/facetest"
	"github.com/xplore/faceauth/internal/fakeengine"
	pb "github.com/xplore/faceauth/proto"
)

// TestRegistry runs the registry suite against every store backend.
func TestRegistry(t *testing.T) {
	suite := []struct {
		name string
		fn   func(t *testing.T, s faceauth.Store)
	}{
		{"RegisterAndRead", testRegisterAndRead},
		{"RefusedImageWritesNothing", testRefusedImageWritesNothing},
		{"Delete", testDelete},
		{"RemoveImage", testRemoveImage},
		{"ConcurrentRegisters", testConcurrentRegisters},
		{"ConcurrentAdditions", testConcurrentAdditions},
		{"Snapshot", testSnapshot},
		{"Reembed", testReembed},
		{"Search", testSearch},
		{"SearchSeesOtherReplica", testSearchSeesOtherReplica},
	}
	for _, b := range centraltest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			for _, tc := range suite {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, b.Open(t)) })
			}
		})
	}
}

var quiet = slog.New(slog.DiscardHandler)

func newTestRegistry(t testing.TB, s faceauth.Store, pub Publisher) *Registry {
	return NewRegistry(Config{Store: s, Engine: centraltest.Engine(t), Info: centraltest.Engine(t).Info(), Publisher: pub, Log: quiet})
}

func testRegisterAndRead(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	pub := &centraltest.Recorder{}
	r := newTestRegistry(t, s, pub)

	res, err := r.Register(ctx, "alice", "Alice A.", []Image{{Data: crops[0]}, {Data: crops[1]}, {Data: crops[0]}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || !res.Changed || len(res.Record.References) != 2 || res.Record.Name != "Alice A." {
		t.Fatalf("register: %+v (a repeated image must count once)", res)
	}
	rev1 := res.Record.Revision
	got, err := r.Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range got.References {
		if ref.Embedding.GetModel() != r.Model() || len(ref.Embedding.Vector) == 0 || len(ref.ImageId) != 64 || ref.ContentType != "image/jpeg" {
			t.Errorf("reference %v", ref)
		}
		if _, _, err := s.Get(ctx, imageKey("alice", ref.ImageId, "jpg")); err != nil {
			t.Errorf("image object: %v", err)
		}
	}

	// The same image again changes nothing; a new one adds a revision.
	res, err = r.Register(ctx, "alice", "", []Image{{Data: crops[1]}})
	if err != nil || res.Changed || res.Created || res.Record.Revision != rev1 {
		t.Fatalf("re-adding an image: %+v %v", res, err)
	}
	res, err = r.AddImages(ctx, "alice", []Image{{Data: crops[2]}})
	if err != nil || !res.Changed || res.Record.Revision <= rev1 || len(res.Record.References) != 3 || res.Record.Name != "Alice A." {
		t.Fatalf("adding an image: %+v %v", res, err)
	}
	if _, err := r.AddImages(ctx, "nobody", []Image{{Data: crops[2]}}); faceauth.KindOf(err) != faceauth.KindNotFound {
		t.Fatalf("adding to an unknown user: %v", err)
	}
	if rev, err := r.Revision(ctx); err != nil || rev < res.Record.Revision {
		t.Fatalf("Revision = %d, %v; want >= %d", rev, err, res.Record.Revision)
	}

	// Each stored change was published, with its revision.
	changes := pub.All()
	if len(changes) != 2 || changes[1].GetUpsert().GetRevision() != res.Record.Revision || len(changes[1].GetUpsert().GetEmbeddings()) != 3 {
		t.Fatalf("published %v", changes)
	}

	for _, bad := range []struct{ id, code string }{{"", "invalid_user_id"}, {"../x", "invalid_user_id"}, {".hidden", "invalid_user_id"}} {
		if _, err := r.Register(ctx, bad.id, "", []Image{{Data: crops[0]}}); !hasCode(err, bad.code) {
			t.Errorf("Register(%q): %v", bad.id, err)
		}
	}
	if _, err := r.Register(ctx, "bob", "", nil); !hasCode(err, "missing_image") {
		t.Errorf("no image: %v", err)
	}
	if _, err := r.Register(ctx, "bob", "bad\x00name", []Image{{Data: crops[0]}}); !hasCode(err, "invalid_name") {
		t.Errorf("control character in name: %v", err)
	}

	// List pages through every user in key order.
	for _, id := range []string{"bob", "carol", "dave", "alice-b"} {
		if _, err := r.Register(ctx, id, "", []Image{{Data: crops[3]}}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	after := ""
	for {
		users, next, err := r.List(ctx, "", "", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			ids = append(ids, u.UserID)
		}
		if next == "" {
			break
		}
		after = next
	}
	if want := []string{"alice-b", "alice", "bob", "carol", "dave"}; !slices.Equal(ids, want) {
		t.Fatalf("listed %v, want %v", ids, want)
	}
}

func hasCode(err error, code string) bool {
	var fe *faceauth.Error
	return errors.As(err, &fe) && fe.Code == code
}

func testRefusedImageWritesNothing(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	r := newTestRegistry(t, s, nil)
	_, err := r.Register(ctx, "alice", "", []Image{{Data: crops[0], Label: "image 1"}, {Data: facetest.NoFaceJPEG(t), Label: `image 2 ("wall.jpg")`}})
	var fe *faceauth.Error
	if !errors.As(err, &fe) || fe.Kind != faceauth.KindNoFace || !strings.HasPrefix(fe.Msg, `Image 2 ("wall.jpg"): `) {
		t.Fatalf("err = %v, want a no-face error naming image 2", err)
	}
	_, err = r.Register(ctx, "alice", "", []Image{{Data: []byte("not an image at all"), Label: "image 1"}})
	if faceauth.KindOf(err) != faceauth.KindBadImage {
		t.Fatalf("garbage: %v", err)
	}
	if keys := centraltest.AllKeys(t, s, ""); len(keys) != 0 {
		t.Fatalf("a refused register wrote %v", keys)
	}
}

func testDelete(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	pub := &centraltest.Recorder{}
	r := newTestRegistry(t, s, pub)
	if _, err := r.Register(ctx, "alice", "", []Image{{Data: crops[0]}, {Data: crops[1]}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, "bob", "", []Image{{Data: crops[2]}}); err != nil {
		t.Fatal(err)
	}
	res, err := r.Delete(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "alice"); faceauth.KindOf(err) != faceauth.KindNotFound {
		t.Fatalf("Get after delete: %v", err)
	}
	if keys := append(centraltest.AllKeys(t, s, "images/alice/"), centraltest.AllKeys(t, s, "records/alice")...); len(keys) != 0 {
		t.Fatalf("objects of the deleted user remain: %v", keys)
	}
	if keys := centraltest.AllKeys(t, s, "deletions/"); !slices.Equal(keys, []string{deletionKey(res.Revision)}) {
		t.Fatalf("deletion records %v", keys)
	}
	if _, err := r.Get(ctx, "bob"); err != nil {
		t.Fatalf("another user was harmed: %v", err)
	}
	if _, err := r.Delete(ctx, "alice"); faceauth.KindOf(err) != faceauth.KindNotFound {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := r.Embeddings(ctx, "alice", r.Model()); faceauth.KindOf(err) != faceauth.KindNotFound {
		t.Fatalf("embeddings of a deleted user: %v", err)
	}
	last := pub.All()[len(pub.All())-1]
	if last.GetDelete().GetUserId() != "alice" || last.GetDelete().GetRevision() != res.Revision {
		t.Fatalf("published %v", last)
	}
	// The id can be registered again.
	if res, err := r.Register(ctx, "alice", "", []Image{{Data: crops[3]}}); err != nil || !res.Created {
		t.Fatalf("register after delete: %+v %v", res, err)
	}
}

func testRemoveImage(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	r := newTestRegistry(t, s, nil)
	res, err := r.Register(ctx, "alice", "", []Image{{Data: crops[0]}, {Data: crops[1]}})
	if err != nil {
		t.Fatal(err)
	}
	first := res.Record.References[0].ImageId
	res, err = r.RemoveImage(ctx, "alice", first)
	if err != nil || len(res.Record.References) != 1 {
		t.Fatalf("remove: %+v %v", res, err)
	}
	if _, _, err := s.Get(ctx, imageKey("alice", first, "jpg")); !errors.Is(err, faceauth.ErrNotFound) {
		t.Fatalf("removed image object: %v", err)
	}
	tests := []struct {
		id, image, code string
	}{
		{"alice", res.Record.References[0].ImageId, "last_reference"},
		{"alice", first, "image_not_found"},
		{"alice", "nothex", "invalid_image_id"},
		{"alice", strings.Repeat("A", 64), "invalid_image_id"},
		{"nobody", first, "user_not_found"},
	}
	for _, tt := range tests {
		if _, err := r.RemoveImage(ctx, tt.id, tt.image); !hasCode(err, tt.code) {
			t.Errorf("RemoveImage(%s, %s) = %v, want %s", tt.id, tt.image, err, tt.code)
		}
	}
}

// testConcurrentRegisters: 50 registers of distinct users at once, through
// two registries (two central replicas) sharing the store, lose nothing
// and get distinct revisions.
func testConcurrentRegisters(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	rs := []*Registry{newTestRegistry(t, s, nil), newTestRegistry(t, s, nil)}
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = rs[i%2].Register(ctx, fmt.Sprintf("user%02d", i), "", []Image{{Data: crops[i%len(crops)]}})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	users, _, err := rs[0].List(ctx, "", "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	revs := map[uint64]bool{}
	for _, u := range users {
		revs[u.Revision] = true
	}
	if len(users) != n || len(revs) != n {
		t.Fatalf("%d users with %d distinct revisions, want %d", len(users), len(revs), n)
	}
	if rev, _ := rs[1].Revision(ctx); rev != n {
		t.Fatalf("revision %d after %d changes", rev, n)
	}
}

// testConcurrentAdditions: 50 images added to one user at once, through
// two registries, all end up in the record.
func testConcurrentAdditions(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	rs := []*Registry{newTestRegistry(t, s, nil), newTestRegistry(t, s, nil)}
	if _, err := rs[0].Register(ctx, "alice", "", []Image{{Data: crops[0]}}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	imgs := centraltest.EnrollableVariants(t, crops, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = rs[i%2].AddImages(ctx, "alice", []Image{{Data: imgs[i]}})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	rec, err := rs[1].Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.References) != n+1 {
		t.Fatalf("%d references, want %d: concurrent additions were lost", len(rec.References), n+1)
	}
	if keys := centraltest.AllKeys(t, s, "images/alice/"); len(keys) != n+1 {
		t.Fatalf("%d image objects, want %d", len(keys), n+1)
	}
}

func testSnapshot(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	r := newTestRegistry(t, s, nil)
	for i, id := range []string{"a", "b", "c"} {
		if _, err := r.Register(ctx, id, "", []Image{{Data: crops[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddImages(ctx, "a", []Image{{Data: crops[4]}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	var last uint64
	revs := map[string]uint64{}
	err := r.Snapshot(ctx, nil, func(c *pb.UserChange) error {
		var rev uint64
		switch {
		case c.GetUpsert() != nil:
			rev = c.GetUpsert().Revision
			got = append(got, fmt.Sprintf("upsert %s %d", c.GetUpsert().UserId, len(c.GetUpsert().Embeddings)))
		case c.GetDelete() != nil:
			rev = c.GetDelete().Revision
			got = append(got, "delete "+c.GetDelete().UserId)
		}
		revs[got[len(got)-1]] = rev
		if rev <= last {
			t.Errorf("revision %d after %d: not ascending", rev, last)
		}
		last = rev
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"upsert c 1", "delete b", "upsert a 2"}; !slices.Equal(got, want) {
		t.Fatalf("snapshot %v, want %v", got, want)
	}
	stop := errors.New("stop")
	if err := r.Snapshot(ctx, nil, func(*pb.UserChange) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error not returned: %v", err)
	}

	// Changes the caller holds already are left out and not read again.
	// The first such snapshot builds the revision index; the second reads
	// only b's record (its change object stays until changeGrace, as a
	// missing record may be one not yet written) and a's, the one change
	// the caller lacks; b's deletion record never.
	for run := range 2 {
		cs := &countingStore{Store: s, gets: map[string]int{}}
		rc := newTestRegistry(t, cs, nil)
		held := func(rev uint64) bool { return rev == revs["upsert c 1"] || rev == revs["delete b"] }
		got = nil
		if err := rc.Snapshot(ctx, held, func(c *pb.UserChange) error {
			got = append(got, fmt.Sprintf("upsert %s %d", c.GetUpsert().GetUserId(), len(c.GetUpsert().GetEmbeddings())))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if want := []string{"upsert a 2"}; !slices.Equal(got, want) {
			t.Fatalf("snapshot with held changes %v, want %v", got, want)
		}
		if r, d := cs.count("records/"), cs.count("deletions/"); run == 1 && (r != 2 || d != 0) {
			t.Fatalf("read %d records and %d deletion records, want 2 and 0", r, d)
		}
	}
}

// countingStore counts Get calls by key.
type countingStore struct {
	faceauth.Store
	mu   sync.Mutex
	gets map[string]int
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, string, error) {
	c.mu.Lock()
	c.gets[key]++
	c.mu.Unlock()
	return c.Store.Get(ctx, key)
}

// count is the number of Gets of keys under prefix.
func (c *countingStore) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.gets {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func testReembed(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	// What a registry sees after VERIFICATION_MODEL changed: references
	// embedded by another model.
	eng := fakeengine.New(fakeengine.Config{Model: "OldModel@00000000"})
	old := NewRegistry(Config{Store: s, Engine: eng, Info: eng.Info(), Log: quiet})
	for _, id := range []string{"alice", "bob"} {
		if _, err := old.Register(ctx, id, "", []Image{{Data: crops[0]}, {Data: crops[1]}}); err != nil {
			t.Fatal(err)
		}
	}
	pub := &centraltest.Recorder{}
	r := newTestRegistry(t, s, pub)
	vecs, err := r.Embeddings(ctx, "alice", r.Model())
	if err != nil || len(vecs) != 2 {
		t.Fatalf("Embeddings after a model change: %d, %v", len(vecs), err)
	}
	rec, _ := r.Get(ctx, "alice")
	for _, ref := range rec.References {
		if ref.Embedding.Model != r.Model() {
			t.Fatalf("reference still of model %s", ref.Embedding.Model)
		}
	}
	if len(pub.All()) != 1 {
		t.Fatalf("re-embedding published %d changes, want 1", len(pub.All()))
	}
	// The background walk migrates the rest.
	n, err := r.Reembed(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reembed = %d, %v; want 1 (bob)", n, err)
	}
	if n, _ := r.Reembed(ctx); n != 0 {
		t.Fatalf("second Reembed updated %d users", n)
	}
	// Embeddings of another model than the registry's are never made up.
	if _, err := r.Embeddings(ctx, "bob", "OldModel@00000000"); !hasCode(err, "no_usable_reference") {
		t.Fatalf("old model after migration: %v", err)
	}
}

func testSearch(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	eng := centraltest.Engine(t)
	r := newTestRegistry(t, s, nil)
	for i := range 4 {
		if _, err := r.Register(ctx, fmt.Sprintf("p%d", i), fmt.Sprintf("Person %d", i), []Image{{Data: crops[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	probe := func(i int) []float32 {
		a, err := eng.Analyze(ctx, centraltest.Variant(t, crops[i], 75), faceauth.Request{})
		if err != nil {
			t.Fatal(err)
		}
		return a.Embedding
	}
	for i := range 4 {
		m, err := r.Search(ctx, probe(i), r.Model(), eng.Info().Threshold, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 || m[0].UserID != fmt.Sprintf("p%d", i) || m[0].Name != fmt.Sprintf("Person %d", i) {
			t.Fatalf("search for p%d: %+v", i, m)
		}
	}
	// Changes after the index was loaded are searched too.
	if _, err := r.Delete(ctx, "p0"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, "p4", "", []Image{{Data: crops[4]}}); err != nil {
		t.Fatal(err)
	}
	if m, _ := r.Search(ctx, probe(0), r.Model(), eng.Info().Threshold, 3); len(m) > 0 && m[0].UserID == "p0" {
		t.Fatal("a deleted user was found")
	}
	if m, _ := r.Search(ctx, probe(4), r.Model(), eng.Info().Threshold, 3); len(m) == 0 || m[0].UserID != "p4" {
		t.Fatalf("a new user was not found: %+v", m)
	}
	if _, err := r.Search(ctx, probe(1), "OtherModel", eng.Info().Threshold, 3); !hasCode(err, "model_mismatch") {
		t.Fatalf("other model: %v", err)
	}
}

// testSearchSeesOtherReplica: a user registered by another central replica
// is found once the index notices the revision moved.
func testSearchSeesOtherReplica(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	eng := centraltest.Engine(t)
	a, b := newTestRegistry(t, s, nil), newTestRegistry(t, s, nil)
	b.index.recheck = 0
	if _, err := a.Register(ctx, "p0", "", []Image{{Data: crops[0]}}); err != nil {
		t.Fatal(err)
	}
	probe, err := eng.Analyze(ctx, crops[1], faceauth.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := b.Search(ctx, probe.Embedding, b.Model(), eng.Info().Threshold, 1); err != nil || len(m) != 0 {
		t.Fatalf("before: %+v %v", m, err)
	}
	// b's own write does not make it reload, a's does.
	if _, err := a.Register(ctx, "p1", "", []Image{{Data: crops[1]}}); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Search(ctx, probe.Embedding, b.Model(), eng.Info().Threshold, 1); err != nil || len(m) != 1 || m[0].UserID != "p1" {
		t.Fatalf("after another replica registered p1: %+v %v", m, err)
	}
}

// TestFailureHalfway: a store failure at any write of a register leaves no
// visible user, and a delete that stopped half-way is finished by the next
// delete. The faults are injected: real stores cannot fail on demand.
func TestFailureHalfway(t *testing.T) {
	crops := centraltest.FaceCrops(t)
	tests := []struct {
		name string
		fail func(op, key string) bool
	}{
		{"first image", func(op, key string) bool { return op == "put" && strings.HasPrefix(key, "images/") }},
		{"second image", func() func(op, key string) bool {
			var n int
			return func(op, key string) bool {
				if op == "put" && strings.HasPrefix(key, "images/") {
					n++
					return n == 2
				}
				return false
			}
		}()},
		{"revision", func(op, key string) bool { return op == "put" && key == revisionKey }},
		{"record", func(op, key string) bool { return op == "put" && strings.HasPrefix(key, "records/") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			fs := &centraltest.FaultyStore{Store: centraltest.Backends[0].Open(t)}
			pub := &centraltest.Recorder{}
			r := newTestRegistry(t, fs, pub)
			fs.SetFail(tt.fail)
			_, err := r.Register(ctx, "alice", "", []Image{{Data: crops[0]}, {Data: crops[1]}})
			if !errors.Is(err, centraltest.ErrInjected) {
				t.Fatalf("err = %v, want the injected failure", err)
			}
			if _, err := r.Get(ctx, "alice"); faceauth.KindOf(err) != faceauth.KindNotFound {
				t.Fatalf("half-registered user is visible: %v", err)
			}
			if users, _, _ := r.List(ctx, "", "", "", 10); len(users) != 0 {
				t.Fatalf("listed %d users", len(users))
			}
			if len(pub.All()) != 0 {
				t.Fatal("a failed register was published")
			}
			// Once the store works again the register succeeds in full.
			fs.SetFail(nil)
			if res, err := r.Register(ctx, "alice", "", []Image{{Data: crops[0]}, {Data: crops[1]}}); err != nil || len(res.Record.References) != 2 {
				t.Fatalf("retry: %+v %v", res, err)
			}
		})
	}

	t.Run("delete", func(t *testing.T) {
		ctx := t.Context()
		fs := &centraltest.FaultyStore{Store: centraltest.Backends[0].Open(t)}
		r := newTestRegistry(t, fs, nil)
		if _, err := r.Register(ctx, "alice", "", []Image{{Data: crops[0]}, {Data: crops[1]}}); err != nil {
			t.Fatal(err)
		}
		// The images cannot be deleted: the user is already invisible.
		fs.SetFail(func(op, key string) bool { return op == "delete" && strings.HasPrefix(key, "images/") })
		if _, err := r.Delete(ctx, "alice"); !errors.Is(err, centraltest.ErrInjected) {
			t.Fatalf("err = %v", err)
		}
		if _, err := r.Get(ctx, "alice"); faceauth.KindOf(err) != faceauth.KindNotFound {
			t.Fatalf("user visible after a delete that stopped: %v", err)
		}
		fs.SetFail(nil)
		if _, err := r.Delete(ctx, "alice"); err != nil {
			t.Fatalf("finishing the delete: %v", err)
		}
		if keys := append(centraltest.AllKeys(t, fs, "images/alice/"), centraltest.AllKeys(t, fs, "records/")...); len(keys) != 0 {
			t.Fatalf("objects remain: %v", keys)
		}
		if keys := centraltest.AllKeys(t, fs, "deletions/"); len(keys) != 1 {
			t.Fatalf("deletion records %v, want one", keys)
		}
	})

	t.Run("register after a stopped delete", func(t *testing.T) {
		ctx := t.Context()
		fs := &centraltest.FaultyStore{Store: centraltest.Backends[0].Open(t)}
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var clockMu sync.Mutex
		clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
		r := NewRegistry(Config{Store: fs, Engine: centraltest.Engine(t), Info: centraltest.Engine(t).Info(), Log: quiet, Now: clock})
		if _, err := r.Register(ctx, "alice", "", []Image{{Data: crops[0]}}); err != nil {
			t.Fatal(err)
		}
		fs.SetFail(func(op, key string) bool { return op == "delete" })
		if _, err := r.Delete(ctx, "alice"); !errors.Is(err, centraltest.ErrInjected) {
			t.Fatalf("err = %v", err)
		}
		fs.SetFail(nil)
		// Right after, the delete may still be running elsewhere.
		if _, err := r.Register(ctx, "alice", "", []Image{{Data: crops[1]}}); !hasCode(err, "user_being_deleted") {
			t.Fatalf("register during a delete: %v", err)
		}
		clockMu.Lock()
		now = now.Add(2 * deleteGrace)
		clockMu.Unlock()
		res, err := r.Register(ctx, "alice", "", []Image{{Data: crops[1]}})
		if err != nil || !res.Created || len(res.Record.References) != 1 {
			t.Fatalf("register after the grace: %+v %v", res, err)
		}
		keys := centraltest.AllKeys(t, fs, "images/alice/")
		if want := []string{imageKey("alice", res.Record.References[0].ImageId, "jpg")}; !slices.Equal(keys, want) {
			t.Fatalf("images %v, want only the new one %v", keys, want)
		}
	})

	t.Run("delete before tombstone", func(t *testing.T) {
		ctx := t.Context()
		fs := &centraltest.FaultyStore{Store: centraltest.Backends[0].Open(t)}
		r := newTestRegistry(t, fs, nil)
		if _, err := r.Register(ctx, "alice", "", []Image{{Data: crops[0]}}); err != nil {
			t.Fatal(err)
		}
		// The deletion record is written, the tombstone is not: the user
		// stays, and a snapshot must not tell the edges to drop them.
		fs.SetFail(func(op, key string) bool { return op == "put" && strings.HasPrefix(key, "records/") })
		if _, err := r.Delete(ctx, "alice"); !errors.Is(err, centraltest.ErrInjected) {
			t.Fatalf("err = %v", err)
		}
		fs.SetFail(nil)
		if _, err := r.Get(ctx, "alice"); err != nil {
			t.Fatalf("user gone after a delete that failed before its visibility point: %v", err)
		}
		var changes []string
		r.Snapshot(ctx, nil, func(c *pb.UserChange) error {
			if c.GetDelete() != nil {
				changes = append(changes, "delete")
			} else {
				changes = append(changes, "upsert")
			}
			return nil
		})
		if !slices.Equal(changes, []string{"upsert"}) {
			t.Fatalf("snapshot %v", changes)
		}
	})
}
