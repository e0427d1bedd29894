package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/store/filestore"
)

// TestSweepCommand leaves images no record names in a store folder and
// sweeps them with `central sweep`: a dry run deletes nothing, a sweep
// looks twice and deletes only them.
func TestSweepCommand(t *testing.T) {
	ctx := t.Context()
	data := t.TempDir()
	st, err := filestore.New(filepath.Join(data, "store"))
	if err != nil {
		t.Fatal(err)
	}
	reg := central.NewRegistry(central.Config{Store: st, Engine: fake, Info: fake.Info(), Log: slog.New(slog.DiscardHandler)})
	res, err := reg.Register(ctx, "ann", "", []central.Image{{Data: faces[0]}})
	if err != nil {
		t.Fatal(err)
	}
	kept := "images/ann/" + res.Record.References[0].ImageId + ".jpg"
	orphans := []string{"images/ann/" + strings.Repeat("a", 64) + ".jpg", "images/ghost/" + strings.Repeat("b", 64) + ".png"}
	for _, key := range orphans {
		if _, err := st.Put(ctx, key, []byte("left by a crash"), faceauth.Cond{}); err != nil {
			t.Fatal(err)
		}
	}
	keys := func() []string {
		t.Helper()
		k, err := st.List(context.Background(), "images/", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	all := keys()
	// A register killed while writing a photo leaves its temporary file.
	debris := filepath.Join("images", "ann", ".tmp-"+strings.Repeat("c", 64)+".jpg-ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	if err := os.WriteFile(filepath.Join(data, "store", debris), faces[0], 0o600); err != nil {
		t.Fatal(err)
	}

	out, _, err := run(t, "sweep", "--data", data, "--dry-run", "--min-age", "0", "--log-level", "error")
	if err != nil || !strings.Contains(out, "3 images of 2 users; would delete 2 images no record names") ||
		!strings.Contains(out, "would delete 1 temporary files of writes that died") || !strings.Contains(out, "temporary file "+debris) {
		t.Fatalf("dry run: %q %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(data, "store", debris)); err != nil {
		t.Fatalf("a dry run removed the temporary file: %v", err)
	}
	if got := keys(); !slices.Equal(got, all) {
		t.Fatalf("a dry run deleted: %v, had %v", got, all)
	}

	out, _, err = run(t, "sweep", "--data", data, "--min-age", "100ms", "--log-level", "error")
	if err != nil || !strings.Contains(out, "2 images no record names; looking again in 100ms") || !strings.Contains(out, "deleted 2 images no record names") {
		t.Fatalf("sweep: %q %v", out, err)
	}
	if got := keys(); !slices.Equal(got, []string{kept}) {
		t.Fatalf("after the sweep: %v, want only %s", got, kept)
	}
	if _, err := os.Stat(filepath.Join(data, "store", debris)); !os.IsNotExist(err) {
		t.Fatalf("the temporary file survived the sweep: %v", err)
	}
	if _, err := reg.Get(ctx, "ann"); err != nil {
		t.Fatalf("ann after the sweep: %v", err)
	}

	if _, _, err := run(t, "sweep", "--data", data, "--min-age", "soon"); err == nil || !strings.Contains(err.Error(), "--min-age") {
		t.Fatalf("bad --min-age: %v", err)
	}
}
