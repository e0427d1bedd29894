package deploy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natsconn"
	"github.com/xplore/faceauth/internal/testenv"
	pb "github.com/xplore/faceauth/proto"
)

// tool returns the path of an external program, skipping the test when it
// is absent outside CI; in CI a missing tool is a failure, so a check is
// never silently dropped there.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is needed in CI to check deploy/ (apt-get install the package that provides it)", name)
		}
		t.Skipf("skipping: %s is not installed", name)
	}
	return path
}

func TestJSONPoliciesParse(t *testing.T) {
	files, _ := filepath.Glob("aws/*.json")
	if len(files) < 3 {
		t.Fatalf("found %d JSON files in deploy/aws, want the IAM, KMS and trust policies", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Version   string
			Statement []struct {
				Effect   string
				Action   any
				Resource any
			}
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if doc.Version != "2012-10-17" || len(doc.Statement) == 0 {
			t.Errorf("%s: want Version 2012-10-17 and at least one statement", f)
		}
		for _, s := range doc.Statement {
			if s.Effect != "Allow" || s.Action == nil {
				t.Errorf("%s: every statement should Allow a listed action", f)
			}
		}
	}
}

// TestIAMPolicyIsLeastPrivilege pins the S3 actions to exactly what the
// s3store uses, so a broader grant is a visible change.
func TestIAMPolicyIsLeastPrivilege(t *testing.T) {
	data, err := os.ReadFile("aws/iam-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Statement []struct{ Action []string } }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range doc.Statement {
		got = append(got, s.Action...)
	}
	want := "s3:ListBucket s3:GetObject s3:PutObject s3:DeleteObject"
	if strings.Join(got, " ") != want {
		t.Errorf("IAM actions = %v, want %s", got, want)
	}
}

func TestShellScriptsParse(t *testing.T) {
	bash := tool(t, "bash")
	files, _ := filepath.Glob("*/*.sh")
	if len(files) == 0 {
		t.Fatal("no scripts found")
	}
	for _, f := range files {
		if out, err := exec.Command(bash, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
}

// TestSystemdUnits runs systemd-analyze verify on the units, with
// ExecStart pointed at a real executable; any warning fails the test.
func TestSystemdUnits(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	dir := t.TempDir()
	exe := filepath.Join(dir, "faceauth-bin")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	units, _ := filepath.Glob("systemd/*.service")
	if len(units) != 2 {
		t.Fatalf("want the central and edged units, found %v", units)
	}
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, must := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=", "Restart=", "User=faceauth"} {
			if !bytes.Contains(data, []byte(must)) {
				t.Errorf("%s lacks %s", u, must)
			}
		}
		s := strings.NewReplacer("/usr/local/bin/central", exe, "/usr/local/bin/edged", exe).Replace(string(data))
		path := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}
}

// TestNginxSite runs `nginx -t` on the site inside a minimal nginx.conf,
// with a throw-away certificate in place of the certbot one.
func TestNginxSite(t *testing.T) {
	nginxSite(t, "nginx/faceauth.conf")
}

// TestNginxReplicas checks the site for several central replicas as
// TestNginxSite does, and that it balances over more than one replica with
// passive health checks and moves failed requests on.
func TestNginxReplicas(t *testing.T) {
	site := nginxSite(t, "nginx/faceauth-replicas.conf")
	if n := strings.Count(site, "max_fails="); n < 2 {
		t.Errorf("the upstream has %d replicas with max_fails, want at least 2", n)
	}
	for _, must := range []string{"fail_timeout=", "proxy_next_upstream error timeout http_502 http_503", "proxy_connect_timeout"} {
		if !strings.Contains(site, must) {
			t.Errorf("the replicas site lacks %s", must)
		}
	}
	if strings.Contains(site, "non_idempotent") {
		t.Error("the replicas site retries POST and DELETE after they were sent: a change could apply twice")
	}
}

// nginxSite runs `nginx -t` on path inside a minimal nginx.conf and
// returns the site's text.
func nginxSite(t *testing.T, path string) string {
	t.Helper()
	nginx := tool(t, "nginx")
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "faceauth.example.com")
	site, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(
		"/etc/letsencrypt/live/faceauth.example.com/fullchain.pem", cert,
		"/etc/letsencrypt/live/faceauth.example.com/privkey.pem", key,
	).Replace(string(site))
	if err := os.WriteFile(filepath.Join(dir, "site.conf"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := "pid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\nevents {}\nhttp {\n access_log off;\n include " + dir + "/site.conf;\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-c", filepath.Join(dir, "nginx.conf"), "-p", dir).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("test is successful")) {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	for _, must := range []string{"client_max_body_size", "X-Forwarded-For", "X-Forwarded-Proto", "ssl_certificate"} {
		if !strings.Contains(string(site), must) {
			t.Errorf("%s lacks %s", path, must)
		}
	}
	return string(site)
}

// TestNATSConfig generates keys with new-edge.sh, checks that the
// permissions it writes are exactly package pb's, loads the
// production nats-server.conf into a real server (TLS included) and runs
// the feed over it: central creates the streams and publishes user data; an
// edge reads it, publishes its own heartbeat and receipts, and may not
// publish user data or speak for another edge.
func TestNATSConfig(t *testing.T) {
	nk := filepath.Join(testenv.RepoRoot(t), ".tools", "bin", "nk")
	if _, err := os.Stat(nk); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: run `make tools`", nk)
		}
		t.Skipf("skipping: %s is missing (make tools)", nk)
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	// site-1 serves two sites, site-2 none.
	for _, args := range [][]string{{"central"}, {"site-1", "--sites", "lobby,hq"}, {"site-2"}} {
		id := args[0]
		cmd := exec.Command("bash", append([]string{"nats/new-edge.sh"}, args...)...)
		cmd.Env = append(os.Environ(), "KEYS="+keys, "CONF="+filepath.Join(dir, "users.conf"), "NK="+nk)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("new-edge.sh %s: %v\n%s", id, err, out)
		}
	}
	cert, key := writeCert(t, dir, "127.0.0.1")
	conf, err := os.ReadFile("nats/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s := strings.NewReplacer(
		"/etc/nats/tls/server.pem", cert,
		"/etc/nats/tls/server-key.pem", key,
		"/etc/nats/tls/ca.pem", cert,
		"/var/lib/nats/jetstream", filepath.Join(dir, "js"),
		"0.0.0.0:4222", "127.0.0.1:"+port,
		"http: 127.0.0.1:8222", "http: 127.0.0.1:"+freePort(t),
	).Replace(string(conf))
	confPath := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(confPath, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(confPath)
	if err != nil {
		t.Fatalf("nats-server rejects the config: %v", err)
	}
	checkPermissions(t, keys, opts, "central", "site-1", "site-2")

	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(id, inbox string) (*nats.Conn, jetstream.JetStream) {
		nc, err := natsconn.Connect(ctx, natsconn.ConnectOptions{
			URL: "tls://127.0.0.1:" + port, Name: id,
			NKeySeedFile: filepath.Join(keys, id+".nk"), CAFile: cert, InboxPrefix: inbox,
		})
		if err != nil {
			t.Fatalf("connect as %s: %v", id, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js
	}

	central, cjs := connect("central", "")
	if err := pb.EnsureStreams(ctx, cjs, pb.StreamOptions{}); err != nil {
		t.Fatalf("central cannot create the streams: %v", err)
	}
	change, _ := proto.Marshal(&pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: "alice", Revision: 1}}})
	if _, err := cjs.PublishMsg(ctx, signedUpsert(change, "alice", 1)); err != nil {
		t.Fatalf("central cannot publish user data: %v", err)
	}
	status, err := central.SubscribeSync(pb.EdgeStatusSubject("*"))
	if err != nil {
		t.Fatal(err)
	}
	if err := central.Flush(); err != nil {
		t.Fatal(err)
	}

	edge, ejs := connect("site-1", pb.EdgeInboxPrefix("site-1"))
	expectFirstUser(ctx, t, ejs, "alice", "")
	if err := uplink.PublishStatus(edge, &pb.EdgeStatus{EdgeId: "site-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := status.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("central did not get the edge's own heartbeat: %v", err)
	}
	if err := uplink.PublishReceipt(ctx, ejs, &pb.DeleteReceipt{EdgeId: "site-1", UserId: "alice", Revision: 2}); err != nil {
		t.Fatalf("the edge cannot publish its receipt: %v", err)
	}
	// Forbidden publishes: the server drops them, so a JetStream publish
	// gets no ack and a plain one never arrives.
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := ejs.Publish(short, testFeedKey.UserSubject("eve", ""), change); err == nil {
		t.Error("an edge could publish user data")
	}
	if err := uplink.PublishStatus(edge, &pb.EdgeStatus{EdgeId: "site-2"}); err == nil {
		if m, err := status.NextMsg(time.Second); err == nil {
			t.Errorf("an edge could publish another edge's heartbeat on %s", m.Subject)
		} else if !errors.Is(err, nats.ErrTimeout) {
			t.Fatal(err)
		}
	}
}

