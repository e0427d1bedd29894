// Command memload measures bounded admission and memory (issue 9): it
// starts the real bin/central and bin/edged on unused loopback ports with
// data folders under a temporary folder, registers one user, and sends
// each service a burst of concurrent verifies: -big of a small PNG that
// declares a 7000x7000 image (-png-side) and -small of a 640x480 JPEG. It prints the
// answers by status, the slowest answer, the peak RSS of each process
// (models included) and how long each takes after the burst to come back
// under -idle-rss. It prints numbers; it does not judge them.
//
//	make build && go run ./scripts/memload -photo ../shared/faces/deepface/img2.jpg
//
// The targets, recorded in docs/benchmarks.md: peak RSS under 600 MB per
// process, every answer 200, 413, 422, 429 or 503 within the pipeline wait,
// RSS under 300 MB within 60 s of idle.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/image/draw"
)

type options struct {
	bin, modelsDir, photo string
	big, small, pngSide   int
	wait                  time.Duration
	idleRSS               int64
	idleFor               time.Duration
	extraEnv              []string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "folder with the central and edged binaries (make build)")
	flag.StringVar(&o.modelsDir, "models-dir", envOr("MODELS_DIR", "models/cache"), "fetched model files")
	flag.StringVar(&o.photo, "photo", "../shared/faces/deepface/img2.jpg", "a JPEG with one face, registered and sent (resized to 640x480)")
	flag.IntVar(&o.big, "big", 32, "concurrent verifies of the 7000x7000 PNG")
	flag.IntVar(&o.small, "small", 200, "concurrent verifies of the 640x480 JPEG")
	flag.IntVar(&o.pngSide, "png-side", 7000, "the side of the square PNG (3990: just within the 16 MP full-decode budget, so every one is decoded)")
	flag.DurationVar(&o.wait, "wait", 10*time.Second, "PIPELINE_WAIT given to both services")
	flag.Int64Var(&o.idleRSS, "idle-rss", 300, "RSS in MB to get back under when idle")
	flag.DurationVar(&o.idleFor, "idle-for", 90*time.Second, "how long to watch the RSS after the burst")
	// The lockout also caps the attempts in flight per user (5), which
	// would answer most of a burst for one user 429 before admission; off,
	// every request reaches admission and the pipeline: the worst case.
	extra := flag.String("env", "VERIFY_MAX_FAILURES=0", "extra environment for both services, comma-separated NAME=VALUE (e.g. GOMEMLIMIT=400MiB)")
	flag.Parse()
	if *extra != "" {
		o.extraEnv = strings.Split(*extra, ",")
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "memload:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(o options) error {
	photo, err := os.ReadFile(o.photo)
	if err != nil {
		return fmt.Errorf("the photo to register: %w (pass -photo)", err)
	}
	small, big, err := probes(photo, o.pngSide)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "memload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	centralURL := "http://" + ports[0]
	edgeURL := "http://" + ports[2]
	env := append(os.Environ(), "PIPELINE_WAIT="+o.wait.String(), "MODELS_DIR="+o.modelsDir)
	env = append(env, o.extraEnv...)

	central, err := start(filepath.Join(o.bin, "central"), env, filepath.Join(tmp, "central.log"),
		"serve", "--listen", ports[0], "--data", filepath.Join(tmp, "central"), "--nats-listen", ports[1],
		"--nats-local-edges", "memload", "--pipeline-queue-per-client", "0")
	if err != nil {
		return err
	}
	defer central.stop()
	if err := waitReady(centralURL, central); err != nil {
		return fmt.Errorf("central is not ready: %w; its log:\n%s", err, tail(filepath.Join(tmp, "central.log")))
	}
	admin, err := token(o.bin, tmp, "admin")
	if err != nil {
		return err
	}
	verify, err := token(o.bin, tmp, "verify")
	if err != nil {
		return err
	}
	if code, body := post(centralURL+"/api/register", admin, "alice", photo); code != http.StatusCreated {
		return fmt.Errorf("register: %d %s", code, body)
	}
	// As make run: the edge trusts central's feed key and signs in to the
	// embedded NATS with the seed central generated for it.
	feedKey, err := exec.Command(filepath.Join(o.bin, "central"), "feed-key", "--data", filepath.Join(tmp, "central")).Output()
	if err != nil {
		return fmt.Errorf("central feed-key: %w", err)
	}
	// The burst stands for many doors but comes from one address and one
	// token: lift the per-client connection limit and admission share, so
	// that the queue bound, as before them, answers it.
	edge, err := start(filepath.Join(o.bin, "edged"), env, filepath.Join(tmp, "edge.log"),
		"run", "--listen", ports[2], "--data", filepath.Join(tmp, "edge"), "--edge-id", "memload", "--nats-url", "nats://"+ports[1],
		"--feed-public-key", strings.TrimSpace(string(feedKey)), "--nats-nkey", filepath.Join(tmp, "central", "nats-auth", "memload.nk"),
		"--max-conns-per-client", "0", "--pipeline-queue-per-client", "0")
	if err != nil {
		return err
	}
	defer edge.stop()
	if err := waitReady(edgeURL, edge); err != nil {
		return fmt.Errorf("the edge is not ready: %w; its log:\n%s", err, tail(filepath.Join(tmp, "edge.log")))
	}
	if err := waitFor(2*time.Minute, func() bool {
		code, _ := post(edgeURL+"/api/verify", verify, "alice", small)
		return code == http.StatusOK
	}); err != nil {
		return fmt.Errorf("the edge never verified alice: %w; its log:\n%s", err, tail(filepath.Join(tmp, "edge.log")))
	}

	fmt.Printf("memload: %d x PNG %d bytes declaring %dx%d + %d x JPEG 640x480 %d bytes, PIPELINE_WAIT=%s %s\n",
		o.big, len(big), o.pngSide, o.pngSide, o.small, len(small), o.wait, strings.Join(o.extraEnv, " "))
	for _, t := range []struct {
		name string
		url  string
		p    *proc
	}{{"central", centralURL, central}, {"edge", edgeURL, edge}} {
		if err := burst(o, t.name, t.url, t.p, verify, small, big); err != nil {
			return err
		}
	}
	return nil
}

