package central

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/central/store/filestore"
	pb "github.com/xplore/faceauth/proto"
)

// TestSweep leaves the store in every state an interrupted write can
// leave, then checks that passes of a Sweeper remove exactly the leftovers,
// and only once they have been unreferenced for MinAge.
func TestSweep(t *testing.T) {
	crops := centraltest.EnrollableVariants(t, centraltest.FaceCrops(t), 6)
	for _, b := range centraltest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			fs := &centraltest.FaultyStore{Store: b.Open(t)}
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			var clockMu sync.Mutex
			clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
			advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }
			pub := &centraltest.Recorder{}
			r := NewRegistry(Config{Store: fs, Engine: centraltest.Engine(t), Info: centraltest.Engine(t).Info(), Publisher: pub, Log: quiet, Now: clock})
			register := func(id string, imgs ...[]byte) *pb.UserRecord {
				t.Helper()
				var in []Image
				for _, img := range imgs {
					in = append(in, Image{Data: img})
				}
				res, err := r.Register(ctx, id, "", in)
				if err != nil {
					t.Fatalf("register %s: %v", id, err)
				}
				return res.Record
			}
			failing := func(op, prefix string, fn func() error) {
				t.Helper()
				fs.SetFail(func(o, key string) bool { return o == op && strings.HasPrefix(key, prefix) })
				defer fs.SetFail(nil)
				if err := fn(); !errors.Is(err, centraltest.ErrInjected) {
					t.Fatalf("err = %v, want the injected failure", err)
				}
			}

			// alice: whole. bob: a register stopped before its record.
			// carol: an image removal stopped before deleting the bytes.
			// dave: a delete stopped after its tombstone. frank: a register
			// stopped before its record, then retried with the same photo.
			register("alice", crops[0], crops[1])
			failing("put", "records/", func() error {
				_, err := r.Register(ctx, "bob", "", []Image{{Data: crops[2]}, {Data: crops[3]}})
				return err
			})
			carol := register("carol", crops[2], crops[4])
			removed := carol.References[0].ImageId
			if _, err := r.RemoveImage(ctx, "carol", removed); err != nil {
				t.Fatal(err)
			}
			if _, err := fs.Put(ctx, imageKey("carol", removed, "jpg"), crops[2], faceauth.Cond{}); err != nil {
				t.Fatal(err) // the bytes the removal did not get to delete
			}
			register("dave", crops[5])
			failing("delete", "images/", func() error { _, err := r.Delete(ctx, "dave"); return err })
			failing("put", "records/", func() error { _, err := r.Register(ctx, "frank", "", []Image{{Data: crops[3]}}); return err })
			if _, err := fs.Put(ctx, "images/notes.txt", []byte("not ours"), faceauth.Cond{}); err != nil {
				t.Fatal(err)
			}
			before := centraltest.AllKeys(t, fs, "images/")

			s := r.NewSweeper(time.Hour)
			s.page = 2 // users' keys split across pages
			pass := func(want SweepStats) {
				t.Helper()
				got, err := s.Pass(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("pass: %+v, want %+v", got, want)
				}
			}
			// Right after the failed delete, it may still be running.
			pass(SweepStats{Users: 5, Images: 8, Waiting: 4, Unfinished: 1})
			if got := centraltest.AllKeys(t, fs, "images/"); !slices.Equal(got, before) {
				t.Fatalf("a first pass deleted: %v, had %v", got, before)
			}

			// frank's retry names the image the first pass found unreferenced.
			register("frank", crops[3])
			advance(30 * time.Minute)
			dry := r.NewSweeper(0)
			dry.DryRun = true
			if got, err := dry.Pass(ctx); err != nil || got != (SweepStats{Users: 5, Images: 8, Deleted: 3, Finished: 1}) {
				t.Fatalf("dry run: %+v %v", got, err)
			}
			pass(SweepStats{Users: 5, Images: 8, Waiting: 3, Finished: 1})
			if keys := append(centraltest.AllKeys(t, fs, "images/dave/"), centraltest.AllKeys(t, fs, "records/dave")...); len(keys) != 0 {
				t.Fatalf("dave's objects remain after the sweep finished the delete: %v", keys)
			}
			if c := pub.All(); c[len(c)-1].GetDelete().GetUserId() != "dave" {
				t.Fatalf("the finished delete was not published: last change %v", c[len(c)-1])
			}

			advance(31 * time.Minute)
			pass(SweepStats{Users: 4, Images: 7, Deleted: 3})
			want := []string{"images/notes.txt"}
			for _, id := range []string{"alice", "carol", "frank"} {
				rec, err := r.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				for _, ref := range rec.References {
					want = append(want, imageKey(rec.Id, ref.ImageId, "jpg"))
				}
			}
			slices.Sort(want)
			if got := centraltest.AllKeys(t, fs, "images/"); !slices.Equal(got, want) {
				t.Fatalf("after the sweep: %v, want %v", got, want)
			}
			pass(SweepStats{Users: 3, Images: 4})
		})
	}
}

