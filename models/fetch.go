package models

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// FetchOptions tunes Fetch.
type FetchOptions struct {
	// Testdata also fetches the packages marked as test data.
	Testdata bool
	// NPM is the npm executable; empty means "npm" from PATH.
	NPM string
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// Fetch makes dir hold every wanted file with its pinned digest. Files that
// already verify are left alone, so a second run does nothing. Each package
// is fetched with `npm pack`, its tarball checked against the manifest, and
// only the listed files are extracted, each written atomically and checked.
// Files with a Build are then converted from their (verified) sources and
// written only when the result has the pinned digest.
func Fetch(ctx context.Context, m *Manifest, dir string, opt FetchOptions) error {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Built files that are missing or wrong, and the sources they need.
	var builds []*File
	sources := map[string]bool{}
	for i := range m.Files {
		f := &m.Files[i]
		if f.Build == "" || m.testdata(f) && !opt.Testdata || verifyFile(dir, f) == nil {
			continue
		}
		builds = append(builds, f)
		for _, src := range f.From {
			sources[src] = true
		}
	}
	// Group the files that are missing or wrong by package. A file that
	// only serves to build another is fetched only when that one is built,
	// or with the test data (tests rebuild the model to check the pin).
	need := map[string][]*File{}
	for i := range m.Files {
		f := &m.Files[i]
		if f.Package == "" {
			continue // built, or operator-supplied: verified, never fetched
		}
		p, ok := m.Package(f.Package)
		if !ok {
			return fmt.Errorf("model manifest: file %q names unknown package %q", f.Name, f.Package)
		}
		if m.testdata(f) && !opt.Testdata || m.isSource(f.Name) && !sources[f.Name] && !opt.Testdata {
			continue
		}
		if verifyFile(dir, f) == nil {
			continue
		}
		need[p.Name] = append(need[p.Name], f)
	}
	if len(need) == 0 && len(builds) == 0 {
		log.Info("all model files verified", "dir", dir)
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create models directory: %w", err)
	}
	for _, p := range m.Packages {
		files := need[p.Name]
		if len(files) == 0 {
			continue
		}
		log.Info("fetching package", "package", p.Name+"@"+p.Version, "files", len(files))
		tgz, err := npmPack(ctx, opt.NPM, p)
		if err != nil {
			return err
		}
		if err := extract(tgz, dir, files); err != nil {
			return fmt.Errorf("extract %s@%s: %w", p.Name, p.Version, err)
		}
	}
	for _, f := range builds {
		if err := build(ctx, m, dir, f, log); err != nil {
			return err
		}
	}
	return nil
}

// npmPack downloads the package tarball into memory and checks its digest.
func npmPack(ctx context.Context, npm string, p Package) ([]byte, error) {
	if npm == "" {
		npm = "npm"
	}
	tmp, err := os.MkdirTemp("", "faceauth-npm-")
	if err != nil {
		return nil, fmt.Errorf("npm pack: %w", err)
	}
	defer os.RemoveAll(tmp)
	spec := p.Name + "@" + p.Version
	cmd := exec.CommandContext(ctx, npm, "pack", "--silent", "--ignore-scripts", "--pack-destination", tmp, spec)
	cmd.Dir = tmp
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("npm is needed to fetch the models: install Node.js and npm, then run `make models` again")
		}
		return nil, fmt.Errorf("npm pack %s failed (is the npm registry reachable?): %w: %s", spec, err, strings.TrimSpace(stderr.String()))
	}
	matches, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if len(matches) != 1 {
		return nil, fmt.Errorf("npm pack %s wrote %d tarballs, want 1", spec, len(matches))
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		return nil, fmt.Errorf("npm pack %s: %w", spec, err)
	}
	if got := sum(data); got != p.SHA256 {
		return nil, fmt.Errorf("package %s has sha256 %s, want %s: the registry served different bytes than were pinned; refusing to use them", spec, got, p.SHA256)
	}
	return data, nil
}

// extract writes the wanted files out of a gzipped tarball.
func extract(tgz []byte, dir string, files []*File) error {
	want := map[string]*File{}
	for _, f := range files {
		want[f.Path] = f
	}
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for len(want) > 0 {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		f, ok := want[hdr.Name]
		if !ok || hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("read %s: %w", hdr.Name, err)
		}
		if got := sum(data); got != f.SHA256 {
			return fmt.Errorf("%s has sha256 %s, want %s", hdr.Name, got, f.SHA256)
		}
		if err := writeAtomic(filepath.Join(dir, f.Name), data); err != nil {
			return err
		}
		delete(want, hdr.Name)
	}
	for path := range want {
		return fmt.Errorf("%s is not in the package", path)
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file private; model files are not secrets.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
