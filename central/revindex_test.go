package central

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/internal/centraltest"
	pb "github.com/xplore/faceauth/proto"
)

// modelOnly is an engine whose model is m1; nothing here enrolls.
type modelOnly struct{}

func (modelOnly) Analyze(context.Context, []byte, faceauth.Request) (*faceauth.Analysis, error) {
	return nil, errors.New("not used")
}
func (modelOnly) Info() faceauth.EngineInfo { return faceauth.EngineInfo{Model: "m1"} }

// seed writes n users (one reference with an image object each) as the
// registry would, and returns the registry.
func seed(t testing.TB, st faceauth.Store, n int) *Registry {
	t.Helper()
	ctx := context.Background()
	r := NewRegistry(Config{Store: st, Engine: modelOnly{}, Info: modelOnly{}.Info(), Log: quiet})
	for i := range n {
		id := fmt.Sprintf("user%06d", i)
		img := fmt.Sprintf("%064x", i)
		if _, err := st.Put(ctx, imageKey(id, img, "jpg"), []byte("photo"), faceauth.Cond{}); err != nil {
			t.Fatal(err)
		}
		_, err := r.update(ctx, id, func(*pb.UserRecord) (*pb.UserRecord, error) {
			return &pb.UserRecord{Name: "User " + id, References: []*pb.Reference{{ImageId: img, ContentType: "image/jpeg",
				Embedding: &pb.Embedding{Model: "m1", Vector: []float32{1, 0, 0, 0}}}}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// restartReads measures a restart: users users, a first run that builds
// the revision index, then changes changes (two thirds updates, a third
// deletes), then a new registry (the restarted central) reconciling with
// a stream that holds everything but those changes, re-embedding and
// sweeping. It returns the store reads of each step.
func restartReads(t testing.TB, users, changes int) (reconcile, reembed, sweep map[string]int, republished int) {
	t.Helper()
	ctx := context.Background()
	st := centraltest.NewMemStore()
	r := seed(t, st, users)
	if _, err := r.revisions(ctx); err != nil { // the first run's reconciliation
		t.Fatal(err)
	}
	held, err := r.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range changes {
		id := fmt.Sprintf("user%06d", i*(users/changes))
		if i%3 == 2 {
			if _, err := r.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			continue
		}
		_, err := r.update(ctx, id, func(cur *pb.UserRecord) (*pb.UserRecord, error) {
			cur.Name = "Renamed " + id
			return cur, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	cs := &countingStore{Store: st, gets: map[string]int{}}
	rc := NewRegistry(Config{Store: cs, Engine: modelOnly{}, Info: modelOnly{}.Info(), Log: quiet})
	err = rc.Snapshot(ctx, func(rev uint64) bool { return rev <= held }, func(*pb.UserChange) error {
		republished++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reconcile = cs.byPrefix()
	cs.reset()
	if _, err := rc.Reembed(ctx); err != nil {
		t.Fatal(err)
	}
	reembed = cs.byPrefix()
	cs.reset()
	if _, err := rc.NewSweeper(time.Hour).Pass(ctx); err != nil {
		t.Fatal(err)
	}
	sweep = cs.byPrefix()
	return reconcile, reembed, sweep, republished
}

func (c *countingStore) byPrefix() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int{}
	for k, v := range c.gets {
		p, _, _ := strings.Cut(k, "/")
		m[p] += v
	}
	return m
}

func (c *countingStore) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets = map[string]int{}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestRestartReadsChanges: a restart with 100,000 users and 10 changes
// since the last run reads O(10) objects to reconcile with the stream,
// to find stale embeddings and to sweep, not 100,000. (Before the revision
// index, each of the three read every record.)
func TestRestartReadsChanges(t *testing.T) {
	users := 100_000
	if testing.Short() {
		users = 10_000
	}
	const changes = 10
	rec, emb, sw, republished := restartReads(t, users, changes)
	t.Logf("users %d, changes %d: reconcile reads %v, re-embed reads %v, sweep reads %v", users, changes, rec, emb, sw)
	if republished != changes {
		t.Errorf("the reconciliation found %d changes to republish, want %d", republished, changes)
	}
	// Per change at most: its record for the revision and again for the
	// upsert; plus meta/index twice and meta/revision.
	for what, m := range map[string]map[string]int{"reconcile": rec, "re-embed": emb, "sweep": sw} {
		if n := total(m); n > 3*changes+5 {
			t.Errorf("%s read %d objects (%v), want O(changes) <= %d", what, n, m, 3*changes+5)
		}
	}
}

// TestRevisionIndexConcurrentReplicas: replicas writing and folding the
// index at once lose nothing: after concurrent changes through two
// registries on one store, each one's view equals every record.
func TestRevisionIndexConcurrentReplicas(t *testing.T) {
	ctx := t.Context()
	st := centraltest.NewMemStore()
	a := seed(t, st, 50)
	b := NewRegistry(Config{Store: st, Engine: modelOnly{}, Info: modelOnly{}.Info(), Log: quiet})
	var wg sync.WaitGroup
	for w, r := range []*Registry{a, b, a, b} {
		wg.Go(func() {
			for i := range 40 {
				id := fmt.Sprintf("user%06d", (w*40+i)%60)
				_, err := r.update(ctx, id, func(cur *pb.UserRecord) (*pb.UserRecord, error) {
					if cur == nil {
						cur = &pb.UserRecord{References: []*pb.Reference{{ImageId: strings.Repeat("a", 64),
							Embedding: &pb.Embedding{Model: "m1", Vector: []float32{1}}}}}
					}
					cur.Name = fmt.Sprintf("w%d i%d", w, i)
					return cur, nil
				})
				// A user whose delete another writer is running is a
				// tombstone: not found until the delete finishes.
				if err != nil && faceauth.KindOf(err) != faceauth.KindNotFound {
					t.Error(err)
				}
				if i%5 == 0 {
					if _, err := r.revisions(ctx); err != nil {
						t.Error(err)
					}
				}
				if i%13 == 0 {
					if _, err := r.Delete(ctx, id); err != nil && faceauth.KindOf(err) != faceauth.KindNotFound {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	want := map[string]uint64{}
	if err := a.eachRecord(ctx, func(rec *pb.UserRecord) error { want[rec.Id] = rec.Revision; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Registry{a, b, NewRegistry(Config{Store: st, Engine: modelOnly{}, Info: modelOnly{}.Info(), Log: quiet})} {
		users, err := r.revisions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]uint64{}
		for id, e := range users {
			got[id] = e.Rev
		}
		if !maps.Equal(got, want) {
			t.Fatalf("the index says %v, the records %v", got, want)
		}
	}
}

// BenchmarkRestartReads prints the store reads of a restart with 100,000
// users and 10 changes (go test -run '^$' -bench RestartReads ./central).
func BenchmarkRestartReads(b *testing.B) {
	for range b.N {
		rec, emb, sw, _ := restartReads(b, 100_000, 10)
		b.ReportMetric(float64(total(rec)), "reconcile-reads")
		b.ReportMetric(float64(total(emb)), "reembed-reads")
		b.ReportMetric(float64(total(sw)), "sweep-reads")
	}
}

// afterFirstCall is a store that runs meanwhile once, right after its
// first call returned, to put another writer between two of a reader's
// requests.
type afterFirstCall struct {
	faceauth.Store
	once      sync.Once
	meanwhile func()
}

func (s *afterFirstCall) Get(ctx context.Context, key string) ([]byte, string, error) {
	defer s.once.Do(s.meanwhile)
	return s.Store.Get(ctx, key)
}

func (s *afterFirstCall) List(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	defer s.once.Do(s.meanwhile)
	return s.Store.List(ctx, prefix, after, limit)
}

// TestRevisionsSeeAFoldMeanwhile: another replica that changes a user and
// folds the change into meta/index (deleting its change object) between
// the reader's first and second request is not missed, whichever request
// comes first: the reader neither lists the change object nor may it keep
// an index read from before the fold.
func TestRevisionsSeeAFoldMeanwhile(t *testing.T) {
	ctx := t.Context()
	st := centraltest.NewMemStore()
	b := seed(t, st, 5)
	if _, err := b.revisions(ctx); err != nil { // meta/index written, no change objects left
		t.Fatal(err)
	}
	var want uint64
	hooked := &afterFirstCall{Store: st, meanwhile: func() {
		res, err := b.update(ctx, "user000001", func(cur *pb.UserRecord) (*pb.UserRecord, error) {
			cur.Name = "Renamed"
			return cur, nil
		})
		if err != nil {
			t.Error(err)
			return
		}
		want = res.Record.Revision
		if _, err := b.revisions(ctx); err != nil {
			t.Error(err)
		}
		if keys, _ := st.List(ctx, changesPrefix, "", 10); len(keys) != 0 {
			t.Errorf("the fold left change objects %v", keys)
		}
	}}
	a := NewRegistry(Config{Store: hooked, Engine: modelOnly{}, Info: modelOnly{}.Info(), Log: quiet})
	users, err := a.revisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := users["user000001"].Rev; want == 0 || got != want {
		t.Errorf("revisions says user000001 is at revision %d, its record at %d", got, want)
	}
}
