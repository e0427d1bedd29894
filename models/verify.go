package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FileError says that a pinned file is missing or does not match its
// digest, and what to run about it.
type FileError struct {
	Dir, Name string
	Missing   bool
	Got, Want string // hex digests, when the file exists
}

// Error is one sentence naming the file, the problem and the fix.
func (e *FileError) Error() string {
	path := filepath.Join(e.Dir, e.Name)
	if e.Missing {
		return fmt.Sprintf("model file %s is missing: run `make models` (or `central models fetch`) to download and verify it", path)
	}
	return fmt.Sprintf("model file %s is altered (sha256 %s, want %s): delete it and run `make models` to fetch the pinned version", path, short(e.Got), short(e.Want))
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// Verify checks the named files in dir against their pinned digests. With
// no names it checks every file that the runtime needs (runtime library,
// detector, landmarker, liveness and all embedders' files whose package is
// known; operator files are checked when named or selected).
func (m *Manifest) Verify(dir string, names ...string) error {
	if len(names) == 0 {
		names = m.RuntimeFiles()
	}
	for _, name := range names {
		f, ok := m.File(name)
		if !ok {
			return fmt.Errorf("model file %q is not in the manifest", name)
		}
		if err := verifyFile(dir, f); err != nil {
			return err
		}
	}
	return nil
}

// RuntimeFiles lists the files a running service needs: everything that is
// fetched or built, except test data and the files that are only sources
// of a built file (operator-supplied models are checked when selected).
func (m *Manifest) RuntimeFiles() []string {
	var names []string
	for _, f := range m.Files {
		if f.Package == "" && f.Build == "" || m.testdata(&f) || m.isSource(f.Name) {
			continue
		}
		names = append(names, f.Name)
	}
	return names
}

// testdata reports whether only tests need f.
func (m *Manifest) testdata(f *File) bool {
	if f.Testdata {
		return true
	}
	p, ok := m.Package(f.Package)
	return ok && p.Testdata
}

// isSource reports whether a built file is made from the file called name.
func (m *Manifest) isSource(name string) bool {
	for _, f := range m.Files {
		for _, src := range f.From {
			if src == name {
				return true
			}
		}
	}
	return false
}

func verifyFile(dir string, f *File) error {
	got, err := hashFile(filepath.Join(dir, f.Name))
	if errors.Is(err, fs.ErrNotExist) {
		return &FileError{Dir: dir, Name: f.Name, Missing: true}
	}
	if err != nil {
		return fmt.Errorf("verify model file: %w", err)
	}
	if got != f.SHA256 {
		return &FileError{Dir: dir, Name: f.Name, Got: got, Want: f.SHA256}
	}
	return nil
}

func hashFile(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
