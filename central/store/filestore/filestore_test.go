package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/store/storetest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) faceauth.Store { return newStore(t) })
}

// Two Store values on one directory behave as one store.
func TestConformanceTwoInstances(t *testing.T) {
	storetest.Run(t, func(t *testing.T) faceauth.Store {
		a := newStore(t)
		b, err := New(a.Dir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return &alternating{stores: []faceauth.Store{a, b}}
	})
}

// alternating sends each call to the next of several stores.
type alternating struct {
	mu     sync.Mutex
	n      int
	stores []faceauth.Store
}

func (a *alternating) next() faceauth.Store {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return a.stores[a.n%len(a.stores)]
}

func (a *alternating) Get(ctx context.Context, key string) ([]byte, string, error) {
	return a.next().Get(ctx, key)
}
func (a *alternating) Put(ctx context.Context, key string, data []byte, c faceauth.Cond) (string, error) {
	return a.next().Put(ctx, key, data, c)
}
func (a *alternating) Delete(ctx context.Context, key string) error { return a.next().Delete(ctx, key) }
func (a *alternating) List(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	return a.next().List(ctx, prefix, after, limit)
}
func (a *alternating) Ping(ctx context.Context) error { return a.next().Ping(ctx) }

const (
	helperDirEnv = "FILESTORE_TEST_HELPER_DIR"
	helperNEnv   = "FILESTORE_TEST_HELPER_N"
)

// TestHelperProcess is not a test: TestCrossProcessCAS runs the test binary
// again with it selected, as a second process on the same directory.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrossProcessCAS")
	}
	n, err := strconv.Atoi(os.Getenv(helperNEnv))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range n {
		if err := increment(t, s); err != nil {
			t.Fatal(err)
		}
	}
}

const counterKey = "meta/revision"

// increment adds one to the counter with a compare-and-swap loop.
func increment(t *testing.T, s faceauth.Store) error {
	for attempt := 0; attempt < 10000; attempt++ {
		data, v, err := s.Get(t.Context(), counterKey)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(data))
		if err != nil {
			return err
		}
		_, err = s.Put(t.Context(), counterKey, []byte(strconv.Itoa(n+1)), faceauth.Cond{IfMatch: v})
		if errors.Is(err, faceauth.ErrPrecondition) {
			continue
		}
		return err
	}
	return fmt.Errorf("no successful increment in 10000 attempts")
}

