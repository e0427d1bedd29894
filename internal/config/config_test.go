package config

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDotEnv(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{"plain", "A=1\nB = two words \n", map[string]string{"A": "1", "B": "two words"}, ""},
		{"comments", "# top\n\nA=x # note\nB=y#not-a-comment\n", map[string]string{"A": "x", "B": "y#not-a-comment"}, ""},
		{"export", "export S3_BUCKET=faces\n", map[string]string{"S3_BUCKET": "faces"}, ""},
		{"double quotes", `K="a \"b\"\nc # d" # e`, map[string]string{"K": "a \"b\"\nc # d"}, ""},
		{"single quotes", `K='a\nb "c"'`, map[string]string{"K": `a\nb "c"`}, ""},
		{"empty", "K=\nL=\"\"\n", map[string]string{"K": "", "L": ""}, ""},
		{"equals in value", "K=a=b\n", map[string]string{"K": "a=b"}, ""},
		{"bom and crlf", "\ufeffA=1\r\nB=2\r\n", map[string]string{"A": "1", "B": "2"}, ""},
		{"duplicate", "A=1\nA=2\n", map[string]string{"A": "2"}, ""},
		{"reference to an earlier line", "A=1\nB=${A}x\nC='${A}'\n", map[string]string{"A": "1", "B": "1x", "C": "${A}"}, ""},
		{"multi-line quoted", "A=\"one\ntwo\"\n", map[string]string{"A": "one\ntwo"}, ""},
		{"no equals", "A=1\nJUSTTEXT\n", nil, "JUSTTEXT"},
		{"unclosed", "A=\"abc\n", nil, "unterminated"},
		{"junk after quote", "A=\"abc\" def\n", nil, "def"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDotEnv(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestApplyDotEnv(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	if err := os.WriteFile(path, []byte("A=from-file\nB=from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"A": "from-env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	set := func(k, v string) error { env[k] = v; return nil }
	applied, err := ApplyDotEnv(path, lookup, set)
	if err != nil {
		t.Fatal(err)
	}
	if env["A"] != "from-env" || env["B"] != "from-file" || !slices.Equal(applied, []string{"B"}) {
		t.Fatalf("env = %v, applied %v: the environment must win over .env", env, applied)
	}
	if applied, err := ApplyDotEnv(filepath.Join(dir, "missing"), lookup, set); err != nil || len(applied) != 0 {
		t.Fatalf("missing file: %v %v", applied, err)
	}

	// The same with the process environment, as main calls it: a variable
	// set, even to "", is kept; only unset ones come from the file.
	if err := os.WriteFile(path, []byte("FACEAUTH_T_SET=file\nFACEAUTH_T_EMPTY=file\nFACEAUTH_T_UNSET=file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FACEAUTH_T_SET", "env")
	t.Setenv("FACEAUTH_T_EMPTY", "")
	t.Setenv("FACEAUTH_T_UNSET", "")
	os.Unsetenv("FACEAUTH_T_UNSET")
	if _, err := ApplyDotEnv(path, os.LookupEnv, os.Setenv); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"FACEAUTH_T_SET": "env", "FACEAUTH_T_EMPTY": "", "FACEAUTH_T_UNSET": "file"} {
		if got := os.Getenv(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	// A malformed file is an error naming it, and sets nothing.
	if err := os.WriteFile(path, []byte("GOOD_BEFORE=1\nJUSTTEXT\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clear(env)
	if _, err := ApplyDotEnv(path, lookup, set); err == nil || !strings.Contains(err.Error(), path) || len(env) != 0 {
		t.Fatalf("malformed file: err %v, set %v", err, env)
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"10485760", 10485760, true},
		{"10MiB", 10 << 20, true},
		{"10 MB", 10_000_000, true},
		{"1.5k", 1536, true},
		{"2gib", 2 << 30, true},
		{"", 0, false},
		{"ten", 0, false},
		{"10 parsecs", 0, false},
		{"-1", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v", tt.in, got, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3m", 3 * time.Minute, true},
		{"180", 180 * time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"1h30m", 90 * time.Minute, true},
		{"-1s", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestParseSwitch(t *testing.T) {
	for in, want := range map[string]bool{"on": true, "ON": true, "1": true, "yes": true, "off": false, "": false, "false": false} {
		if got, err := ParseSwitch(in); err != nil || got != want {
			t.Errorf("ParseSwitch(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseSwitch("maybe"); err == nil {
		t.Error("ParseSwitch(maybe) accepted")
	}
}
