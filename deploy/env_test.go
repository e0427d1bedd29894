package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xplore/faceauth/internal/testenv"
)

// envOnly are variables read from the environment directly rather than
// through a flag, so they do not show in --help.
var envOnly = map[string]bool{"SECRET_KEY": true, "PREVIOUS_SECRET_KEY": true}

// TestEnvTemplates checks that every variable the environment templates
// set is one the binary they are for actually reads: a misspelt or
// retired name in /etc/xplore/*.env would otherwise be ignored silently.
func TestEnvTemplates(t *testing.T) {
	root := testenv.RepoRoot(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/central", "./cmd/edged")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tt := range []struct{ file, binary, command string }{
		{"env/central.env.example", "central", "serve"},
		{"env/edged.env.example", "edged", "run"},
	} {
		help, err := exec.Command(filepath.Join(bin, tt.binary), tt.command, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s --help: %v", tt.binary, tt.command, err)
		}
		vars := envVars(t, tt.file)
		if len(vars) < 5 {
			t.Fatalf("%s sets only %v", tt.file, vars)
		}
		for _, v := range vars {
			if envOnly[v] {
				continue
			}
			if !regexp.MustCompile(`\$` + v + `\b`).Match(help) {
				t.Errorf("%s sets %s, which `%s %s` does not read", tt.file, v, tt.binary, tt.command)
			}
		}
	}
}

// envVars returns the names a KEY=VALUE file sets, commented lines included
// (they document optional settings).
func envVars(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`^#?\s*([A-Z][A-Z0-9_]*)=`)
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}