// burst sends the concurrent verifies to one service and watches its RSS
// during the burst and afterwards.
func burst(o options, name, url string, p *proc, tok string, small, big []byte) error {
	before := rssMB(p.pid(), "VmRSS")
	stop := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			peak = max(peak, rssMB(p.pid(), "VmRSS"))
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	type result struct {
		code int
		took time.Duration
	}
	results := make(chan result, o.big+o.small)
	var reqs sync.WaitGroup
	start := time.Now()
	for i := range o.big + o.small {
		img := small
		if i < o.big {
			img = big
		}
		reqs.Add(1)
		go func() {
			defer reqs.Done()
			t := time.Now()
			code, _ := post(url+"/api/verify", tok, "alice", img)
			results <- result{code, time.Since(t)}
		}()
	}
	reqs.Wait()
	all := time.Since(start)
	close(results)
	codes := map[int]int{}
	var slowest time.Duration
	for r := range results {
		codes[r.code]++
		slowest = max(slowest, r.took)
	}
	close(stop)
	wg.Wait()
	hwm := rssMB(p.pid(), "VmHWM")

	idleStart := time.Now()
	back := time.Duration(-1)
	for time.Since(idleStart) < o.idleFor {
		if rssMB(p.pid(), "VmRSS") < o.idleRSS {
			back = time.Since(idleStart)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	var keys []int
	for c := range codes {
		keys = append(keys, c)
	}
	sort.Ints(keys)
	var parts []string
	for _, c := range keys {
		parts = append(parts, fmt.Sprintf("%d x%d", c, codes[c]))
	}
	backS := "not within " + o.idleFor.String()
	if back >= 0 {
		backS = back.Round(100 * time.Millisecond).String()
	}
	fmt.Printf("%-8s answers: %s; burst %.1fs, slowest answer %.1fs; RSS before %d MB, peak during burst %d MB (VmHWM %d MB); back under %d MB after %s (now %d MB)\n",
		name, strings.Join(parts, ", "), all.Seconds(), slowest.Seconds(), before, peak, hwm, o.idleRSS, backS, rssMB(p.pid(), "VmRSS"))
	return nil
}

// probes returns the 640x480 JPEG and the PNG that declares 7000x7000: a
// flat grey canvas with the JPEG in the middle, so it compresses to a few
// hundred kilobytes.
func probes(photo []byte, side int) (small, big []byte, err error) {
	src, err := jpeg.Decode(bytes.NewReader(photo))
	if err != nil {
		return nil, nil, fmt.Errorf("the photo: %w", err)
	}
	dst := image.NewRGBA(image.Rect(0, 0, 640, 480))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
	var sb bytes.Buffer
	if err := jpeg.Encode(&sb, dst, &jpeg.Options{Quality: 90}); err != nil {
		return nil, nil, err
	}
	canvas := image.NewGray(image.Rect(0, 0, side, side))
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(color.Gray{Y: 128}), image.Point{}, draw.Src)
	draw.Draw(canvas, dst.Bounds().Add(image.Pt(side/2-320, side/2-240)), dst, image.Point{}, draw.Src)
	var bb bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&bb, canvas); err != nil {
		return nil, nil, err
	}
	return sb.Bytes(), bb.Bytes(), nil
}

func post(url, tok, user string, img []byte) (int, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("user_id", user)
	w, _ := mw.CreateFormFile("image", "probe")
	w.Write(img)
	mw.Close()
	req, err := http.NewRequest("POST", url, &buf)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var client = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 512}}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func start(bin string, env []string, logFile string, args ...string) (*proc, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, lf, lf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (run make build first)", bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); lf.Close(); close(p.done) }()
	return p, nil
}

func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func waitReady(url string, p *proc) error {
	exited := false
	err := waitFor(3*time.Minute, func() bool {
		select {
		case <-p.done:
			exited = true
			return true
		default:
		}
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if exited {
		return errors.New("it exited")
	}
	return err
}

func waitFor(d time.Duration, cond func() bool) error {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
	}
	return nil
}

func token(bin, tmp, role string) (string, error) {
	out, err := exec.Command(filepath.Join(bin, "central"), "token", "create", "--role", role, "--subject", "memload",
		"--data", filepath.Join(tmp, "central")).Output()
	if err != nil {
		return "", fmt.Errorf("token create: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// freePorts returns n loopback addresses with ports nobody listens on.
func freePorts(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// rssMB reads a memory field (VmRSS, VmHWM) of a process in MB.
func rssMB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb / 1000
		}
	}
	return 0
}

// tail returns the end of a log file.
func tail(file string) string {
	b, _ := os.ReadFile(file)
	return string(b[max(0, len(b)-3000):])
}
