// Command testsummary prints `go test -json` as plain `go test` does
// (each package's closing line, the output of failed tests, build errors)
// and then a summary of every skipped test with the reason it gave, so
// that a test skipped for a missing tool or photo set is seen, not silently
// dropped. make test runs `go test -json ./... | go run ./scripts/testsummary`.
//
// It exits 1 when a test or a build failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json), including the
// build events of Go 1.24 and later.
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string
}

type skip struct{ pkg, test, reason string }

func main() {
	failed, err := run(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// run reads the events from r and writes the report to w. It reports
// whether anything failed.
func run(r io.Reader, w io.Writer) (bool, error) {
	type key struct{ pkg, test string }
	buf := map[key][]string{}
	var skips []skip
	failed := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (go vet or the linker printing on their own).
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "build-fail":
			failed = true
		case "output":
			if e.Test == "" {
				// Package lines: "ok", "FAIL", "?", panics and TestMain
				// output; "PASS" and the -v "=== RUN" noise are dropped.
				if o := strings.TrimSpace(e.Output); o != "PASS" && !strings.HasPrefix(o, "=== ") {
					fmt.Fprint(w, e.Output)
				}
				continue
			}
			buf[k] = append(buf[k], e.Output)
		case "fail":
			if e.Test != "" {
				failed = true
				for _, o := range buf[k] {
					fmt.Fprint(w, o)
				}
			}
			delete(buf, k)
		case "skip":
			if e.Test != "" {
				skips = append(skips, skip{e.Package, e.Test, reason(buf[k])})
			}
			delete(buf, k)
		case "pass":
			delete(buf, k)
		}
	}
	if err := sc.Err(); err != nil {
		return failed, err
	}
	summarize(w, skips)
	return failed, nil
}

// reason is what a skipped test logged, without the framework's lines.
func reason(out []string) string {
	var msgs []string
	for _, o := range out {
		o = strings.TrimSpace(o)
		if o == "" || strings.HasPrefix(o, "=== ") || strings.HasPrefix(o, "--- SKIP") {
			continue
		}
		// "file_test.go:12: skipping: ..." -> "skipping: ..."
		if i := strings.Index(o, ": "); i > 0 && strings.Contains(o[:i], ".go:") {
			o = o[i+2:]
		}
		msgs = append(msgs, o)
	}
	if len(msgs) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msgs, " / ")
}

// summarize prints the skipped tests grouped by reason, so a missing
// tool shows once with the tests it cost.
func summarize(w io.Writer, skips []skip) {
	if len(skips) == 0 {
		fmt.Fprintln(w, "\nskipped: none")
		return
	}
	byReason := map[string][]string{}
	for _, s := range skips {
		byReason[s.reason] = append(byReason[s.reason], strings.TrimPrefix(s.pkg, "github.com/xplore/faceauth/")+" "+s.test)
	}
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "\nskipped: %d tests (README.md, Tests, says what each needs)\n", len(skips))
	for _, r := range reasons {
		tests := byReason[r]
		sort.Strings(tests)
		fmt.Fprintf(w, "  %s\n", r)
		for _, t := range tests {
			fmt.Fprintf(w, "      %s\n", t)
		}
	}
}