// TestSweepLoop: Sweep runs passes until its context ends, and deletes an
// unreferenced image once sweepMinAge has passed on the registry's clock.
func TestSweepLoop(t *testing.T) {
	fs := centraltest.Backends[0].Open(t)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex
	calls := 0
	clock := func() time.Time { // each pass sees half of sweepMinAge go by
		clockMu.Lock()
		defer clockMu.Unlock()
		calls++
		return start.Add(time.Duration(calls) * sweepMinAge / 2)
	}
	r := NewRegistry(Config{Store: fs, Log: quiet, Now: clock})
	key := "images/ghost/" + strings.Repeat("c", 64) + ".jpg"
	if _, err := fs.Put(t.Context(), key, []byte("left by a crash"), faceauth.Cond{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Sweep(ctx, 0, 5*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); len(centraltest.AllKeys(t, fs, "images/")) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sweep loop did not delete the unreferenced image")
		}
	}
	clockMu.Lock()
	passes := calls
	clockMu.Unlock()
	if passes < 3 {
		t.Fatalf("deleted after %d passes, want at least 3 (seen, aged, deleted)", passes)
	}
}

// TestSweepOldOrphanAfterRestart: the first pass of a new Sweeper (a
// restarted central) deletes an unreferenced image that the store says was
// written more than MinAge ago, and keeps one written since (a register may
// be in flight) and an old image that a record names.
func TestSweepOldOrphanAfterRestart(t *testing.T) {
	crops := centraltest.EnrollableVariants(t, centraltest.FaceCrops(t), 1)
	for _, b := range centraltest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			st := b.Open(t)
			mt, ok := st.(modTimer)
			if !ok {
				t.Fatalf("%T does not report modification times", st)
			}
			modTime := func(key string) time.Time {
				t.Helper()
				tm, err := mt.ModTime(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				return tm
			}
			put := func(key string) {
				t.Helper()
				if _, err := st.Put(ctx, key, []byte("a photo"), faceauth.Cond{}); err != nil {
					t.Fatal(err)
				}
			}
			r := NewRegistry(Config{Store: st, Engine: centraltest.Engine(t), Info: centraltest.Engine(t).Info(), Log: quiet})
			res, err := r.Register(ctx, "alice", "", []Image{{Data: crops[0]}})
			if err != nil {
				t.Fatal(err)
			}
			named := imageKey("alice", res.Record.References[0].ImageId, "jpg")
			old := imageKey("alice", strings.Repeat("a", 64), "jpg") // an image removal that stopped before the bytes
			fresh := imageKey("bob", strings.Repeat("b", 64), "jpg") // a register in flight
			put(old)
			minAge := time.Hour
			if fst, ok := st.(*filestore.Store); ok {
				back := time.Now().Add(-2 * minAge)
				for _, key := range []string{named, old} {
					if err := os.Chtimes(filepath.Join(fst.Dir(), filepath.FromSlash(key)), back, back); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				// S3 cannot set LastModified back: a short MinAge, and
				// wait until the server's clock has passed it, with a
				// second to spare: LastModified has whole seconds, and a
				// file's time comes from the kernel's coarse clock, which
				// may trail time.Now by a few milliseconds.
				minAge = 2 * time.Second
				for deadline := time.Now().Add(time.Minute); time.Since(modTime(old)) <= minAge+time.Second; time.Sleep(100 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%s is not %s old after a minute", old, minAge)
					}
				}
			}
			put(fresh)
			// The restarted central's clock stops when the fresh image
			// was written, so it stays younger than MinAge however slow
			// the machine is.
			now := modTime(fresh)
			if age := now.Sub(modTime(old)); age < minAge {
				t.Fatalf("the old image is %s old when the fresh one is written, want at least %s", age, minAge)
			}
			r2 := NewRegistry(Config{Store: st, Log: quiet, Now: func() time.Time { return now }})
			got, err := r2.NewSweeper(minAge).Pass(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := (SweepStats{Users: 2, Images: 3, Waiting: 1, Deleted: 1}); got != want {
				t.Fatalf("first pass after a restart: %+v, want %+v", got, want)
			}
			want := []string{named, fresh}
			slices.Sort(want)
			if keys := centraltest.AllKeys(t, st, "images/"); !slices.Equal(keys, want) {
				t.Fatalf("after the first pass: %v, want %v", keys, want)
			}
		})
	}
}
