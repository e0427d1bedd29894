package filestore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xplore/faceauth"
)

// plantDebris leaves what a writer killed between creating its temporary
// file and renaming it leaves: a temporary file named for key, holding
// data, and no lock held.
func plantDebris(t *testing.T, s *Store, key string, data []byte) string {
	t.Helper()
	name := filepath.Join(filepath.Dir(key), tmpName(key))
	if err := os.MkdirAll(filepath.Join(s.Dir(), filepath.Dir(key)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestRemoveDebris(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Put(ctx, "images/bob/b.jpg", []byte("bob's photo"), faceauth.Cond{}); err != nil {
		t.Fatal(err)
	}
	photo := plantDebris(t, s, "images/alice/a.jpg", []byte("alice's photo"))
	record := plantDebris(t, s, "records/alice.pb", []byte("alice's record"))
	other := plantDebris(t, s, "records/alex.pb", []byte("alex's record"))
	// A file from before temporary names carried their key: removed only
	// once old.
	oldName := filepath.Join("records", ".tmp-"+"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	if err := os.WriteFile(filepath.Join(s.Dir(), oldName), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	youngName := filepath.Join("records", ".tmp-"+"BCDEFGHIJKLMNOPQRSTUVWXYZA")
	if err := os.WriteFile(filepath.Join(s.Dir(), youngName), []byte("young"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(s.Dir(), oldName), long, long); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		prefix string
		dry    bool
		want   []string
	}{
		{"images/alice/", true, []string{photo}},
		{"records/alice.pb", true, []string{record}},
		{"", true, []string{photo, oldName, other, record}},
		{"records/alice.pb", false, []string{record}},
		{"", false, []string{photo, oldName, other}},
		{"", true, nil},
	}
	for _, tt := range tests {
		got, err := s.RemoveDebris(ctx, tt.prefix, tt.dry)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("RemoveDebris(%q, dry %v) = %q, want %q", tt.prefix, tt.dry, got, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "images", "alice")); !os.IsNotExist(err) {
		t.Errorf("the folder the debris alone kept is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), youngName)); err != nil {
		t.Errorf("a recent temporary file of unknown key was removed: %v", err)
	}
	if data, _, err := s.Get(ctx, "images/bob/b.jpg"); err != nil || string(data) != "bob's photo" {
		t.Errorf("an object went with the debris: %q %v", data, err)
	}
}

// A temporary file whose writer is alive is not debris: RemoveDebris
// waits for the key's lock and finds the file gone.
func TestRemoveDebrisSparesLiveWrites(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	key := "images/alice/a.jpg"
	unlock, err := s.lock(key) // a writer mid-write holds it
	if err != nil {
		t.Fatal(err)
	}
	live := plantDebris(t, s, key, []byte("being written"))
	done := make(chan []string)
	go func() {
		got, err := s.RemoveDebris(ctx, "", false)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	select {
	case got := <-done:
		t.Fatalf("RemoveDebris did not wait for the writer: %q", got)
	case <-time.After(200 * time.Millisecond):
	}
	// The writer renames its file into place and lets go.
	if err := os.Rename(filepath.Join(s.Dir(), live), filepath.Join(s.Dir(), key)); err != nil {
		t.Fatal(err)
	}
	unlock()
	if got := <-done; len(got) != 0 {
		t.Fatalf("RemoveDebris removed a live write's file: %q", got)
	}
	if _, _, err := s.Get(ctx, key); err != nil {
		t.Fatal(err)
	}
}

// Put's temporary files name their key, so RemoveDebris can tell whose
// lock to take.
func TestTmpNameRoundTrip(t *testing.T) {
	for _, key := range []string{"records/alice.pb", "images/a.b-c/0123.jpg", "meta/revision", "x", pingKey} {
		dir := filepath.Dir(key)
		if got, ok := tmpKey(dir, tmpName(key)); !ok || got != key {
			t.Errorf("tmpKey(tmpName(%q)) = %q, %v", key, got, ok)
		}
	}
	for _, name := range []string{".tmp-ABCDEFGHIJKLMNOPQRSTUVWXYZ", ".tmp-", "alice.pb", ".tmp-.x-ABCDEFGHIJKLMNOPQRSTUVWXYZ"} {
		if got, ok := tmpKey("records", name); ok {
			t.Errorf("tmpKey(%q) = %q, want no key", name, got)
		}
	}
}
