package eval

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xplore/faceauth"
)

func TestParsePairs(t *testing.T) {
	dir := filepath.FromSlash("/data/set")
	tests := []struct {
		name    string
		in      string
		want    []Pair
		wantErr string // substring; empty means success
	}{
		{
			name: "plain",
			in:   "file_x,file_y,same\na.jpg,b.jpg,1\nimages/c.jpg,/abs/d.jpg,0\n",
			want: []Pair{
				{X: filepath.Join(dir, "a.jpg"), Y: filepath.Join(dir, "b.jpg"), Same: true, Line: 2},
				{X: filepath.Join(dir, "images", "c.jpg"), Y: "/abs/d.jpg", Line: 3},
			},
		},
		{
			name: "fold, near_dup, extra column, BOM, quotes, CRLF",
			in:   "\ufeffFile_X,file_y,same,near_dup,fold,note\r\n\"a,1.jpg\",b.jpg,1,1,f1,x\r\nc.jpg,d.jpg,0,,f2,\r\n",
			want: []Pair{
				{X: filepath.Join(dir, "a,1.jpg"), Y: filepath.Join(dir, "b.jpg"), Same: true, NearDup: true, Fold: "f1", Line: 2},
				{X: filepath.Join(dir, "c.jpg"), Y: filepath.Join(dir, "d.jpg"), Fold: "f2", Line: 3},
			},
		},
		{name: "empty", in: "", wantErr: "pairs.csv line 1: the file is empty"},
		{name: "no header", in: "a.jpg,b.jpg,1\n", wantErr: "line 1: the header must name the columns file_x, file_y, same"},
		{name: "header only", in: "file_x,file_y,same\n", wantErr: "line 2: the list has a header but no rows"},
		{name: "bad same", in: "file_x,file_y,same\na,b,1\nc,d,yes\n", wantErr: `line 3: same must be 0 or 1, got "yes"`},
		{name: "empty same", in: "file_x,file_y,same\na,b,\n", wantErr: `line 2: same must be 0 or 1, got ""`},
		{name: "bad near_dup", in: "file_x,file_y,same,near_dup\na,b,1,2\n", wantErr: `line 2: near_dup must be 0 or 1`},
		{name: "short row", in: "file_x,file_y,same\na,b,1\n\nc,d\n", wantErr: "line 4: has 2 fields, the header has 3"},
		{name: "empty path", in: "file_x,file_y,same\na,,1\n", wantErr: "line 2: file_y is empty"},
		{name: "empty fold", in: "file_x,file_y,same,fold\na,b,1,1\nc,d,0,\n", wantErr: "line 3: fold is empty"},
		{name: "duplicate column", in: "file_x,file_y,same,same\na,b,1,1\n", wantErr: `line 1: column "same" appears twice`},
		{name: "bad quote", in: "file_x,file_y,same\na,b,1\n\"c,d,0\n", wantErr: "pairs.csv line 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePairs(strings.NewReader(tt.in), "pairs.csv", dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if faceauth.KindOf(err) != faceauth.KindInvalid {
					t.Errorf("error kind = %v, want invalid", faceauth.KindOf(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestReadPairsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.csv")
	if err := os.WriteFile(path, []byte("file_x,file_y,same\nx.png,y.png,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPairs(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].X != filepath.Join(dir, "x.png") {
		t.Errorf("got %+v", got)
	}
	if _, err := ReadPairs(filepath.Join(dir, "missing.csv")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestParsePresentations(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Presentation
		wantErr string
	}{
		{
			name: "spoof manifest",
			in:   "file,identity,liveness,attack_type\nimages/a.jpg,p1,live,none\nimages/b.jpg,,SPOOF,print\n",
			want: []Presentation{
				{File: filepath.Join("d", "images", "a.jpg"), Live: true, Attack: "none", Line: 2},
				{File: filepath.Join("d", "images", "b.jpg"), Attack: "print", Line: 3},
			},
		},
		{name: "no liveness column", in: "file,identity\na,b\n", wantErr: "line 1: the header must name the columns file, liveness"},
		{name: "bad liveness", in: "file,liveness\na,live\nb,fake\n", wantErr: `m.csv line 3: liveness must be live or spoof, got "fake"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePresentations(strings.NewReader(tt.in), "m.csv", "d")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseIdentities(t *testing.T) {
	got, err := ParseIdentities(strings.NewReader("file,identity,src\na.jpg,ann,x\nb.jpg,,y\nc.jpg,bob,z\n"), "m.csv", "d")
	if err != nil {
		t.Fatal(err)
	}
	want := []Labelled{
		{File: filepath.Join("d", "a.jpg"), Identity: "ann", Line: 2},
		{File: filepath.Join("d", "c.jpg"), Identity: "bob", Line: 4},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	_, err = ParseIdentities(strings.NewReader("file,identity\na.jpg,ann\nb.jpg,bob\na.jpg,cy\n"), "m.csv", "d")
	if err == nil || !strings.Contains(err.Error(), "m.csv line 4: a.jpg is already listed on line 2") {
		t.Errorf("duplicate file: error = %v", err)
	}
}
