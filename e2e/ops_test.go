package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/central/httpapi"
	"github.com/xplore/faceauth/internal/testenv"
)

// TestVersionCommands runs `central version` and `edged version`: the
// version, the commit line, Go, the ONNX Runtime library's own version
// (read from the loaded library) and the model ids.
func TestVersionCommands(t *testing.T) {
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^commit: +\S`),
		regexp.MustCompile(`(?m)^go: +go1\.\d+`),
		regexp.MustCompile(`(?m)^onnxruntime: +1\.\d+\.\d+$`),
		regexp.MustCompile(`(?m)^models: +.*` + regexp.QuoteMeta(modelID(t))),
	}
	for _, bin := range []string{"central", "edged"} {
		cmd := exec.Command(filepath.Join(binDir, bin), "version")
		cmd.Env = append(os.Environ(), "MODELS_DIR="+testenv.ModelsDir(t))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s version: %v\n%s", bin, err, out)
		}
		if !strings.HasPrefix(string(out), bin+" ") {
			t.Errorf("%s version starts %q", bin, out)
		}
		for _, re := range want {
			if !re.Match(out) {
				t.Errorf("%s version lacks %s:\n%s", bin, re, out)
			}
		}
	}
}

// TestDashboardAndAlertsMetricsExist reads every query of the Grafana
// dashboard (deploy/grafana) and every alert rule (deploy/prometheus) and
// checks that each metric they select, with each label value they require,
// is on the live /metrics of a real central and edge that have served a
// few requests: a renamed metric or a typo breaks the test instead of
// leaving an empty panel or an alert that can never fire.
func TestDashboardAndAlertsMetricsExist(t *testing.T) {
	root := testenv.RepoRoot(t)
	exprs := dashboardExprs(t, filepath.Join(root, "deploy", "grafana", "faceauth.json"))
	exprs = append(exprs, ruleExprs(t, filepath.Join(root, "deploy", "prometheus", "faceauth-alerts.yml"))...)

	admin, verifyTok := tokens(t)
	alice, bob := frame(t, "sample1.jpg"), frame(t, "sample2.jpg")
	c := startCentral(t, t.TempDir(), freeAddr(t))
	e := startEdge(t, "site-1", t.TempDir(), c.nats, c.edgeAuth("site-1")...)
	rev := register(t, c, admin, "alice", alice)
	waitApplied(t, e, rev)
	for _, url := range []string{c.url, e.url} {
		if status, m := verify(t, url, verifyTok, "alice", alice); status != 200 || m["verified"] != true {
			t.Fatalf("verify at %s: %d %v", url, status, m)
		}
		verify(t, url, verifyTok, "alice", bob)
	}
	waitFor(t, 30*time.Second, "central to see the edge in sync", func() bool {
		req, _ := http.NewRequest(http.MethodGet, c.url+"/api/edges", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		status, body := httpDo(t, req)
		var r httpapi.EdgesResponse
		return status == 200 && json.Unmarshal(body, &r) == nil && len(r.Edges) == 1 && r.Edges[0].State == fleet.StateInSync
	})

	live := scrape(t, c.url)
	for name, series := range scrape(t, e.url) {
		live[name] = append(live[name], series...)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if len(live[name]) == 0 {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	checked := 0
	for _, expr := range exprs {
		for _, sel := range selectors(expr) {
			checked++
			// up is made by Prometheus for each scrape target.
			if sel.name == "up" {
				continue
			}
			series, ok := live[sel.name]
			if !ok {
				t.Errorf("%s (in %q) is on no live /metrics", sel.name, expr)
				continue
			}
			if !slices.ContainsFunc(series, func(labels map[string]string) bool {
				for k, v := range sel.labels {
					if labels[k] != v {
						return false
					}
				}
				return true
			}) {
				t.Errorf("%s has no series with %v (in %q)", sel.name, sel.labels, expr)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d metric selectors found in the dashboard and the rules: the parser is broken", checked)
	}
}

// scrape returns the samples of url/metrics by sample name (a histogram's
// name_bucket, name_sum, name_count), each as its labels.
func scrape(t *testing.T, url string) map[string][]map[string]string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s/metrics: %v", url, err)
	}
	out := map[string][]map[string]string{}
	add := func(name string, m *dto.Metric, extra ...string) {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		out[name] = append(out[name], l)
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				for _, b := range m.GetHistogram().GetBucket() {
					add(name+"_bucket", m, "le", fmt.Sprint(b.GetUpperBound()))
				}
				add(name+"_sum", m)
				add(name+"_count", m)
			case dto.MetricType_SUMMARY:
				add(name, m)
				add(name+"_sum", m)
				add(name+"_count", m)
			default:
				add(name, m)
			}
		}
	}
	return out
}

func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	return exprs
}

// ruleExprs returns the expr lines of a rules file (the file keeps each on
// one line, as its header says; promtool checks the YAML itself).
func ruleExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "expr:"); ok {
			exprs = append(exprs, strings.TrimSpace(v))
		}
	}
	return exprs
}

// selector is a metric a PromQL expression reads, with the label values
// its equality matchers require.
type selector struct {
	name   string
	labels map[string]string
}

// promKeywords are the PromQL words that are not metric names.
var promKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promAggregators are the aggregation operators, which a grouping clause
// may separate from their parenthesis.
var promAggregators = map[string]bool{
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "group": true, "stddev": true,
	"stdvar": true, "topk": true, "bottomk": true, "quantile": true, "count_values": true,
}

// selectors finds the metric selectors of a PromQL expression. It knows
// enough PromQL for dashboards and rules: function calls, grouping
// clauses, label matchers, range durations, numbers and operators.
func selectors(expr string) []selector {
	var out []selector
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
	}
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n') {
			i++
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '[':
			i = strings.IndexByte(expr[i:], ']') + i + 1
		case '0' <= c && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
		case isIdent(c, true):
			j := i
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			word := expr[i:j]
			k := skipSpace(j)
			switch {
			case promKeywords[word] && k < len(expr) && expr[k] == '(':
				// by (...), on (...): label names.
				i = strings.IndexByte(expr[k:], ')') + k + 1
			case promKeywords[word] || promAggregators[word] || k < len(expr) && expr[k] == '(':
				i = j // a keyword, an aggregation (sum by (x) (...)) or a function
			default:
				sel := selector{name: word, labels: map[string]string{}}
				i = j
				if k < len(expr) && expr[k] == '{' {
					end := strings.IndexByte(expr[k:], '}') + k
					for _, m := range regexp.MustCompile(`([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(expr[k:end], -1) {
						if m[2] == "=" {
							sel.labels[m[1]] = m[3]
						}
					}
					i = end + 1
				}
				out = append(out, sel)
			}
		default:
			i++
		}
	}
	return out
}

