package testenv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// GrepFiles returns, sorted, a line "PATH holds WHAT" for every regular
// file under the folders that contains one of the patterns (keyed by what
// they are). The erasure tests use it to prove that no byte of a user is
// left; a file removed while walking held nothing, so it is passed over.
func GrepFiles(t testing.TB, patterns map[string][]byte, dirs ...string) []string {
	t.Helper()
	var found []string
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if os.IsNotExist(err) {
				return nil
			}
			if err != nil {
				return err
			}
			for what, p := range patterns {
				if bytes.Contains(b, p) {
					found = append(found, fmt.Sprintf("%s holds the %s", path, what))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(found)
	return found
}

// FloatBytes is the little-endian encoding of v's first n values, as
// protobuf's packed floats (and so every stored or published embedding)
// hold them: the pattern the erasure tests look for.
func FloatBytes(v []float32, n int) []byte {
	var b []byte
	for _, f := range v[:n] {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}
