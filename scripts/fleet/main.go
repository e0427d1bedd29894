// Command fleet measures fleet-scale sync (issue 12): it starts a
// three-node nats-server cluster on loopback (the pinned binary that `make
// tools` builds), publishes -users users straight into the R3 users stream
// with central's real publish.Publisher (signed by the feed key, one embedding
// each of the default model's size, 640-d), and starts central's real
// fleet.Monitor behind central's real HTTP server in a child process of its
// own, so that its CPU is central's alone. Then, for each N in -edges, it
// runs N simulated edges in this process, each with its own NATS
// connection and the real uplink.Consume (ordered consumer, Ed25519 check and
// decoding of every message; a map of user to revision stands in for the
// bbolt file, the embeddings are dropped after decoding) and a heartbeat
// every -heartbeat.
//
// It prints, per N: the time until every edge has read the whole set and
// until GET /api/edges reports all of them in_sync; the CPU seconds of the
// NATS servers, of central and of the simulated edges during the bootstrap,
// per delivered message; the servers' peak RSS; central's CPU per heartbeat
// in steady state; and the latency of GET /api/edges over HTTP with N
// edges. A bootstrap that has not finished after -max stops there: the
// line then gives the deliveries made, their rate and the projected time
// of the whole bootstrap at that rate, marked as projected. It prints
// numbers; it does not judge them.
//
// With -verify once the simulated edges share one signature check per
// message (shared.go): on two cores those checks, which real edges make on
// their own CPUs, would otherwise set the pace of a run of hundreds of
// edges. What NATS serves stays the same.
//
//	make tools && go run ./scripts/fleet -users 100000 -edges 50 -max 11m
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/central/httpapi"
	"github.com/xplore/faceauth/central/publish"
	"github.com/xplore/faceauth/central/store/filestore"
	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/models"
	pb "github.com/xplore/faceauth/proto"
)

func main() {
	users := flag.Int("users", 100000, "users in the stream")
	edgesFlag := flag.String("edges", "50", "comma-separated fleet sizes, run one after the other")
	hb := flag.Duration("heartbeat", time.Second, "edge heartbeat interval")
	hold := flag.Duration("hold", 10*time.Second, "steady-state window (heartbeats only) after the bootstrap")
	maxBoot := flag.Duration("max", 11*time.Minute, "stop a bootstrap that has not finished after this long and project it")
	verify := flag.String("verify", "each", "who checks the signatures: each (every simulated edge checks every message, as real edges do) or once (one check per message in this process, shared by the simulated edges; see shared.go)")
	batch := flag.Int("batch", 0, "uplink.ConsumeOptions.MaxBatch of each simulated edge (0: that option's default, 1000; edged itself uses 4096, which buffers too much for hundreds of edges in one process)")
	natsBin := flag.String("nats-server", ".tools/bin/nats-server", "nats-server binary")
	centralMode := flag.Bool("central", false, "internal: run as the central child process (monitor and HTTP API)")
	urlsFlag := flag.String("urls", "", "internal: NATS URLs for -central")
	tokenKey := flag.String("token-key", "", "internal: hex public key of the admin token for -central")
	flag.Parse()
	log.SetFlags(0)

	choice, err := models.Default()
	if err != nil {
		log.Fatal(err)
	}
	if *centralMode {
		if err := runCentral(*urlsFlag, *tokenKey, choice.ModelID(), *hb); err != nil {
			log.Fatal(err)
		}
		return
	}
	var sizes []int
	for _, f := range strings.Split(*edgesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("-edges: %q is not a fleet size", f)
		}
		sizes = append(sizes, n)
	}
	if *verify != "each" && *verify != "once" {
		log.Fatalf("-verify: %q is neither each nor once", *verify)
	}
	if err := run(*natsBin, *users, sizes, choice, *hb, *hold, *maxBoot, *batch, *verify == "once"); err != nil {
		log.Fatal(err)
	}
}

