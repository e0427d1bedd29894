package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/internal/facetest"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/internal/versitygw"
	pb "github.com/xplore/faceauth/proto"
)

// natsNode is one nats-server process of a three-node cluster on
// loopback; it restarts on the same ports and JetStream folder.
type natsNode struct {
	t      testing.TB
	bin    string
	name   string
	client string // host:port of clients
	route  string // host:port of the cluster routes
	http   string // host:port of the monitoring endpoint
	dir    string
	p      *proc
}

// startNATSCluster starts three clustered nats-server processes with
// JetStream and waits until the cluster has a JetStream meta leader.
func startNATSCluster(t testing.TB) []*natsNode {
	t.Helper()
	bin := toolBin(t, "nats-server")
	nodes := make([]*natsNode, 3)
	for i := range nodes {
		nodes[i] = &natsNode{t: t, bin: bin, name: fmt.Sprintf("nats-%d", i+1), client: freeAddr(t), route: freeAddr(t), http: freeAddr(t), dir: t.TempDir()}
	}
	var routes []string
	for _, n := range nodes {
		routes = append(routes, "nats-route://"+n.route)
	}
	for _, n := range nodes {
		conf := fmt.Sprintf(`server_name: %s
listen: %s
http: %s
jetstream { store_dir: %q }
cluster {
  name: faceauth-test
  listen: %s
  routes: [%s]
}
`, n.name, n.client, n.http, filepath.Join(n.dir, "js"), n.route, strings.Join(routes, ", "))
		if err := os.WriteFile(filepath.Join(n.dir, "nats.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		n.start()
	}
	nc := natsConnect(t, nodes)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the NATS cluster to elect a JetStream leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
	return nodes
}

func (n *natsNode) start() {
	n.t.Helper()
	n.p = startIn(n.t, n.dir, n.name, n.bin, os.Environ(), "-c", filepath.Join(n.dir, "nats.conf"))
	waitFor(n.t, 30*time.Second, n.name+" to listen", func() bool {
		if n.p.exited() {
			n.t.Fatalf("%s exited: %s", n.name, n.p.tail(20))
		}
		nc, err := nats.Connect("nats://"+n.client, nats.Timeout(time.Second))
		if err != nil {
			return false
		}
		nc.Close()
		return true
	})
}

// busiestNode returns the node with the most client connections.
func busiestNode(t testing.TB, nodes []*natsNode) *natsNode {
	t.Helper()
	best, most := nodes[0], -1
	for _, n := range nodes {
		resp, err := http.Get("http://" + n.http + "/connz")
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			NumConnections int `json:"num_connections"`
		}
		err = json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if c.NumConnections > most {
			best, most = n, c.NumConnections
		}
	}
	return best
}

// moveLeader asks the users stream's leader to step down in favour of n
// and waits until n leads it.
func moveLeader(t testing.TB, nodes []*natsNode, n *natsNode) {
	t.Helper()
	nc, err := nats.Connect(natsURLs(nodes))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitFor(t, time.Minute, n.name+" to lead the users stream", func() bool {
		if streamLeader(t, nodes) == n {
			return true
		}
		req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, n.name)
		nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+pb.UsersStream, []byte(req), 5*time.Second)
		time.Sleep(500 * time.Millisecond) // the election
		return streamLeader(t, nodes) == n
	})
}

// streamLeader returns the node leading the users stream.
func streamLeader(t testing.TB, nodes []*natsNode) *natsNode {
	t.Helper()
	nc, err := nats.Connect(natsURLs(nodes))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, pb.UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("users stream info: %v", err)
	}
	for _, n := range nodes {
		if n.name == info.Cluster.Leader {
			return n
		}
	}
	t.Fatalf("the users stream's leader %q is none of the nodes", info.Cluster.Leader)
	return nil
}

// natsURLs is the comma-separated client URL list of the cluster.
func natsURLs(nodes []*natsNode) string {
	var u []string
	for _, n := range nodes {
		u = append(u, "nats://"+n.client)
	}
	return strings.Join(u, ",")
}

func natsConnect(t testing.TB, nodes []*natsNode) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natsURLs(nodes), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// outcome is what a client knows about one change it sent.
type outcome int

const (
	confirmed outcome = iota // a 2xx answer
	refused                  // an answer that says it was not applied (no connection, 4xx)
	unknown                  // no answer: the replica died with the request in flight
)

// change is one request of the workload and its outcome.
type change struct {
	op       string // register, add, delete
	user     string
	replica  int
	outcome  outcome
	revision uint64
}