func TestCrossProcessCAS(t *testing.T) {
	const (
		procs      = 4
		perProc    = 40
		goroutines = 4
	)
	s := newStore(t)
	if _, err := s.Put(t.Context(), counterKey, []byte("0"), faceauth.Cond{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range procs {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperDirEnv+"="+s.Dir(), helperNEnv+"="+strconv.Itoa(perProc))
		wg.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("process %d: %v\n%s", i, err, out)
			}
		})
	}
	// This process competes too, through its own goroutines.
	for range goroutines {
		wg.Go(func() {
			for range perProc {
				if err := increment(t, s); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	data, _, err := s.Get(t.Context(), counterKey)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa((procs + goroutines) * perProc); string(data) != want {
		t.Fatalf("counter = %s, want %s: increments were lost", data, want)
	}
}

// Keys that try to leave the directory are refused and nothing is written
// outside it, also through a symlink planted inside.
func TestEscape(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(parent, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, key := range []string{"../secret", "../store2/x", "/tmp/x", parent + "/secret", "a/../../secret",
		`..\secret`, "./../secret", "a/./../../secret", ".locks/00", "..", "x/.."} {
		if _, _, err := s.Get(ctx, key); faceauth.KindOf(err) != faceauth.KindInvalid {
			t.Errorf("Get(%q) = %v, want invalid", key, err)
		}
		if _, err := s.Put(ctx, key, []byte("pwned"), faceauth.Cond{}); faceauth.KindOf(err) != faceauth.KindInvalid {
			t.Errorf("Put(%q) = %v, want invalid", key, err)
		}
		if err := s.Delete(ctx, key); faceauth.KindOf(err) != faceauth.KindInvalid {
			t.Errorf("Delete(%q) = %v, want invalid", key, err)
		}
	}
	// "link" is a valid key segment; the symlink must not lead outside.
	if _, _, err := s.Get(ctx, "link/secret"); err == nil {
		t.Error("Get through a symlink read a file outside the store")
	}
	if _, err := s.Put(ctx, "link/planted", []byte("pwned"), faceauth.Cond{}); err == nil {
		t.Error("Put through a symlink succeeded")
	}
	if err := s.Delete(ctx, "link/secret"); err != nil && faceauth.KindOf(err) == faceauth.KindInvalid {
		t.Errorf("Delete through a symlink: %v", err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"secret", "store"}) {
		t.Errorf("files beside the store: %q, want only secret and store", names)
	}
	if b, err := os.ReadFile(filepath.Join(parent, "secret")); err != nil || string(b) != "outside" {
		t.Errorf("file outside the store: %q, %v", b, err)
	}
}

// Delete removes the folders it empties and keeps the others.
func TestDeleteRemovesEmptyFolders(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, k := range []string{"images/alice/1.jpg", "images/alice/2.jpg", "images/bob/1.jpg", "records/alice.pb"} {
		if _, err := s.Put(ctx, k, []byte(k), faceauth.Cond{}); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(p string) bool {
		_, err := os.Stat(filepath.Join(s.Dir(), p))
		return err == nil
	}
	steps := []struct {
		del     string
		present []string
		gone    []string
	}{
		{"images/alice/1.jpg", []string{"images/alice", "images"}, []string{"images/alice/1.jpg"}},
		{"images/alice/2.jpg", []string{"images", "images/bob"}, []string{"images/alice"}},
		{"images/bob/1.jpg", []string{"records", ".locks"}, []string{"images/bob", "images"}},
		{"records/alice.pb", []string{".locks", "."}, []string{"records"}},
	}
	for _, st := range steps {
		if err := s.Delete(ctx, st.del); err != nil {
			t.Fatal(err)
		}
		for _, p := range st.present {
			if !exists(p) {
				t.Errorf("after deleting %s: %s is gone", st.del, p)
			}
		}
		for _, p := range st.gone {
			if exists(p) {
				t.Errorf("after deleting %s: %s is still there", st.del, p)
			}
		}
	}
}

// Deleting a folder's path is a no-op, not a removal of the folder.
func TestDeleteFolderKey(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.Put(ctx, "images/alice/1.jpg", []byte("x"), faceauth.Cond{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "images/alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "images/alice/1.jpg"); err != nil {
		t.Fatalf("object under the folder: %v", err)
	}
}

// An object and a folder cannot share a name in a directory.
func TestKeyConflict(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.Put(ctx, "a/b", []byte("x"), faceauth.Cond{}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "a/b/c"} {
		if _, err := s.Put(ctx, key, []byte("y"), faceauth.Cond{}); faceauth.KindOf(err) != faceauth.KindInvalid {
			t.Errorf("Put(%q) = %v, want a key-conflict error", key, err)
		}
	}
	keys, err := s.List(ctx, "", "", 10)
	if err != nil || !slices.Equal(keys, []string{"a/b"}) {
		t.Errorf("List = %q, %v; want only a/b", keys, err)
	}
}

// Temporary files of interrupted writes and foreign files are not objects.
func TestListSkipsForeignFiles(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.Put(ctx, "records/alice.pb", []byte("x"), faceauth.Cond{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"records/.tmp-crashed", "records/with space", "records/.hidden"} {
		if err := os.WriteFile(filepath.Join(s.Dir(), name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(s.Dir(), "records", "passwd")); err != nil {
		t.Fatal(err)
	}
	keys, err := s.List(ctx, "", "", 10)
	if err != nil || !slices.Equal(keys, []string{"records/alice.pb"}) {
		t.Errorf("List = %q, %v; want only records/alice.pb", keys, err)
	}
}

func TestNewAndPingErrors(t *testing.T) {
	if _, err := New(""); faceauth.KindOf(err) != faceauth.KindInvalid {
		t.Errorf("New(\"\") = %v, want invalid", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(file); faceauth.KindOf(err) != faceauth.KindUnavailable {
		t.Errorf("New(a file) = %v, want unavailable", err)
	}
	gone := newStore(t)
	if err := os.RemoveAll(gone.Dir()); err != nil {
		t.Fatal(err)
	}
	if err := gone.Ping(t.Context()); faceauth.KindOf(err) != faceauth.KindUnavailable {
		t.Errorf("Ping on a removed folder = %v, want unavailable", err)
	}
	if os.Geteuid() == 0 {
		t.Skip("root may write to read-only folders")
	}
	s := newStore(t)
	if err := os.Chmod(s.Dir(), 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(s.Dir(), 0o700)
	if err := s.Ping(t.Context()); faceauth.KindOf(err) != faceauth.KindUnavailable {
		t.Errorf("Ping on a read-only folder = %v, want unavailable", err)
	}
}

func BenchmarkPut(b *testing.B) {
	s, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 4096)
	for i := 0; b.Loop(); i++ {
		if _, err := s.Put(b.Context(), "records/u"+strconv.Itoa(i%100)+".pb", data, faceauth.Cond{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkList(b *testing.B) {
	s, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range 2000 {
		if _, err := s.Put(b.Context(), fmt.Sprintf("records/u%05d.pb", i), []byte("x"), faceauth.Cond{}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := s.List(b.Context(), "records/", "records/u01000.pb", 100); err != nil {
			b.Fatal(err)
		}
	}
}

// Writers and deleters of different keys in one folder race on creating
// and removing that folder; none of them may fail or lose a write.
func TestConcurrentFolderChurn(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			key := fmt.Sprintf("images/u/%d.jpg", i)
			for j := range 150 {
				want := []byte(fmt.Sprintf("%d-%d", i, j))
				if _, err := s.Put(ctx, key, want, faceauth.Cond{IfNoneMatch: true}); err != nil {
					t.Errorf("Put(%s): %v", key, err)
					return
				}
				if got, _, err := s.Get(ctx, key); err != nil || string(got) != string(want) {
					t.Errorf("Get(%s) = %q, %v; want %q", key, got, err, want)
					return
				}
				if err := s.Delete(ctx, key); err != nil {
					t.Errorf("Delete(%s): %v", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, err := os.Stat(filepath.Join(s.Dir(), "images")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("images folder after deleting everything: %v", err)
	}
}