func run(natsBin string, users int, sizes []int, choice *models.Choice, hb, hold, maxBoot time.Duration, batch int, verifyOnce bool) error {
	dir, err := os.MkdirTemp("", "fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	nodes, urls, err := startCluster(natsBin, dir)
	if err != nil {
		return err
	}
	defer stopAll(nodes)
	go func() { // an interrupted run leaves no 300 MB stores behind
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		stopAll(nodes)
		os.RemoveAll(dir)
		os.Exit(1)
	}()
	ctx := context.Background()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()

	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	signer, err := pb.NewSigner(seed)
	if err != nil {
		return err
	}
	streams := pb.StreamOptions{Replicas: 3}
	js, _ := jetstream.New(nc)
	for { // the cluster elects its meta leader first
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := pb.EnsureStreams(tctx, js, streams)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	pub, err := publish.New(nc, publish.Options{Signer: signer, Streams: streams, Timeout: time.Minute, Log: quiet})
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := pub.Resync(ctx, &source{n: users, model: choice.ModelID(), dims: choice.Dims()}, publish.ResyncOptions{}); err != nil {
		return err
	}
	info, err := js.Stream(ctx, pb.UsersStream)
	if err != nil {
		return err
	}
	st := info.CachedInfo().State
	fmt.Printf("machine: %d CPUs, load average %s\n", runtime.NumCPU(), loadAvg())
	fmt.Printf("cluster: 3 nats-server nodes, R3 streams; published %d users (%s, %d-d, signed) in %s: %d messages, %.0f MB per node\n",
		users, choice.ModelID(), choice.Dims(), time.Since(t0).Round(time.Millisecond), st.Msgs, float64(st.Bytes)/1e6)

	tokens, err := auth.NewSigner(seed)
	if err != nil {
		return err
	}
	token, err := tokens.Issue("fleet", auth.RoleAdmin, 0, time.Now())
	if err != nil {
		return err
	}
	c, err := startCentral(urls, hex.EncodeToString(tokens.PublicKey()), hb, token)
	if err != nil {
		return err
	}
	defer c.stop()

	// What the cluster and central spend with no edge at all (raft and
	// monitor timers).
	natsIdle0, centralIdle0 := procCPU(nodes...), c.cpu()
	time.Sleep(idleWindow)
	fmt.Printf("idle, no edges (%s): NATS servers %.1f ms CPU/s, central %.1f ms CPU/s\n", idleWindow,
		(procCPU(nodes...)-natsIdle0)/idleWindow.Seconds()*1e3, (c.cpu()-centralIdle0)/idleWindow.Seconds()*1e3)

	for _, n := range sizes {
		r := &fleetRun{urls: urls, nodes: nodes, central: c, keys: pb.TrustKey(signer.PublicKey()), model: choice.ModelID(),
			users: users, n: n, hb: hb, hold: hold, max: maxBoot, batch: batch}
		if verifyOnce {
			r.shared = newSharedChecks(r.keys, st.LastSeq)
		}
		if err := r.run(ctx); err != nil {
			return fmt.Errorf("%d edges: %w", n, err)
		}
	}
	return nil
}

// progressEvery is how often a bootstrap in progress is reported on
// stderr.
const progressEvery = 30 * time.Second

// idleWindow is how long the idle CPU rates are measured.
const idleWindow = 10 * time.Second

// quiet drops the publisher's progress logs.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fleetRun is one fleet size.
type fleetRun struct {
	urls    string
	nodes   []*exec.Cmd
	central *centralProc
	keys    pb.Keys
	model   string
	users   int
	n       int
	hb      time.Duration
	hold    time.Duration
	max     time.Duration
	batch   int
	shared  *sharedChecks // set with -verify once

	delivered atomic.Int64 // messages delivered to all edges
	read      atomic.Int64 // edges that have read every user
	lastRead  atomic.Int64 // when the last of them did, ns since start
	beats     atomic.Int64 // heartbeats sent
	restarts  atomic.Int64 // consumers started again after an error
}

// run starts n edges, waits until all are in_sync or r.max has passed,
// holds them for the steady window, prints the numbers and stops them.
func (r *fleetRun) run(ctx context.Context) error {
	prefix := fmt.Sprintf("n%d-", r.n)
	load0 := loadAvg()
	loadLo, loadHi := math.Inf(1), math.Inf(-1)
	// Connect every edge first: connecting while hundreds already read
	// would start them minutes apart on a busy machine.
	conns := make([]*nats.Conn, r.n)
	connStart := time.Now()
	for i := range conns {
		nc, err := nats.Connect(r.urls, nats.MaxReconnects(-1))
		if err != nil {
			return err
		}
		defer nc.Close()
		conns[i] = nc
	}
	fmt.Fprintf(os.Stderr, "  %d edges connected in %s\n", r.n, time.Since(connStart).Round(time.Millisecond))
	edges := make([]*simEdge, r.n)
	for i := range edges {
		edges[i] = &simEdge{id: fmt.Sprintf("%sedge-%03d", prefix, i), users: make(map[uint64]uint64, r.users)}
	}
	// Every edge starts at once: started one by one, the first hundred
	// reading would starve this loop and the last edge start minutes late.
	consumeCtx, stopConsume := context.WithCancel(ctx)
	defer stopConsume()
	beatCtx, stopBeats := context.WithCancel(ctx)
	defer stopBeats()
	var wg sync.WaitGroup
	ready := make(chan struct{})
	natsCPU0, centralCPU0, selfCPU0 := procCPU(r.nodes...), r.central.cpu(), selfCPU()
	nodeCPU0 := make([]float64, len(r.nodes))
	for i, n := range r.nodes {
		nodeCPU0[i] = procCPU(n)
	}
	start := time.Now()
	for i, nc := range conns {
		e := edges[i]
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-ready
			r.consume(consumeCtx, nc, e, start)
		}()
		go func() {
			defer wg.Done()
			<-ready
			r.heartbeat(beatCtx, nc, e)
		}()
	}
	close(ready)

	// Wait for every edge to have read everything, then for central to
	// say so (its view lags by up to one heartbeat).
	finished := false
	deadline := start.Add(r.max)
	nextProgress := start.Add(progressEvery)
	for time.Now().Before(deadline) {
		if l := load1(); l >= 0 {
			loadLo, loadHi = min(loadLo, l), max(loadHi, l)
		}
		if now := time.Now(); now.After(nextProgress) {
			nextProgress = nextProgress.Add(progressEvery)
			el := now.Sub(start).Seconds()
			d := r.delivered.Load()
			fmt.Fprintf(os.Stderr, "  %s: %d deliveries (%.0f/s), %d edges done, CPU-s NATS %.1f edges %.1f central %.1f, load %s\n",
				now.Sub(start).Round(time.Second), d, float64(d)/el, r.read.Load(),
				procCPU(r.nodes...)-natsCPU0, selfCPU()-selfCPU0, r.central.cpu()-centralCPU0, loadAvg())
		}
		if r.read.Load() == int64(r.n) {
			if inSync, err := r.central.countInSync(prefix); err != nil {
				return err
			} else if inSync == r.n {
				finished = true
				break
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		time.Sleep(time.Second)
	}
	wall := time.Since(start)
	natsCPU, centralCPU, edgesCPU := procCPU(r.nodes...)-natsCPU0, r.central.cpu()-centralCPU0, selfCPU()-selfCPU0
	delivered := r.delivered.Load()
	stopConsume() // unfinished: the steady window has heartbeats only

	fmt.Printf("\n== %d edges, %d users, heartbeat every %s (load average before: %s; 1-minute load during the bootstrap: %.2f to %.2f)\n",
		r.n, r.users, r.hb, load0, loadLo, loadHi)
	if r.shared != nil {
		fmt.Printf("signatures: checked once per message in this process, shared by the simulated edges (-verify once): %d checks for %d deliveries\n",
			r.shared.checks.Load(), r.delivered.Load())
	} else {
		fmt.Printf("signatures: every simulated edge checks every message (-verify each)\n")
	}
	total := int64(r.n) * int64(r.users)
	if finished {
		fmt.Printf("bootstrap: all edges read every user after %s, all in_sync at central after %s\n",
			time.Duration(r.lastRead.Load()).Round(time.Millisecond), wall.Round(time.Millisecond))
	} else {
		lo, hi := r.users, 0
		for _, e := range edges {
			e.mu.Lock()
			lo, hi = min(lo, len(e.users)), max(hi, len(e.users))
			e.mu.Unlock()
		}
		rate := float64(delivered) / wall.Seconds()
		fmt.Printf("bootstrap: NOT finished, stopped after %s: %d of %d deliveries (%.1f%%), each edge has read %d to %d users\n",
			wall.Round(time.Second), delivered, total, 100*float64(delivered)/float64(total), lo, hi)
		fmt.Printf("bootstrap: PROJECTED at %.0f deliveries/s on this machine: %s for all %d edges to read every user\n",
			rate, time.Duration(float64(total)/rate*float64(time.Second)).Round(time.Second), r.n)
	}
	per := func(cpu float64) string {
		return fmt.Sprintf("%.1f CPU-s (%.1f µs per delivered message)", cpu, cpu/float64(delivered)*1e6)
	}
	fmt.Printf("deliveries: %d in %s, %.0f/s; consumers started again after an error: %d\n",
		delivered, wall.Round(time.Millisecond), float64(delivered)/wall.Seconds(), r.restarts.Load())
	var byNode []string
	for i, n := range r.nodes {
		byNode = append(byNode, fmt.Sprintf("n%d %.1f", i+1, procCPU(n)-nodeCPU0[i]))
	}
	fmt.Printf("NATS servers (3 nodes together): %s; by node (CPU-s): %s\n", per(natsCPU), strings.Join(byNode, ", "))
	fmt.Printf("simulated edges (this process): %s\n", per(edgesCPU))
	fmt.Printf("central (monitor and HTTP, its own process): %.1f CPU-s during the bootstrap\n", centralCPU)
	if !finished {
		fmt.Printf("NATS servers, PROJECTED for the whole bootstrap at the measured cost per message: %.0f CPU-s\n",
			natsCPU/float64(delivered)*float64(total))
	}

	// Steady state: a window with heartbeats only, then the same window
	// without them (the edges still connected). The difference is what
	// the heartbeats cost; the cluster's and the monitor's own timers run
	// in both.
	time.Sleep(r.hb) // let the last batches settle
	beats0 := r.beats.Load()
	with := r.window()
	beats := r.beats.Load() - beats0
	lat, size, err := r.central.edgesLatency(50)
	if err != nil {
		return err
	}
	stopBeats()
	wg.Wait()
	time.Sleep(r.hb)
	without := r.window()
	perBeat := func(with, without float64) float64 { // µs of CPU
		return (with - without) * float64(r.hold) / float64(time.Second) / float64(beats) * 1e6
	}
	fmt.Printf("heartbeats: %d in %s; central %.0f µs CPU each, NATS servers %.0f µs each (CPU with them minus CPU without them, over %s each)\n",
		beats, with.elapsed.Round(time.Millisecond), perBeat(with.central, without.central), perBeat(with.nats, without.nats), r.hold)
	fmt.Printf("GET /api/edges over HTTP with %d edges (%d KB): p50 %.2f ms, p99 %.2f ms (50 requests, one at a time, heartbeats flowing)\n",
		r.n, size/1024, ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]))
	fmt.Printf("peak RSS: largest NATS node %.0f MB, central %.0f MB, simulated edges %.0f MB; load average after: %s\n",
		peakRSS(r.nodes...), peakRSS(r.central.cmd), selfPeakRSS(), loadAvg())
	for _, e := range edges { // the next fleet size starts from an empty list
		if err := r.central.forget(e.id); err != nil {
			return err
		}
	}
	return nil
}

// cpuRates are CPU seconds per second over a window.
type cpuRates struct {
	central, nats float64
	elapsed       time.Duration
}

// window measures central's and the servers' CPU over r.hold.
func (r *fleetRun) window() cpuRates {
	t, c, n := time.Now(), r.central.cpu(), procCPU(r.nodes...)
	time.Sleep(r.hold)
	el := time.Since(t)
	return cpuRates{central: (r.central.cpu() - c) / el.Seconds(), nats: (procCPU(r.nodes...) - n) / el.Seconds(), elapsed: el}
}

// consume is one edge's sync loop: the real consumer, a map for the file.
func (r *fleetRun) consume(ctx context.Context, nc *nats.Conn, e *simEdge, start time.Time) {
	js, _ := jetstream.New(nc)
	for {
		e.mu.Lock()
		from := e.seq + 1
		e.mu.Unlock()
		err := r.consumeFrom(ctx, js, e, from, start)
		if ctx.Err() != nil {
			return
		}
		// As edged does: a consumer that could not be created (a
		// request timed out on the busy cluster) is tried again.
		r.restarts.Add(1)
		if r.restarts.Load() <= 3 {
			fmt.Fprintf(os.Stderr, "  %s: consuming again after: %v\n", e.id, err)
		}
		time.Sleep(time.Second)
	}
}

func (r *fleetRun) consumeFrom(ctx context.Context, js jetstream.JetStream, e *simEdge, from uint64, start time.Time) error {
	o := uplink.ConsumeOptions{Scopes: []uplink.Scope{{Name: pb.NoSite, From: from}}, Keys: r.keys, MaxBatch: r.batch}
	consume := uplink.Consume
	if r.shared != nil {
		consume = func(ctx context.Context, js jetstream.JetStream, o uplink.ConsumeOptions, fn func([]uplink.Delivery) error) error {
			return consumeOnce(ctx, js, r.shared, o, fn)
		}
	}
	return consume(ctx, js, o, func(ds []uplink.Delivery) error {
		r.delivered.Add(int64(len(ds)))
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, d := range ds {
			if d.Err != nil {
				return d.Err
			}
			rev := pb.ChangeRevision(d.Change)
			e.users[userKey(pb.ChangeUserID(d.Change))] = rev
			e.rev, e.seq = max(e.rev, rev), d.Seq
		}
		e.caughtUp = ds[len(ds)-1].Pending == 0
		if len(e.users) == r.users && e.caughtUp && !e.done {
			e.done = true
			r.read.Add(1)
			r.lastRead.Store(int64(time.Since(start)))
		}
		return nil
	})
}

// heartbeat sends the edge's status every r.hb, as edged does.
func (r *fleetRun) heartbeat(ctx context.Context, nc *nats.Conn, e *simEdge) {
	t := time.NewTicker(r.hb)
	defer t.Stop()
	started := timestamppb.Now()
	for {
		e.mu.Lock()
		st := &pb.EdgeStatus{EdgeId: e.id, Model: r.model, Version: "fleet", AppliedRevision: e.rev, AppliedSequence: e.seq,
			UserCount: int64(len(e.users)), SentAt: timestamppb.Now(), StartedAt: started, CaughtUp: e.caughtUp}
		e.mu.Unlock()
		if uplink.PublishStatus(nc, st) == nil {
			r.beats.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// simEdge is one simulated edge: the in-memory stand-in for its file.
type simEdge struct {
	id string
	mu sync.Mutex
	// users holds each user's revision under userKey: 2 MB for 100,000
	// users and nothing for the collector to scan, where string keys
	// would cost 500 edges 2 GB more.
	users    map[uint64]uint64
	rev, seq uint64
	caughtUp bool
	done     bool
}

// userKey is a 64-bit FNV-1a hash of a user ID: among 100,000 IDs a
// collision has a chance of about 3e-10, and one would show as an edge
// that never reads every user.
func userKey(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(id) {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	return h
}

// source is the registry the publisher reads: n users with one embedding
// each, made as they are read so that 100,000 of them cost no memory.
type source struct {
	n     int
	model string
	dims  int
}

func (s *source) Snapshot(ctx context.Context, known func(uint64) bool, fn func(*pb.UserChange) error) error {
	now := timestamppb.Now()
	for i := range s.n {
		rev := uint64(i + 1)
		if known != nil && known(rev) {
			continue
		}
		id := fmt.Sprintf("user.%06d@example.com", i)
		c := &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{
			UserId: id, Revision: rev, Name: id,
			Embeddings: []*pb.Embedding{{Model: s.model, Vector: unitVector(s.dims, uint64(i))}}, UpdatedAt: now,
		}}}
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

func (s *source) Revision(context.Context) (uint64, error) { return uint64(s.n), nil }

// unitVector is a random unit vector, as an embedding is: no two users
// share their bytes.
func unitVector(dims int, seed uint64) []float32 {
	rng := mrand.New(mrand.NewPCG(seed, 1))
	v := make([]float32, dims)
	var sum float64
	for i := range v {
		x := rng.NormFloat64()
		v[i], sum = float32(x), sum+x*x
	}
	norm := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= norm
	}
	return v
}

// centralProc is central's monitor and HTTP API in a child process.
type centralProc struct {
	cmd   *exec.Cmd
	url   string
	token string
	http  *http.Client
}

// startCentral starts this program again with -central and waits for it to
// listen.
func startCentral(urls, tokenKey string, hb time.Duration, token string) (*centralProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-central", "-urls", urls, "-token-key", tokenKey, "-heartbeat", hb.String())
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("central child: %w", err)
	}
	return &centralProc{cmd: cmd, url: "http://" + strings.TrimSpace(line), token: token, http: &http.Client{Timeout: time.Minute}}, nil
}

func (c *centralProc) stop() { stopAll([]*exec.Cmd{c.cmd}) }

func (c *centralProc) cpu() float64 { return procCPU(c.cmd) }

func (c *centralProc) do(method, path string) ([]byte, error) {
	req, _ := http.NewRequest(method, c.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: %s: %s", method, path, res.Status, b)
	}
	return b, err
}

// countInSync asks GET /api/edges how many edges named with prefix are
// in_sync.
func (c *centralProc) countInSync(prefix string) (int, error) {
	b, err := c.do("GET", "/api/edges")
	if err != nil {
		return 0, err
	}
	var res httpapi.EdgesResponse
	if err := json.Unmarshal(b, &res); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range res.Edges {
		if strings.HasPrefix(e.ID, prefix) && e.State == fleet.StateInSync {
			n++
		}
	}
	return n, nil
}

// edgesLatency times k GET /api/edges, sorted, and the answer's size.
func (c *centralProc) edgesLatency(k int) ([]time.Duration, int, error) {
	var lat []time.Duration
	size := 0
	for range k {
		t := time.Now()
		b, err := c.do("GET", "/api/edges")
		if err != nil {
			return nil, 0, err
		}
		lat, size = append(lat, time.Since(t)), len(b)
	}
	slices.Sort(lat)
	return lat, size, nil
}

func (c *centralProc) forget(id string) error {
	_, err := c.do("DELETE", "/api/edges/"+id)
	return err
}

// runCentral is the child process: central's real monitor behind central's
// real HTTP server, on a loopback port it prints on stdout. It ends when
// its parent does.
func runCentral(urls, tokenKey, model string, hb time.Duration) error {
	pub, err := hex.DecodeString(tokenKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("-central: -token-key is not a hex Ed25519 public key")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	mon, err := fleet.New(nc, fleet.Options{Model: model, HeartbeatInterval: hb, Streams: pb.StreamOptions{Replicas: 3}, Log: quiet})
	if err != nil {
		return err
	}
	go mon.Run(ctx)
	<-mon.Ready()
	// GET /api/edges reads the monitor only; the registry behind the
	// other routes is an empty one in a temporary folder.
	dir, err := os.MkdirTemp("", "fleet-central-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := filestore.New(dir)
	if err != nil {
		return err
	}
	reg := central.NewRegistry(central.Config{Store: store, Log: quiet})
	srv := httpapi.NewServer(httpapi.Config{Registry: reg, Edges: mon, Tokens: auth.NewVerifier(pub), Log: quiet})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr())
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startCluster starts three clustered nats-server processes with
// JetStream under dir and returns them and the client URL list.
func startCluster(bin, dir string) ([]*exec.Cmd, string, error) {
	type node struct{ client, route string }
	var ns []node
	for range 3 {
		ns = append(ns, node{freeAddr(), freeAddr()})
	}
	var routes, urls []string
	for _, n := range ns {
		routes = append(routes, "nats-route://"+n.route)
		urls = append(urls, "nats://"+n.client)
	}
	var cmds []*exec.Cmd
	for i, n := range ns {
		d := filepath.Join(dir, fmt.Sprintf("n%d", i+1))
		os.MkdirAll(d, 0o700)
		conf := fmt.Sprintf("server_name: n%d\nlisten: %s\nmax_payload: 8MB\njetstream { store_dir: %q }\ncluster { name: fleet, listen: %s, routes: [%s] }\n",
			i+1, n.client, d, n.route, strings.Join(routes, ", "))
		path := filepath.Join(d, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			return nil, "", err
		}
		cmd := exec.Command(bin, "-c", path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			stopAll(cmds)
			return nil, "", fmt.Errorf("start %s (make tools builds it): %w", bin, err)
		}
		cmds = append(cmds, cmd)
	}
	for _, u := range urls {
		for {
			nc, err := nats.Connect(u)
			if err == nil {
				nc.Close()
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return cmds, strings.Join(urls, ","), nil
}

func stopAll(cmds []*exec.Cmd) {
	for _, c := range cmds {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// procCPU returns the CPU seconds (user and system) the processes have
// used.
func procCPU(cmds ...*exec.Cmd) float64 {
	var s float64
	for _, c := range cmds {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Process.Pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		s += (ut + st) / 100
	}
	return s
}

// peakRSS returns the highest peak RSS of the processes, in MB.
func peakRSS(cmds ...*exec.Cmd) float64 {
	var peak float64
	for _, c := range cmds {
		peak = max(peak, vmHWM(fmt.Sprintf("/proc/%d/status", c.Process.Pid)))
	}
	return peak
}

func selfPeakRSS() float64 { return vmHWM("/proc/self/status") }

func vmHWM(path string) float64 {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// selfCPU returns this process's CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// load1 is the 1-minute load average, -1 when unknown.
func load1() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return -1
	}
	l, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return l
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
