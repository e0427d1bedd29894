// Command fleet measures fleet-scale sync (issue 12): it starts a
// three-node nats-server cluster on loopback (the pinned binary that `make
// tools` builds), publishes -users users (one 512-d embedding each, signed,
// R3 streams) with the real publish.Publisher, then for each N in -edges runs
// N simulated edges in this process, each with its own NATS connection and
// the real uplink.Consume (ordered consumer, signature checks, decoding; an
// in-memory map stands in for the bbolt file) and a heartbeat every
// -heartbeat, beside central's real fleet.Monitor. It prints, per N: the
// time until every edge has read the whole set and until the monitor
// reports all of them in_sync, the NATS servers' CPU seconds and peak RSS,
// the CPU this process spends per heartbeat in steady state (the edges'
// sending and central's handling: an upper bound for central's cost), and
// the latency of building GET /api/edges's answer with N edges. It prints
// numbers; it does not judge them.
//
//	make tools && go run ./scripts/fleet -users 5000 -edges 50,200,500
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/central/publish"
	"github.com/xplore/faceauth/edged/uplink"
	pb "github.com/xplore/faceauth/proto"
)

func main() {
	users := flag.Int("users", 5000, "users in the stream")
	edgesFlag := flag.String("edges", "50,200,500", "comma-separated fleet sizes")
	hb := flag.Duration("heartbeat", time.Second, "edge heartbeat interval")
	hold := flag.Duration("hold", 10*time.Second, "steady-state window after all are in_sync")
	natsBin := flag.String("nats-server", ".tools/bin/nats-server", "nats-server binary")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "fleet-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	nodes, urls, err := startCluster(*natsBin, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		for _, n := range nodes {
			n.Process.Signal(syscall.SIGTERM)
			n.Wait()
		}
	}()
	ctx := context.Background()
	central, err := nats.Connect(urls, nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer central.Close()

	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	signer, err := pb.NewSigner(seed)
	if err != nil {
		log.Fatal(err)
	}
	streams := pb.StreamOptions{Replicas: 3}
	js, _ := jetstream.New(central)
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := pb.EnsureStreams(tctx, js, streams)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	pub, err := publish.New(central, publish.Options{Signer: signer, Streams: streams, Timeout: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	src := newSource(*users)
	t0 := time.Now()
	if _, err := pub.Resync(ctx, src, publish.ResyncOptions{}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("cluster: 3 nats-server nodes, R3 streams; published %d users (512-d, signed) in %s\n", *users, time.Since(t0).Round(time.Millisecond))

	mon, err := fleet.New(central, fleet.Options{Model: "m1", HeartbeatInterval: *hb, Streams: streams})
	if err != nil {
		log.Fatal(err)
	}
	mctx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	go mon.Run(mctx)

	fmt.Println("edges  bootstrap(all read)  all_in_sync  nats_cpu_s  nats_peak_rss_MB(max node)  µs_cpu/heartbeat  edges_json_p50_ms  p99_ms")
	for _, f := range strings.Split(*edgesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("-edges: %q", f)
		}
		if err := runFleet(ctx, urls, nodes, mon, signer, *users, n, *hb, *hold); err != nil {
			log.Fatal(err)
		}
	}
}

// runFleet runs n edges until all are in_sync, holds them for the steady
// window, prints one line and stops them.
func runFleet(ctx context.Context, urls string, nodes []*exec.Cmd, mon *fleet.Monitor, signer *pb.Signer, users, n int, hb, hold time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cpu0 := natsCPU(nodes)
	start := time.Now()
	var (
		wg      sync.WaitGroup
		read    atomic.Int64 // edges that have read every user
		lastAll atomic.Int64 // when the last did, ns since start
	)
	run := fmt.Sprintf("n%d", n)
	for i := range n {
		nc, err := nats.Connect(urls, nats.MaxReconnects(-1))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		id := fmt.Sprintf("%s-edge-%03d", run, i)
		e := &simEdge{id: id, users: map[string]uint64{}}
		wg.Add(2)
		go func() {
			defer wg.Done()
			uplink.Consume(ctx, js, uplink.ConsumeOptions{Keys: pb.TrustKey(signer.PublicKey()), FilterSubjects: pb.EdgeFilterSubjects(nil)}, func(ds []uplink.Delivery) error {
				e.mu.Lock()
				defer e.mu.Unlock()
				for _, d := range ds {
					if d.Err != nil {
						return d.Err
					}
					rev := pb.ChangeRevision(d.Change)
					e.users[pb.ChangeUserID(d.Change)] = rev
					e.rev, e.seq = max(e.rev, rev), d.Seq
				}
				e.caughtUp = ds[len(ds)-1].Pending == 0
				if len(e.users) == users && e.caughtUp && !e.done {
					e.done = true
					read.Add(1)
					lastAll.Store(int64(time.Since(start)))
				}
				return nil
			})
		}()
		go func() {
			defer wg.Done()
			t := time.NewTicker(hb)
			defer t.Stop()
			for {
				e.mu.Lock()
				st := &pb.EdgeStatus{EdgeId: id, Model: "m1", Version: "fleet", AppliedRevision: e.rev, AppliedSequence: e.seq,
					UserCount: int64(len(e.users)), SentAt: timestamppb.Now(), CaughtUp: e.caughtUp}
				e.mu.Unlock()
				uplink.PublishStatus(nc, st)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	inSync := func() bool {
		count := 0
		for _, es := range mon.Edges(time.Now()) {
			if strings.HasPrefix(es.ID, run+"-") && es.State == fleet.StateInSync {
				count++
			}
		}
		return count == n
	}
	deadline := time.Now().Add(30 * time.Minute)
	for !(read.Load() == int64(n) && inSync()) {
		if time.Now().After(deadline) {
			return errors.New("the fleet did not get in sync within 30 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	allInSync := time.Since(start)
	cpuBoot := natsCPU(nodes) - cpu0

	// Steady state: only heartbeats flow.
	self0 := selfCPU()
	time.Sleep(hold)
	perHB := (selfCPU() - self0) / (float64(n) * hold.Seconds() / hb.Seconds()) * 1e6

	var lat []time.Duration
	for range 50 {
		t := time.Now()
		b, _ := json.Marshal(struct {
			Edges []fleet.EdgeState `json:"edges"`
		}{mon.Edges(time.Now())})
		_ = b
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	fmt.Printf("%5d  %18s  %11s  %10.1f  %26.0f  %16.0f  %17.2f  %6.2f\n", n,
		time.Duration(lastAll.Load()).Round(time.Millisecond), allInSync.Round(time.Millisecond),
		cpuBoot, natsPeakRSS(nodes), perHB,
		float64(lat[len(lat)/2].Microseconds())/1000, float64(lat[len(lat)*99/100].Microseconds())/1000)
	cancel()
	wg.Wait()
	for i := range n {
		mon.Forget(context.Background(), fmt.Sprintf("%s-edge-%03d", run, i))
	}
	return nil
}

// simEdge is one simulated edge: the in-memory stand-in for its file.
type simEdge struct {
	id       string
	mu       sync.Mutex
	users    map[string]uint64
	rev, seq uint64
	caughtUp bool
	done     bool
}

// source is the registry the publisher reads: n users with one 512-d
// embedding each.
type source struct{ changes []*pb.UserChange }

func newSource(n int) *source {
	vec := make([]float32, 512)
	for i := range vec {
		vec[i] = float32(i) / 512
	}
	s := &source{}
	for i := range n {
		id := fmt.Sprintf("user.%06d@example.com", i)
		s.changes = append(s.changes, &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{
			UserId: id, Revision: uint64(i + 1), Name: id,
			Embeddings: []*pb.Embedding{{Model: "m1", Vector: vec}}, UpdatedAt: timestamppb.Now(),
		}}})
	}
	return s
}

func (s *source) Snapshot(ctx context.Context, known func(uint64) bool, fn func(*pb.UserChange) error) error {
	for _, c := range s.changes {
		if known != nil && known(pb.ChangeRevision(c)) {
			continue
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

func (s *source) Revision(context.Context) (uint64, error) { return uint64(len(s.changes)), nil }

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

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// natsCPU returns the CPU seconds the servers have used.
func natsCPU(nodes []*exec.Cmd) float64 {
	var s float64
	for _, n := range nodes {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.Process.Pid))
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

// natsPeakRSS returns the highest peak RSS of a server, in MB.
func natsPeakRSS(nodes []*exec.Cmd) float64 {
	var peak float64
	for _, n := range nodes {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.Process.Pid))
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				peak = max(peak, kb/1024)
			}
		}
	}
	return peak
}

// selfCPU returns this process's CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