// TestClusterFailover runs the production topology on loopback: three
// clustered nats-server processes (R3 streams), two central replicas on
// one S3 bucket (versitygw) and three edges, all real binaries. While
// registrations, image additions and deletions go through both replicas in
// turn, it kill -9s one NATS node and one central replica and later
// restarts them. Then every confirmed change is at every edge, nothing was
// applied twice, every edge is in_sync, every deletion has every edge's
// receipt and the users stream is still R3 with every replica current.
func TestClusterFailover(t *testing.T) {
	const bucket = "faceauth-cluster"
	gw := versitygw.Start(t, versitygw.Options{Buckets: []string{bucket}})
	nodes := startNATSCluster(t)
	admin, _ := tokens(t)

	env := []string{"SECRET_KEY=" + secret, "STORE=s3", "S3_BUCKET=" + bucket, "S3_ENDPOINT=" + gw.Endpoint,
		"AWS_REGION=" + gw.Region, "AWS_ACCESS_KEY_ID=" + gw.AccessKey, "AWS_SECRET_ACCESS_KEY=" + gw.SecretKey,
		"NATS_URL=" + natsURLs(nodes), "NATS_REPLICAS=3"}
	replicas := make([]*centralProc, 2)
	startReplica := func(i int) {
		addr := freeAddr(t)
		if replicas[i] != nil {
			addr = strings.TrimPrefix(replicas[i].url, "http://") // nginx's upstream keeps its address
		}
		p := start(t, fmt.Sprintf("central-%d", i+1), "central", env, "serve", "--listen", addr, "--data", t.TempDir(),
			"--models-dir", testenv.ModelsDir(t), "--workers", "1", "--log-level", "debug")
		replicas[i] = &centralProc{proc: p, url: "http://" + addr}
		replicas[i].waitReady(replicas[i].url, 2*time.Minute)
	}
	startReplica(0)
	startReplica(1)
	var edges []*edge
	for i := range 3 {
		edges = append(edges, startEdge(t, fmt.Sprintf("site-%d", i+1), t.TempDir(), natsURLs(nodes)))
	}

	// Faces: the pinned samples, and a wider crop of each for additions.
	samples := []string{"sample1.jpg", "sample2.jpg", "sample3.jpg", "sample4.jpg", "sample5.jpg", "sample6.jpg"}
	var imgs, wide [][]byte
	for _, s := range samples {
		imgs = append(imgs, frame(t, s))
		wide = append(wide, facetest.Frame(t, testEngine(t), s, 640, 480, 3))
	}

	// The workload: each step one request, to the replicas in turn.
	var (
		mu      sync.Mutex
		changes []*change
		next    int
	)
	send := func(op, user string, img []byte) *change {
		mu.Lock()
		ch := &change{op: op, user: user, replica: next % 2}
		next++
		mu.Unlock()
		url := replicas[ch.replica].url
		var req *http.Request
		switch op {
		case "register":
			req = request(t, url+"/api/register", admin, map[string]string{"user_id": user, "name": "Cluster " + user}, img)
		case "add":
			req = request(t, url+"/api/users/"+user+"/images", admin, nil, img)
		case "delete":
			req, _ = http.NewRequest(http.MethodDelete, url+"/api/users/"+user, nil)
			req.Header.Set("Authorization", "Bearer "+admin)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		switch {
		case err != nil && isRefused(err):
			ch.outcome = refused
		case err != nil:
			ch.outcome = unknown
		case resp.StatusCode/100 == 2:
			var r struct{ Revision uint64 }
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			ch.outcome, ch.revision = confirmed, r.Revision
		default:
			resp.Body.Close()
			// A 503 while the store or the feed is failing over may
			// still have written: only a 4xx is a clean refusal.
			ch.outcome = unknown
			if resp.StatusCode/100 == 4 {
				ch.outcome = refused
			}
		}
		mu.Lock()
		changes = append(changes, ch)
		mu.Unlock()
		return ch
	}
	user := func(i int) string { return fmt.Sprintf("cl-%02d", i) }
	// round runs registrations of users [from, to), then an addition to
	// the first and the deletion of the second of them.
	round := func(from, to int) {
		for i := from; i < to; i++ {
			send("register", user(i), imgs[i%len(imgs)])
		}
		send("add", user(from), wide[from%len(wide)])
		send("delete", user(from+1), nil)
	}

	round(0, 4)
	// Faults while changes keep coming: the workload runs on while one
	// NATS node and one central replica are killed, as a power cut would.
	done := make(chan struct{})
	go func() {
		defer close(done)
		round(4, 8)
		round(8, 12)
	}()
	waitFor(t, time.Minute, "the workload to reach the faults", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(changes) >= 8
	})
	// The node most clients are connected to, made the leader of the
	// users stream: its death makes clients reconnect elsewhere and the
	// stream elect another leader, with changes in flight.
	victim := busiestNode(t, nodes)
	moveLeader(t, nodes, victim)
	victim.p.kill9()
	replicas[1].kill9()
	<-done
	round(12, 16) // one replica and two NATS nodes
	victim.start()
	startReplica(1)
	round(16, 20)

	// Central's final state, from the store through a replica.
	finalUsers := map[string]central.UserSummary{}
	{
		status, body := httpDo(t, authed(t, http.MethodGet, replicas[0].url+"/api/users?limit=1000", admin))
		var lr central.ListResponse
		if status != http.StatusOK || json.Unmarshal(body, &lr) != nil {
			t.Fatalf("list users: %d %s", status, body)
		}
		for _, u := range lr.Users {
			finalUsers[u.UserID] = u
		}
	}

	// Nothing confirmed is lost, nothing applied twice.
	adds := map[string][2]int{} // user: confirmed, unknown additions
	var confirmedN, maxRev uint64
	for _, ch := range changes {
		u, present := finalUsers[ch.user]
		if ch.outcome == confirmed {
			confirmedN++
			maxRev = max(maxRev, ch.revision)
		}
		switch {
		case ch.op == "add":
			a := adds[ch.user]
			if ch.outcome == confirmed {
				a[0]++
			} else if ch.outcome == unknown {
				a[1]++
			}
			adds[ch.user] = a
		case ch.outcome != confirmed:
		case ch.op == "delete" && present:
			t.Errorf("the deletion of %s was confirmed (revision %d) but the user is there", ch.user, ch.revision)
		case ch.op == "register" && !present && !deletedLater(changes, ch):
			t.Errorf("the registration of %s was confirmed (revision %d) but the user is gone", ch.user, ch.revision)
		case ch.op == "register" && present && u.Revision < ch.revision:
			t.Errorf("%s holds revision %d, older than its confirmed registration's %d", ch.user, u.Revision, ch.revision)
		}
	}
	for id, u := range finalUsers {
		a := adds[id]
		if u.References < 1+a[0] || u.References > 1+a[0]+a[1] {
			t.Errorf("%s has %d images; %d additions were confirmed and %d are unknown: a change was lost or applied twice", id, u.References, a[0], a[1])
		}
	}
	if confirmedN < uint64(len(changes))/2 {
		t.Fatalf("only %d of %d changes were confirmed: the faults would prove little", confirmedN, len(changes))
	}
	t.Logf("%d changes, %d confirmed, %d users left, highest confirmed revision %d", len(changes), confirmedN, len(finalUsers), maxRev)

	// Every edge in_sync, past the last confirmed change.
	waitFor(t, 2*time.Minute, "every edge to be in_sync past the last confirmed change", func() bool {
		status, body := httpDo(t, authed(t, http.MethodGet, replicas[0].url+"/api/edges", admin))
		var er central.EdgesResponse
		if status != http.StatusOK || json.Unmarshal(body, &er) != nil || len(er.Edges) != len(edges) {
			return false
		}
		for _, e := range er.Edges {
			if e.State != fleet.StateInSync || e.AppliedRevision < maxRev {
				return false
			}
		}
		return true
	})

	// Every deletion has every edge's receipt.
	waitFor(t, time.Minute, "every edge's receipt for every deletion", func() bool {
		status, body := httpDo(t, authed(t, http.MethodGet, replicas[1].url+"/api/deletions?limit=1000", admin))
		var dr central.DeletionsResponse
		if status != http.StatusOK || json.Unmarshal(body, &dr) != nil {
			return false
		}
		deleted := map[string]bool{}
		for _, d := range dr.Deletions {
			if len(d.Pending) > 0 || len(d.Purged) != len(edges) {
				return false
			}
			deleted[d.UserID] = true
		}
		for _, ch := range changes {
			if ch.op == "delete" && ch.outcome == confirmed && !deleted[ch.user] {
				return false
			}
		}
		return true
	})

	// The users stream is still R3, every replica current.
	js, err := jetstream.New(natsConnect(t, nodes))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the users stream's three replicas to be current", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, pb.UsersStream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return false
			}
		}
		return true
	})

	// Each edge's file holds exactly central's users at their revisions.
	want := map[string]uint64{}
	for id, u := range finalUsers {
		want[id] = u.Revision
	}
	for _, e := range edges {
		e.stop()
		got := inspect(t, e.data).Revisions
		if got == nil {
			got = map[string]uint64{}
		}
		if !mapsEqual(got, want) {
			t.Errorf("edge %s holds %v, central %v", e.id, got, want)
		}
	}
}

// deletedLater reports whether a confirmed deletion of ch's user follows
// ch in changes.
func deletedLater(changes []*change, ch *change) bool {
	i := slices.Index(changes, ch)
	for _, c := range changes[i+1:] {
		if c.user == ch.user && c.op == "delete" && c.outcome != refused {
			return true
		}
	}
	return false
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// isRefused reports a connection the server refused: the request never
// reached a process.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// authed is a request with the admin token and no body.
func authed(t testing.TB, method, url, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}
