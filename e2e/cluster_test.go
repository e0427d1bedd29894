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
	"github.com/xplore/faceauth/central/httpapi"
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
// JetStream and waits until the cluster has a JetStream meta leader. The
// ports come from freeAddr, which another process may take before a node
// binds it (other tests run beside this one): a node that cannot bind
// makes it try again on new ports, a few times.
func startNATSCluster(t testing.TB) []*natsNode {
	t.Helper()
	bin := toolBin(t, "nats-server")
	var nodes []*natsNode
	for attempt := 1; ; attempt++ {
		var err error
		if nodes, err = tryNATSCluster(t, bin); err == nil {
			break
		}
		for _, n := range nodes {
			if n.p != nil {
				n.p.stop()
			}
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("starting the NATS cluster again on other ports: %v", err)
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

// tryNATSCluster writes the three nodes' configurations on fresh ports and
// starts them; it returns the nodes (those started so far on an error).
func tryNATSCluster(t testing.TB, bin string) ([]*natsNode, error) {
	t.Helper()
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
  # Clients know only the nodes they list, so that the test can take
  # every node a client knows away (see TestClusterFailover).
  no_advertise: true
}
`, n.name, n.client, n.http, filepath.Join(n.dir, "js"), n.route, strings.Join(routes, ", "))
		if err := os.WriteFile(filepath.Join(n.dir, "nats.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := n.tryStart(); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

// start starts the node on its ports and waits until it listens.
func (n *natsNode) start() {
	n.t.Helper()
	if err := n.tryStart(); err != nil {
		n.t.Fatal(err)
	}
}

// tryStart starts the node and waits until it listens; it returns an
// error with the end of its log when the process exits first.
func (n *natsNode) tryStart() error {
	n.t.Helper()
	n.p = startIn(n.t, n.dir, n.name, n.bin, os.Environ(), "-c", filepath.Join(n.dir, "nats.conf"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n.p.exited() {
			return fmt.Errorf("%s exited: %s", n.name, n.p.tail(20))
		}
		nc, err := nats.Connect("nats://"+n.client, nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within 30s", n.name, n.client)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clients returns how many client connections of each name ("central",
// "edge site-1") the node serves, from its /connz; nil when it does not
// answer (it is down).
func (n *natsNode) clients() map[string]int {
	if n.p.exited() {
		return nil
	}
	resp, err := http.Get("http://" + n.http + "/connz?limit=1024")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var c struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if json.NewDecoder(resp.Body).Decode(&c) != nil {
		return nil
	}
	out := map[string]int{}
	for _, cn := range c.Connections {
		out[cn.Name]++
	}
	return out
}

// connectedTo reports how many connections named name the running nodes
// other than except serve.
func connectedTo(nodes []*natsNode, except *natsNode, name string) int {
	n := 0
	for _, node := range nodes {
		if node != except {
			n += node.clients()[name]
		}
	}
	return n
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
// one S3 bucket (versitygw) and three edges, all real binaries, while
// registrations, image additions and deletions go through both replicas in
// turn. Each client knows one node (the nodes do not advertise the others),
// so that each fault is aimed at the clients that must survive it, which
// /connz confirms before it strikes:
//
//  1. Two NATS nodes die, the edges' node and the users stream's leader
//     among them: the stream has no quorum, so the replicas' publishes fail while they stay connected,
//     and the changes confirmed meanwhile reach the stream only because a
//     failed publish makes the publisher reconcile. The edges, with every
//     node they know down, must keep trying until theirs is back. Nothing
//     is restarted before the check, and the publisher's periodic check is
//     set to an hour, so neither a start-up reconciliation nor the safety
//     net hides a lost change.
//  2. The node leading the users stream, which serves both replicas, dies
//     with one replica while changes keep coming; the surviving replica
//     must keep trying until its node is back, and the changes it confirms
//     meanwhile reach the edges through its own reconciliation.
//
// Afterwards every confirmed change is at every edge, nothing was applied
// twice, every edge is in_sync, every deletion has every edge's receipt and
// the users stream is still R3 with every replica current.
func TestClusterFailover(t *testing.T) {
	const bucket = "faceauth-cluster"
	gw := versitygw.Start(t, versitygw.Options{Buckets: []string{bucket}})
	nodes := startNATSCluster(t)
	// The edges know only v, the replicas only w (production clients list
	// every node; an outage of every node a client knows is what a WAN
	// outage at a site looks like).
	v, w, x := nodes[0], nodes[1], nodes[2]
	admin, _ := tokens(t)

	env := []string{"SECRET_KEY=" + secret, "STORE=s3", "S3_BUCKET=" + bucket, "S3_ENDPOINT=" + gw.Endpoint,
		"AWS_REGION=" + gw.Region, "AWS_ACCESS_KEY_ID=" + gw.AccessKey, "AWS_SECRET_ACCESS_KEY=" + gw.SecretKey,
		"NATS_REPLICAS=3", "FEED_CHECK_EVERY=1h"}
	replicas := make([]*centralProc, 2)
	startReplica := func(i int, natsURL string) {
		addr := freeAddr(t)
		if replicas[i] != nil {
			addr = strings.TrimPrefix(replicas[i].url, "http://") // nginx's upstream keeps its address
		}
		p := start(t, fmt.Sprintf("central-%d", i+1), "central", append(env, "NATS_URL="+natsURL), "serve", "--listen", addr, "--data", t.TempDir(),
			"--models-dir", testenv.ModelsDir(t), "--workers", "1", "--log-level", "debug")
		replicas[i] = &centralProc{proc: p, url: "http://" + addr}
		replicas[i].waitReady(replicas[i].url, 2*time.Minute)
	}
	startReplica(0, "nats://"+w.client)
	startReplica(1, "nats://"+w.client)
	var edges []*edge
	for i := range 3 {
		edges = append(edges, startEdge(t, fmt.Sprintf("site-%d", i+1), t.TempDir(), "nats://"+v.client))
	}
	waitFor(t, time.Minute, "the edges to connect to "+v.name+" and the replicas to "+w.name, func() bool {
		return v.clients()["edge site-1"] == 1 && v.clients()["edge site-2"] == 1 && v.clients()["edge site-3"] == 1 &&
			w.clients()["central"] == 2
	})

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
	// the first and the deletion of the second of them, and returns how
	// many were confirmed.
	round := func(from, to int) int {
		var ok int
		for i := from; i < to; i++ {
			if send("register", user(i), imgs[i%len(imgs)]).outcome == confirmed {
				ok++
			}
		}
		if send("add", user(from), wide[from%len(wide)]).outcome == confirmed {
			ok++
		}
		if send("delete", user(from+1), nil).outcome == confirmed {
			ok++
		}
		return ok
	}

	js, err := jetstream.New(natsConnect(t, nodes))
	feed := centralFeed(t)
	if err != nil {
		t.Fatal(err)
	}
	// converged waits until the users stream holds exactly what central's
	// store does (read by the test itself, so an edge that is merely
	// in_sync with an incomplete stream does not pass) and every edge is
	// in_sync past the stream's newest change.
	converged := func(what string) {
		t.Helper()
		waitUntil(t, 2*time.Minute, what, func() string {
			users, err := listUsers(admin, replicas[0].url)
			if err != nil {
				return err.Error()
			}
			mu.Lock()
			var ids []string
			for _, ch := range changes {
				ids = append(ids, ch.user)
			}
			mu.Unlock()
			slices.Sort(ids)
			ids = slices.Compact(ids)
			held, err := streamUsers(js, feed, ids)
			if err != nil {
				return "read the users stream: " + err.Error()
			}
			var newest uint64
			for id, e := range held {
				newest = max(newest, e.rev)
				if u, ok := users[id]; !e.tombstone && !ok {
					return fmt.Sprintf("the users stream holds %s (revision %d), whom central deleted", id, e.rev)
				} else if ok && !e.tombstone && e.rev != u.Revision {
					return fmt.Sprintf("the users stream holds %s at revision %d, central at %d", id, e.rev, u.Revision)
				}
			}
			for id, u := range users {
				if e, ok := held[id]; !ok || e.tombstone {
					return fmt.Sprintf("central holds %s at revision %d, the users stream does not: a confirmed change never reached the feed", id, u.Revision)
				}
			}
			return edgesBehind(admin, replicas[0].url, len(edges), newest)
		})
	}

	round(0, 4)
	converged("the first changes to reach every edge")

	// Fault 1: two of three NATS nodes die, the edges' node among them.
	// The users stream has no quorum; the replicas stay connected to w.
	// v leads the stream: a leader that survived would keep the publishes
	// in its log and commit them once the quorum is back, so that no
	// publish would be lost for good.
	moveLeader(t, nodes, v)
	v.p.kill9()
	x.p.kill9()
	if n := round(4, 8); n == 0 {
		t.Fatal("no change was confirmed while the users stream had no quorum: the fault proves nothing")
	}
	if w.clients()["central"] != 2 {
		t.Fatal("a replica lost its connection to " + w.name + ": its reconnection, not its failed publishes, would make it reconcile")
	}
	v.start()
	x.start()
	for _, e := range edges {
		waitFor(t, time.Minute, "edge "+e.id+" to reconnect to "+v.name+" once it is back (an edge must keep trying through an outage of every node it knows)", func() bool {
			return v.clients()["edge "+e.id] == 1
		})
	}
	converged("the changes confirmed while the users stream had no quorum to reach every edge, with no central restarted (a failed publish must make the publisher reconcile)")

	// Fault 2: w, leading the users stream and serving both replicas, dies
	// with one replica while changes keep coming.
	if w.clients()["central"] != 2 {
		t.Fatal("the replicas are not both on " + w.name + ": its death would not test their reconnection")
	}
	moveLeader(t, nodes, w)
	mu.Lock()
	before := len(changes)
	mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		round(8, 12)
		round(12, 16)
	}()
	waitFor(t, time.Minute, "the workload to reach the faults", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(changes) >= before+4
	})
	w.p.kill9()
	replicas[1].kill9()
	<-done
	// The other replica's start reconciles what the store holds up to
	// then; what central-1 confirms afterwards reaches the edges only
	// through its own publisher, once it has reconnected.
	startReplica(1, natsURLs(nodes))
	round(16, 20)
	w.start()
	waitFor(t, time.Minute, "both replicas to be connected once "+w.name+" is back (central-1 must keep trying through an outage of every node it knows)", func() bool {
		return connectedTo(nodes, nil, "central") == 2
	})
	round(20, 24)

	// Central's final state, from the store through a replica.
	finalUsers, err := listUsers(admin, replicas[0].url)
	if err != nil {
		t.Fatal(err)
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

	// Every edge in_sync, past the last confirmed change, and the stream
	// holding exactly central's state.
	converged("every confirmed change to reach every edge")
	waitUntil(t, time.Minute, "every edge past the last confirmed change", func() string {
		return edgesBehind(admin, replicas[0].url, len(edges), maxRev)
	})

	// Every deletion has every edge's receipt.
	waitFor(t, time.Minute, "every edge's receipt for every deletion", func() bool {
		status, body := httpDo(t, authed(t, http.MethodGet, replicas[1].url+"/api/deletions?limit=1000", admin))
		var dr httpapi.DeletionsResponse
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

// listUsers returns central's users by id, through the replica at url.
func listUsers(admin, url string) (map[string]central.UserSummary, error) {
	req, err := http.NewRequest(http.MethodGet, url+"/api/users?limit=1000", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer resp.Body.Close()
	var lr httpapi.ListResponse
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&lr) != nil {
		return nil, fmt.Errorf("list users: status %d", resp.StatusCode)
	}
	users := map[string]central.UserSummary{}
	for _, u := range lr.Users {
		users[u.UserID] = u
	}
	return users, nil
}

// edgesInSync returns "" when central at url reports n edges, every one
// in_sync with at least revision applied, or else what is not.
func edgesBehind(admin, url string, n int, revision uint64) string {
	req, err := http.NewRequest(http.MethodGet, url+"/api/edges", nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "GET /api/edges: " + err.Error()
	}
	defer resp.Body.Close()
	var er httpapi.EdgesResponse
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&er) != nil {
		return fmt.Sprintf("GET /api/edges: status %d", resp.StatusCode)
	}
	if len(er.Edges) != n {
		return fmt.Sprintf("central knows %d edges, not %d", len(er.Edges), n)
	}
	for _, e := range er.Edges {
		if e.State != fleet.StateInSync || e.AppliedRevision < revision {
			return fmt.Sprintf("edge %s is %s at revision %d, not in_sync at %d", e.ID, e.State, e.AppliedRevision, revision)
		}
	}
	return ""
}

// streamEntry is what the users stream holds of one user: the newest
// message's revision and whether it is a tombstone.
type streamEntry struct {
	rev       uint64
	tombstone bool
}

// streamUsers returns what the users stream holds of each of ids, read
// with the stream's last-message-for-subject API (no consumer).
func streamUsers(js jetstream.JetStream, feed *pb.Signer, ids []string) (map[string]streamEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, pb.UsersStream)
	if err != nil {
		return nil, fmt.Errorf("stream info: %w", err)
	}
	out := map[string]streamEntry{}
	for _, id := range ids {
		m, err := s.GetLastMsgForSubject(ctx, feed.UserSubject(id, ""))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("the last message of %s: %w", id, err)
		}
		rev, err := pb.HeaderRevision(m.Header)
		if err != nil {
			return nil, fmt.Errorf("the last message of %s: %w", id, err)
		}
		out[id] = streamEntry{rev: rev, tombstone: m.Header.Get(pb.OpHeader) == pb.OpDelete}
	}
	return out, nil
}

// waitUntil polls cond until it returns "" or the timeout passes, and then
// fails with the last thing cond said was missing.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing := cond()
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, missing)
		}
		time.Sleep(100 * time.Millisecond)
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