func TestSelectors(t *testing.T) {
	tests := []struct {
		expr string
		want []selector
	}{
		{`sum by (outcome) (rate(faceauth_central_verify_total{outcome!~"verified|matched"}[5m]))`,
			[]selector{{"faceauth_central_verify_total", map[string]string{}}}},
		{`histogram_quantile(0.95, sum by (le) (rate(x_bucket{route="POST /api/verify", a!="b"}[5m])))`,
			[]selector{{"x_bucket", map[string]string{"route": "POST /api/verify"}}}},
		{`a > 0 and time() - b > 86400`, []selector{{"a", map[string]string{}}, {"b", map[string]string{}}}},
		{`up{job=~"x|y"} == 0`, []selector{{"up", map[string]string{}}}},
		{`sum(a) / ignoring(le) group_left b offset 5m`, []selector{{"a", map[string]string{}}, {"b", map[string]string{}}}},
	}
	for _, tt := range tests {
		if got := selectors(tt.expr); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("selectors(%q) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}

// TestTokenlessVerifyOptIn starts central with door-controller networks
// allowed to verify without a token: the start is logged with the
// networks, loopback (not listed) still needs a token, and a setting that
// would include loopback stops the edge at start with the variable named.
func TestTokenlessVerifyOptIn(t *testing.T) {
	c := startCentral(t, t.TempDir(), freeAddr(t), "--verify-without-token-from", "192.0.2.0/24")
	if !c.logHas("without a token") || !c.logHas("192.0.2.0/24") {
		t.Errorf("central's start does not log the tokenless networks:\n%s", c.tail(20))
	}
	status, body := httpDo(t, request(t, c.url+"/api/verify", "", map[string]string{"user_id": "alice"}, frame(t, "sample1.jpg")))
	if status != http.StatusUnauthorized || !strings.Contains(string(body), "missing_token") {
		t.Errorf("verify without a token from an unlisted address: %d %s", status, body)
	}
	cmd := exec.Command(filepath.Join(binDir, "edged"), "run", "--data", t.TempDir(), "--listen", freeAddr(t),
		"--models-dir", testenv.ModelsDir(t), "--verify-without-token-from", "127.0.0.1")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "VERIFY_WITHOUT_TOKEN_FROM") || !strings.Contains(string(out), "loopback") {
		t.Errorf("edged with loopback listed: %v\n%s", err, out)
	}
}
