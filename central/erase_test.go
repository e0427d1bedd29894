package central

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/central/store/filestore"
	"github.com/xplore/faceauth/central/store/s3store"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/internal/versitygw"
)

// TestDeleteAfterCrashLeavesNoTrace erases a user whose delete a crash
// stopped half-way (after the tombstone, before the images went) and
// whose earlier writes a crash interrupted (a temporary file with a
// photo, one with a record), then restarts the registry (a new one on the
// same store: start-up clean-up and the first sweep pass) and greps every
// file of the store's folder (for S3, versitygw's backend folder) for the
// user's name, embeddings and photos. The crash is injected at a precise
// point: the store fails every image delete, and the temporary files are
// laid down exactly as the file store's writer leaves them when killed.
func TestDeleteAfterCrashLeavesNoTrace(t *testing.T) {
	crops := centraltest.EnrollableVariants(t, centraltest.FaceCrops(t), 3)
	stores := []struct {
		name string
		open func(t *testing.T) (faceauth.Store, string)
	}{
		{"filestore", func(t *testing.T) (faceauth.Store, string) {
			dir := t.TempDir()
			s, err := filestore.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s, dir
		}},
		{"s3store", func(t *testing.T) (faceauth.Store, string) {
			gw := versitygw.Start(t, versitygw.Options{Buckets: []string{"faceauth"}})
			s, err := s3store.New(t.Context(), s3store.Config{Bucket: "faceauth", Region: gw.Region, Endpoint: gw.Endpoint,
				AccessKeyID: gw.AccessKey, SecretAccessKey: gw.SecretKey})
			if err != nil {
				t.Fatal(err)
			}
			return s, gw.Dir
		}},
	}
	for _, b := range stores {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			st, dir := b.open(t)
			fst := &centraltest.FaultyStore{Store: st}
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			var clockMu sync.Mutex
			clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
			advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }
			const name = "Erasable Qzxv Person"
			r := NewRegistry(Config{Store: fst, Engine: centraltest.Engine(t), Info: centraltest.Engine(t).Info(), Publisher: &centraltest.Recorder{}, Log: quiet, Now: clock})
			res, err := r.Register(ctx, "gone", name, []Image{{Data: crops[0]}, {Data: crops[1]}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Register(ctx, "kept", "Kept Person", []Image{{Data: crops[2]}}); err != nil {
				t.Fatal(err)
			}
			patterns := map[string][]byte{"name": []byte(name)}
			for i, ref := range res.Record.References {
				patterns[fmt.Sprintf("embedding %d", i)] = testenv.FloatBytes(ref.Embedding.Vector, 8)
			}
			for i, img := range crops[:2] {
				patterns[fmt.Sprintf("photo %d", i)] = img[len(img)/2 : len(img)/2+64]
			}
			if fsd, ok := st.(*filestore.Store); ok {
				// A register of a third photo killed mid-write of the
				// image, and an update killed mid-write of the record.
				plant := func(key string, data []byte) {
					p := filepath.Join(fsd.Dir(), filepath.Dir(key), ".tmp-"+filepath.Base(key)+"-ABCDEFGHIJKLMNOPQRSTUVWXYZ")
					if err := os.WriteFile(p, data, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				plant(imageKey("gone", strings.Repeat("e", 64), "jpg"), crops[0])
				rec, _ := proto.Marshal(res.Record)
				plant(recordKey("gone"), rec)
			}
			if found := testenv.GrepFiles(t, patterns, dir); len(found) < len(patterns) {
				t.Fatalf("before the delete the user's data is not all in the folder (%q): the test looks in the wrong place", found)
			}

			// The delete stops after the tombstone: no image delete succeeds.
			fst.SetFail(func(op, key string) bool { return op == "delete" && strings.HasPrefix(key, "images/") })
			if _, err := r.Delete(ctx, "gone"); !errors.Is(err, centraltest.ErrInjected) {
				t.Fatalf("delete: %v, want the injected failure", err)
			}
			fst.SetFail(nil)

			// Restart: what serve does at start-up, then its first sweep
			// pass SweepFirst later.
			r2 := NewRegistry(Config{Store: fst, Engine: centraltest.Engine(t), Info: centraltest.Engine(t).Info(), Publisher: &centraltest.Recorder{}, Log: quiet, Now: clock})
			if _, err := r2.RemoveDebris(ctx, "", false); err != nil {
				t.Fatal(err)
			}
			advance(SweepFirst)
			sw := r2.NewSweeper(sweepMinAge)
			if got, err := sw.Pass(ctx); err != nil || got.Finished != 1 {
				t.Fatalf("first sweep pass: %+v %v, want one delete finished", got, err)
			}
			for _, f := range testenv.GrepFiles(t, patterns, dir) {
				t.Error(f)
			}
			if _, err := r2.Get(ctx, "kept"); err != nil {
				t.Errorf("the other user: %v", err)
			}
		})
	}
}

// TestDeleteRemovesDebris: a delete alone (no restart, no sweep) removes
// the temporary files a killed write of the user left in the file store.
func TestDeleteRemovesDebris(t *testing.T) {
	crops := centraltest.EnrollableVariants(t, centraltest.FaceCrops(t), 1)
	dir := t.TempDir()
	st, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(Config{Store: st, Engine: centraltest.Engine(t), Info: centraltest.Engine(t).Info(), Log: quiet})
	if _, err := r.Register(t.Context(), "gone", "", []Image{{Data: crops[0]}}); err != nil {
		t.Fatal(err)
	}
	debris := filepath.Join(dir, "images", "gone", ".tmp-"+strings.Repeat("f", 64)+".jpg-ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	if err := os.WriteFile(debris, crops[0], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Delete(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(debris)); !os.IsNotExist(err) {
		t.Fatalf("the user's folder survived the delete: %v", err)
	}
}
