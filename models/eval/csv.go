package eval

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/xplore/faceauth"
)

// Pair is one labelled comparison from a pairs file.
type Pair struct {
	X, Y    string // image paths, resolved against the list's folder
	Same    bool   // the two images show the same person
	Fold    string // cross-validation fold, empty when the list has none
	NearDup bool   // the two images are shots of one moment (bbt's near_dup)
	Line    int    // line in the list, for messages
}

// Presentation is one labelled image from a spoof manifest.
type Presentation struct {
	File   string // image path, resolved against the manifest's folder
	Live   bool   // a bona fide presentation; false for an attack
	Attack string // the attack_type column when present ("print", ...)
	Line   int
}

// Labelled is one image with its identity from a manifest.
type Labelled struct {
	File     string // image path, resolved against the manifest's folder
	Identity string
	Line     int
}

// csvError is the one error shape for a bad list: which file, which line,
// what is wrong.
func csvError(name string, line int, format string, args ...any) error {
	return faceauth.E(faceauth.KindInvalid, "bad_csv", "%s line %d: %s", name, line, fmt.Sprintf(format, args...))
}

// table is a CSV file with a required header, read whole.
type table struct {
	name string         // file name for messages
	dir  string         // folder that relative paths resolve against
	cols map[string]int // header name -> column
	rows [][]string
	line []int // line of each row
}

func parseTable(r io.Reader, name, dir string, required ...string) (*table, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked below with a better message
	t := &table{name: name, dir: dir, cols: map[string]int{}}
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, csvError(name, 1, "the file is empty; it needs a header naming the columns %s", strings.Join(required, ", "))
	}
	if err != nil {
		return nil, csvParseError(name, err)
	}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := t.cols[h]; dup && h != "" {
			return nil, csvError(name, 1, "column %q appears twice in the header", h)
		}
		t.cols[h] = i
	}
	for _, c := range required {
		if _, ok := t.cols[c]; !ok {
			return nil, csvError(name, 1, "the header must name the columns %s; it has %s",
				strings.Join(required, ", "), strings.Join(header, ","))
		}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvParseError(name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return nil, csvError(name, line, "has %d fields, the header has %d", len(rec), len(header))
		}
		t.rows = append(t.rows, rec)
		t.line = append(t.line, line)
	}
	if len(t.rows) == 0 {
		return nil, csvError(name, 2, "the list has a header but no rows")
	}
	return t, nil
}

func csvParseError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return csvError(name, pe.Line, "%v", pe.Err)
	}
	return fmt.Errorf("read %s: %w", name, err)
}

// get returns row i's value of column c, or "" when the header lacks c.
func (t *table) get(i int, c string) string {
	k, ok := t.cols[c]
	if !ok {
		return ""
	}
	return strings.TrimSpace(t.rows[i][k])
}

// path returns row i's column c as a path resolved against the list's
// folder.
func (t *table) path(i int, c string) (string, error) {
	p := t.get(i, c)
	if p == "" {
		return "", csvError(t.name, t.line[i], "%s is empty", c)
	}
	if filepath.IsAbs(p) {
		return p, nil
	}
	return filepath.Join(t.dir, filepath.FromSlash(p)), nil
}

// flag parses a 0/1 column; an optional column may be empty (or absent),
// which reads as 0.
func (t *table) flag(i int, c string, optional bool) (bool, error) {
	switch v := t.get(i, c); {
	case v == "1":
		return true, nil
	case v == "0" || (v == "" && optional):
		return false, nil
	}
	return false, csvError(t.name, t.line[i], "%s must be 0 or 1, got %q", c, t.get(i, c))
}

// ReadPairs reads a pairs list: a CSV file whose header names at least
// file_x, file_y and same (1 = same person, 0 = different people), and
// optionally fold (cross-validation fold label) and near_dup (0/1). Image
// paths are relative to the list's folder. Other columns are ignored.
func ReadPairs(path string) ([]Pair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open pairs list: %w", err)
	}
	defer f.Close()
	return ParsePairs(f, path, filepath.Dir(path))
}

// ParsePairs is ReadPairs on a reader; name is used in messages and dir is
// the folder that image paths are relative to.
func ParsePairs(r io.Reader, name, dir string) ([]Pair, error) {
	t, err := parseTable(r, name, dir, "file_x", "file_y", "same")
	if err != nil {
		return nil, err
	}
	_, hasFold := t.cols["fold"]
	pairs := make([]Pair, len(t.rows))
	for i := range t.rows {
		p := &pairs[i]
		p.Line = t.line[i]
		if p.X, err = t.path(i, "file_x"); err != nil {
			return nil, err
		}
		if p.Y, err = t.path(i, "file_y"); err != nil {
			return nil, err
		}
		if p.Same, err = t.flag(i, "same", false); err != nil {
			return nil, err
		}
		if p.NearDup, err = t.flag(i, "near_dup", true); err != nil {
			return nil, err
		}
		if hasFold {
			if p.Fold = t.get(i, "fold"); p.Fold == "" {
				return nil, csvError(name, p.Line, "fold is empty; when the list has a fold column every pair needs one")
			}
		}
	}
	return pairs, nil
}

// ReadPresentations reads a spoof manifest: a CSV file whose header names
// at least file and liveness (live or spoof), and optionally attack_type.
// Image paths are relative to the manifest's folder.
func ReadPresentations(path string) ([]Presentation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open spoof manifest: %w", err)
	}
	defer f.Close()
	return ParsePresentations(f, path, filepath.Dir(path))
}

// ParsePresentations is ReadPresentations on a reader.
func ParsePresentations(r io.Reader, name, dir string) ([]Presentation, error) {
	t, err := parseTable(r, name, dir, "file", "liveness")
	if err != nil {
		return nil, err
	}
	ps := make([]Presentation, len(t.rows))
	for i := range t.rows {
		p := &ps[i]
		p.Line = t.line[i]
		if p.File, err = t.path(i, "file"); err != nil {
			return nil, err
		}
		switch v := strings.ToLower(t.get(i, "liveness")); v {
		case "live":
			p.Live = true
		case "spoof":
		default:
			return nil, csvError(name, p.Line, "liveness must be live or spoof, got %q", t.get(i, "liveness"))
		}
		p.Attack = t.get(i, "attack_type")
	}
	return ps, nil
}

// ReadIdentities reads a manifest whose header names at least file and
// identity. Rows with an empty identity are skipped (they are unlabelled);
// a file listed twice is an error.
func ReadIdentities(path string) ([]Labelled, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	defer f.Close()
	return ParseIdentities(f, path, filepath.Dir(path))
}

// ParseIdentities is ReadIdentities on a reader.
func ParseIdentities(r io.Reader, name, dir string) ([]Labelled, error) {
	t, err := parseTable(r, name, dir, "file", "identity")
	if err != nil {
		return nil, err
	}
	var out []Labelled
	seen := map[string]int{}
	for i := range t.rows {
		file, err := t.path(i, "file")
		if err != nil {
			return nil, err
		}
		if first, dup := seen[file]; dup {
			return nil, csvError(name, t.line[i], "%s is already listed on line %d", t.get(i, "file"), first)
		}
		seen[file] = t.line[i]
		if id := t.get(i, "identity"); id != "" {
			out = append(out, Labelled{File: file, Identity: id, Line: t.line[i]})
		}
	}
	return out, nil
}
