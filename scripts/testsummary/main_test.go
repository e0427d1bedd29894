package main

import (
	"strings"
	"testing"
)

// TestRun feeds recorded `go test -json` events: the package lines and a
// failure's output are printed as go test prints them, passing tests are
// quiet, and the skips are summarized with their reasons.
func TestRun(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"start","Package":"x/deploy"}`,
		`{"Action":"run","Package":"x/deploy","Test":"TestNginx"}`,
		`{"Action":"output","Package":"x/deploy","Test":"TestNginx","Output":"=== RUN   TestNginx\n"}`,
		`{"Action":"output","Package":"x/deploy","Test":"TestNginx","Output":"    deploy_test.go:45: skipping: nginx is not installed\n"}`,
		`{"Action":"output","Package":"x/deploy","Test":"TestNginx","Output":"--- SKIP: TestNginx (0.00s)\n"}`,
		`{"Action":"skip","Package":"x/deploy","Test":"TestNginx","Elapsed":0}`,
		`{"Action":"run","Package":"x/deploy","Test":"TestOK"}`,
		`{"Action":"output","Package":"x/deploy","Test":"TestOK","Output":"quiet on success\n"}`,
		`{"Action":"pass","Package":"x/deploy","Test":"TestOK"}`,
		`{"Action":"run","Package":"x/deploy","Test":"TestBad"}`,
		`{"Action":"output","Package":"x/deploy","Test":"TestBad","Output":"    deploy_test.go:9: it broke\n"}`,
		`{"Action":"output","Package":"x/deploy","Test":"TestBad","Output":"--- FAIL: TestBad (0.01s)\n"}`,
		`{"Action":"fail","Package":"x/deploy","Test":"TestBad"}`,
		`{"Action":"output","Package":"x/deploy","Output":"FAIL\n"}`,
		`{"Action":"output","Package":"x/deploy","Output":"FAIL\tx/deploy\t0.02s\n"}`,
		`{"Action":"fail","Package":"x/deploy"}`,
		`{"Action":"output","Package":"x/photos","Test":"TestSets/bbt","Output":"    sets_test.go:20: ../shared is absent: the photo-set tests need /work/shared/faces\n"}`,
		`{"Action":"skip","Package":"x/photos","Test":"TestSets/bbt"}`,
		`{"Action":"output","Package":"x/photos","Output":"PASS\n"}`,
		`{"Action":"output","Package":"x/photos","Output":"ok  \tx/photos\t0.5s\n"}`,
	}, "\n")
	var out strings.Builder
	failed, err := run(strings.NewReader(in), &out)
	if err != nil || !failed {
		t.Fatalf("failed = %v, err = %v", failed, err)
	}
	got := out.String()
	for _, want := range []string{
		"    deploy_test.go:9: it broke\n--- FAIL: TestBad (0.01s)\nFAIL\nFAIL\tx/deploy\t0.02s\n",
		"ok  \tx/photos\t0.5s\n",
		"skipped: 2 tests",
		"  ../shared is absent: the photo-set tests need /work/shared/faces\n      x/photos TestSets/bbt\n",
		"  skipping: nginx is not installed\n      x/deploy TestNginx\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quiet on success") || strings.Contains(got, "=== RUN") {
		t.Errorf("a passing test's output was printed:\n%s", got)
	}
}
