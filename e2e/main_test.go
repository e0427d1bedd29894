package e2e

// TestMain builds bin/central and bin/edged fresh for the run; the tests
// start, kill and restart them as separate processes, as on a site.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xplore/faceauth/edged"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models"
)

// binDir holds bin/central and bin/edged built for this run.
var binDir string

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	root, err := testenv.FindRepoRoot()
	if err != nil {
		return 0, err
	}
	binDir, err = os.MkdirTemp("", "faceauth-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(binDir)
	cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./cmd/central", "./cmd/edged")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building the binaries: %v\n%s", err, out)
	}
	return m.Run(), nil
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// modelID is the id of the default model, as the binaries report it.
func modelID(t testing.TB) string {
	t.Helper()
	m, err := models.Load(testenv.ModelsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Choose(models.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	return c.ModelID()
}

// proc is a running binary.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// start runs binary (central or edged) with args in a fresh working folder
// (so no stray .env is read) and the extra environment.
func start(t testing.TB, name, binary string, env []string, args ...string) *proc {
	t.Helper()
	return startIn(t, t.TempDir(), name, binary, append(os.Environ(), env...), args...)
}

// startIn runs binary (bin/central, bin/edged or a tool's absolute path)
// in the working folder work with exactly the
// environment env (a test that must leave variables unset filters them).
func startIn(t testing.TB, work, name, binary string, env []string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(work, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	path := binary // a tool's absolute path, or bin/central, bin/edged
	if !filepath.IsAbs(path) {
		path = filepath.Join(binDir, binary)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = work
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("the end of %s's log:\n%s", name, p.tail(40))
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits, killing after 30 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
		p.kill9()
	}
}

// kill9 kills the process as a power cut would, short of the disk.
func (p *proc) kill9() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logHas reports whether the process's log holds s.
func (p *proc) logHas(s string) bool {
	f, err := os.Open(p.log)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}

// waitReady polls url/readyz until it answers 200.
func (p *proc) waitReady(url string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			p.t.Fatalf("%s exited before it was ready (%v)", p.name, p.err)
		}
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready after %s", p.name, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// edge is a running bin/edged.
type edge struct {
	*proc
	url  string
	data string
	id   string
	args []string
}

// startEdge runs `edged run` on data against natsURL and waits until it is
// ready (which it is as soon as its file is loaded).
func startEdge(t testing.TB, id, data, natsURL string, extra ...string) *edge {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"run",
		"--listen", addr, "--data", data, "--edge-id", id, "--nats-url", natsURL,
		"--models-dir", testenv.ModelsDir(t), "--workers", "1",
		"--heartbeat", "300ms", "--compact-delay", "100ms", "--log-level", "debug",
	}, extra...)
	e := &edge{proc: start(t, "edged-"+id, "edged", nil, args...), url: "http://" + addr, data: data, id: id, args: extra}
	e.waitReady(e.url, 60*time.Second)
	return e
}

// ready returns the edge's /readyz, or nil when it does not answer.
func (e *edge) ready() *edged.Readiness {
	resp, err := http.Get(e.url + "/readyz")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var r edged.Readiness
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil {
		return nil
	}
	return &r
}

// metric returns the value of an unlabelled metric on /metrics.
func (e *edge) metric(name string) string {
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

// inspect runs `edged inspect --users` on a stopped edge's data folder.
func inspect(t testing.TB, data string) *edged.Summary {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "edged"), "inspect", "--users", "--data", data)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("edged inspect: %v: %s", err, errb.String())
	}
	var s edged.Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("edged inspect printed %q: %v", out.String(), err)
	}
	return &s
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpDo sends a request and returns the status and body.
func httpDo(t testing.TB, req *http.Request) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 60*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
