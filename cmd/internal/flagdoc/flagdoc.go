// Package flagdoc checks the configuration tables of the documentation
// (README.md, docs/configuration.md) against the flags the binaries
// define, so that a documented setting that does not exist, or a setting
// nobody documented, fails a test instead of a newcomer.
package flagdoc

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Row is one row of a configuration table: its variables (first column)
// and flags (second column), and its line in the file.
type Row struct {
	Vars, Flags []string
	Line        int
}

var code = regexp.MustCompile("`([^`]+)`")

// Table returns the rows of the first table after the line heading (e.g.
// "### edged run") in the markdown file at path.
func Table(path, heading string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var rows []Row
	found, inTable, n := false, false, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case !found:
			found = line == heading
		case strings.HasPrefix(line, "|"):
			inTable = true
			cells := strings.Split(strings.Trim(line, "|"), "|")
			if len(cells) < 2 || strings.HasPrefix(strings.TrimSpace(cells[0]), "---") || strings.TrimSpace(cells[0]) == "variable" {
				continue
			}
			r := Row{Line: n}
			for _, m := range code.FindAllStringSubmatch(cells[0], -1) {
				r.Vars = append(r.Vars, m[1])
			}
			for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
				r.Flags = append(r.Flags, strings.TrimPrefix(m[1], "--"))
			}
			rows = append(rows, r)
		case inTable:
			return rows, sc.Err()
		}
	}
	if !found {
		return nil, fmt.Errorf("%s has no line %q", path, heading)
	}
	return rows, sc.Err()
}

// Check compares the rows with flags. Every documented variable must be
// the environment variable of a flag (or one of envOnly, read by the code
// itself), every documented flag a flag, and a row's variable and flag the
// same setting. With complete, every flag and every environment variable
// of flags must also be documented. It returns one sentence per problem.
func Check(path string, rows []Row, flags []cli.Flag, envOnly []string, complete bool) []string {
	byName := map[string]cli.Flag{}
	byEnv := map[string]cli.Flag{}
	for _, f := range flags {
		for _, n := range f.Names() {
			byName[n] = f
		}
		if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
			for _, e := range ev.GetEnvVars() {
				byEnv[e] = f
			}
		}
	}
	var problems []string
	docVars, docFlags := map[string]bool{}, map[string]bool{}
	for _, r := range rows {
		for i, v := range r.Vars {
			docVars[v] = true
			f, ok := byEnv[v]
			if !ok {
				if !slices.Contains(envOnly, v) {
					problems = append(problems, fmt.Sprintf("%s:%d: %s is documented but no flag reads it", path, r.Line, v))
				}
				continue
			}
			if i < len(r.Flags) && !slices.Contains(f.Names(), r.Flags[i]) {
				problems = append(problems, fmt.Sprintf("%s:%d: %s is the variable of --%s, not of --%s", path, r.Line, v, f.Names()[0], r.Flags[i]))
			}
		}
		for _, fl := range r.Flags {
			docFlags[fl] = true
			if _, ok := byName[fl]; !ok {
				problems = append(problems, fmt.Sprintf("%s:%d: --%s is documented but does not exist", path, r.Line, fl))
			}
		}
	}
	if complete {
		for _, f := range flags {
			name := f.Names()[0]
			// A hidden flag is a former name kept working, not a setting to document.
			if v, ok := f.(cli.VisibleFlag); name == "help" || ok && !v.IsVisible() {
				continue
			}
			if !docFlags[name] {
				problems = append(problems, fmt.Sprintf("%s: --%s is not documented", path, name))
			}
			if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
				for _, e := range ev.GetEnvVars() {
					if !docVars[e] {
						problems = append(problems, fmt.Sprintf("%s: %s (--%s) is not documented", path, e, name))
					}
				}
			}
		}
	}
	return problems
}