// TestNATSClusterConfig loads deploy/nats/nats-cluster.conf into three
// real servers on loopback (mutual TLS on the routes, client TLS, the
// NKeys of new-edge.sh), creates the feed's streams with three replicas
// through one node as central, and reads a user through another node as
// an edge.
func TestNATSClusterConfig(t *testing.T) {
	nk := filepath.Join(testenv.RepoRoot(t), ".tools", "bin", "nk")
	if _, err := os.Stat(nk); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: run `make tools`", nk)
		}
		t.Skipf("skipping: %s is missing (make tools)", nk)
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	for _, id := range []string{"central", "site-1"} {
		cmd := exec.Command("bash", "nats/new-edge.sh", id)
		cmd.Env = append(os.Environ(), "KEYS="+keys, "CONF="+filepath.Join(dir, "users.conf"), "NK="+nk)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("new-edge.sh %s: %v\n%s", id, err, out)
		}
	}
	cert, key := writeCert(t, dir, "127.0.0.1")
	conf, err := os.ReadFile("nats/nats-cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	type node struct{ name, client, route string }
	var nodes []node
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, node{fmt.Sprintf("faceauth-nats-%d", i), freePort(t), freePort(t)})
	}
	var servers []*server.Server
	var srvLog serverLog
	for i, n := range nodes {
		r := []string{
			"/etc/nats/tls/server.pem", cert, "/etc/nats/tls/server-key.pem", key,
			"/etc/nats/tls/route.pem", cert, "/etc/nats/tls/route-key.pem", key,
			"/etc/nats/tls/ca.pem", cert,
			"/var/lib/nats/jetstream", filepath.Join(dir, n.name),
			"0.0.0.0:4222", "127.0.0.1:" + n.client, "0.0.0.0:6222", "127.0.0.1:" + n.route,
			"http: 127.0.0.1:8222", "http: 127.0.0.1:" + freePort(t),
		}
		for _, m := range nodes {
			r = append(r, m.name+".internal:6222", "127.0.0.1:"+m.route)
		}
		path := filepath.Join(dir, n.name+".conf")
		if err := os.WriteFile(path, []byte(strings.NewReplacer(r...).Replace(string(conf))), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("NATS_SERVER_NAME", n.name) // the variable the config names the node by
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("nats-server rejects the cluster config: %v", err)
		}
		if opts.ServerName != n.name || opts.Cluster.TLSConfig == nil || len(opts.Routes) != 3 {
			t.Fatalf("node %d: server name %q, route TLS %v, %d routes; want %s, TLS, 3", i+1, opts.ServerName, opts.Cluster.TLSConfig != nil, len(opts.Routes), n.name)
		}
		if i == 0 {
			checkPermissions(t, keys, opts, "central", "site-1")
		}
		opts.NoSigs = true
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		// A node that cannot start says why (a port taken meanwhile, say)
		// only through its logger.
		srv.SetLoggerV2(nodeLogger{&srvLog, n.name}, false, false, false)
		go srv.Start()
		t.Cleanup(srv.Shutdown)
		servers = append(servers, srv)
	}
	for i, srv := range servers {
		// Generous: under make test the other packages' tests share the
		// CPU, and a JetStream node with TLS then takes seconds to listen.
		if !srv.ReadyForConnections(time.Minute) {
			t.Fatalf("node %s did not start within a minute; the servers said:\n%s", nodes[i].name, srvLog.String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	connect := func(id, inbox, port string) jetstream.JetStream {
		nc, err := natsconn.Connect(ctx, natsconn.ConnectOptions{
			URL: "tls://127.0.0.1:" + port, Name: id,
			NKeySeedFile: filepath.Join(keys, id+".nk"), CAFile: cert, InboxPrefix: inbox,
		})
		if err != nil {
			t.Fatalf("connect as %s: %v", id, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	cjs := connect("central", "", nodes[0].client)
	// The routes form and elect a JetStream meta leader first.
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		err := pb.EnsureStreams(actx, cjs, pb.StreamOptions{Replicas: 3})
		acancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("central cannot create R3 streams on the cluster: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	change, _ := proto.Marshal(&pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: "alice", Revision: 1}}})
	if _, err := cjs.PublishMsg(ctx, signedUpsert(change, "alice", 1)); err != nil {
		t.Fatalf("central cannot publish user data: %v", err)
	}
	stream, err := cjs.Stream(ctx, pb.UsersStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("users stream: %+v %v, want three replicas", info, err)
	}

	ejs := connect("site-1", pb.EdgeInboxPrefix("site-1"), nodes[2].client)
	expectFirstUser(ctx, t, ejs, "alice", " through another node")
}

// expectFirstUser consumes the users stream as an edge trusting
// testFeedKey and fails unless the first change it reads is user want;
// how says how the edge reached the stream, for the failure message. Like
// edged, it starts Consume again when it fails: on a cluster that has just
// formed, creating a consumer of a new R3 stream can time out.
func expectFirstUser(ctx context.Context, t *testing.T, js jetstream.JetStream, want, how string) {
	t.Helper()
	got := make(chan string, 1)
	failed := make(chan error, 1)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	o := uplink.ConsumeOptions{Keys: pb.TrustKey(testFeedKey.PublicKey()), Scopes: []uplink.Scope{{Name: pb.NoSite}}}
	go func() {
		for cctx.Err() == nil {
			err := uplink.Consume(cctx, js, o, func(ds []uplink.Delivery) error {
				for _, d := range ds {
					if d.Change != nil {
						select {
						case got <- pb.ChangeUserID(d.Change):
						default:
						}
						stop()
						return nil
					}
				}
				return nil
			})
			if err != nil && cctx.Err() == nil {
				select {
				case <-failed:
				default:
				}
				failed <- err
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	select {
	case id := <-got:
		if id != want {
			t.Fatalf("edge read user %q, want %s", id, want)
		}
	case <-ctx.Done():
		var last error
		select {
		case last = <-failed:
		default:
		}
		t.Fatalf("the edge could not read the user stream%s (last error: %v)", how, last)
	}
}

// testFeedKey signs the user changes these tests publish as central.
var testFeedKey = func() *pb.Signer {
	s, err := pb.SignerFromSecret([]byte("the deploy test's feed secret"))
	if err != nil {
		panic(err)
	}
	return s
}()

// signedUpsert is the users-stream message of an encoded upsert, signed
// as central signs it.
func signedUpsert(data []byte, id string, rev uint64) *nats.Msg {
	m := nats.NewMsg(testFeedKey.UserSubject(id, ""))
	m.Data = data
	testFeedKey.Sign(m, pb.OpUpsert, id, rev)
	return m
}

// checkPermissions compares what new-edge.sh granted with what the feed
// package says central and each edge need.
func checkPermissions(t *testing.T, keys string, opts *server.Options, ids ...string) {
	t.Helper()
	byKey := map[string]*server.Permissions{}
	for _, u := range opts.Nkeys {
		byKey[u.Nkey] = u.Permissions
	}
	for _, id := range ids {
		pub, err := os.ReadFile(filepath.Join(keys, id+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		p := byKey[strings.TrimSpace(string(pub))]
		if p == nil || p.Publish == nil || p.Subscribe == nil {
			t.Fatalf("users.conf has no permissions for %s", id)
		}
		want := pb.CentralPermissions()
		if id != "central" {
			// No <id>.sites file: no site.
			b, err := os.ReadFile(filepath.Join(keys, id+".sites"))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			sites, err := pb.ParseSites(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("%s.sites: %v", id, err)
			}
			want = pb.EdgePermissions(id, sites)
		}
		if !slices.Equal(sorted(p.Publish.Allow), sorted(want.Publish)) {
			t.Errorf("%s may publish %v, feed says %v", id, p.Publish.Allow, want.Publish)
		}
		if !slices.Equal(sorted(p.Subscribe.Allow), sorted(want.Subscribe)) {
			t.Errorf("%s may subscribe %v, feed says %v", id, p.Subscribe.Allow, want.Subscribe)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// serverLog keeps test nats-servers' warnings and errors for a failure
// message. It never calls t.Log: the servers' goroutines may still log
// after the test has ended.
type serverLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *serverLog) add(node, level, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, "%s: %s: %s\n", node, level, fmt.Sprintf(format, v...))
}

func (l *serverLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// nodeLogger is one node's server.Logger onto a serverLog.
type nodeLogger struct {
	log  *serverLog
	node string
}

func (l nodeLogger) Noticef(string, ...any)         {}
func (l nodeLogger) Debugf(string, ...any)          {}
func (l nodeLogger) Tracef(string, ...any)          {}
func (l nodeLogger) Warnf(format string, v ...any)  { l.log.add(l.node, "warning", format, v...) }
func (l nodeLogger) Errorf(format string, v ...any) { l.log.add(l.node, "error", format, v...) }
func (l nodeLogger) Fatalf(format string, v ...any) { l.log.add(l.node, "fatal", format, v...) }

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// writeCert writes a self-signed certificate for host (a name or an IP)
// and its key, and returns their paths.
func writeCert(t *testing.T, dir, host string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		// Client auth too: NATS route connections present it both ways.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, host+".pem"), filepath.Join(dir, host+"-key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// TestPrometheusRules checks the alert rules with promtool (Debian's
// prometheus package): they parse, and their unit tests (each alert fires
// on trouble, after its `for`, and not on a healthy system) pass.
func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "faceauth-alerts.yml"},
		{"test", "rules", "faceauth-alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("SUCCESS")) {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestGrafanaDashboard checks that the dashboard is JSON Grafana imports:
// unique panel ids, a Prometheus query on every panel but the rows. That
// each metric it names exists is checked on live processes in
// e2e/ops_test.go.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/faceauth.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/faceauth.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("the dashboard lacks a uid, a title or panels")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
		}
	}
}
