package main

import (
	"bufio"
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natsconn"
	pb "github.com/xplore/faceauth/proto"
)

// natsContext returns a cli.Context with the NATS flags set to args.
func natsContext(t *testing.T, args ...string) *cli.Context {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	for _, f := range natsFlags() {
		if err := f.Apply(fs); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(cli.NewApp(), fs, nil)
}

// writeEdgeKey makes an NKey for edge id, writes id.pub into dir and
// returns the seed file.
func writeEdgeKey(t *testing.T, dir, id string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	if err := os.WriteFile(filepath.Join(dir, id+".pub"), []byte(pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seedFile := filepath.Join(t.TempDir(), id+".nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return seedFile
}

func TestEmbeddedNATSWithEdgeKeys(t *testing.T) {
	keys := t.TempDir()
	seed := writeEdgeKey(t, keys, "site-1")
	writeEdgeKey(t, keys, "central") // new-edge.sh keeps central's key there too: skipped
	data := t.TempDir()
	c := natsContext(t, "--nats-listen", "127.0.0.1:0", "--nats-edge-keys", keys)
	log := slog.New(slog.DiscardHandler)
	n, err := openNATS(t.Context(), c, data, log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := os.Stat(filepath.Join(data, "nats")); err != nil {
		t.Fatalf("store not under the data folder: %v", err)
	}
	// Central's own connection (in process) manages the streams.
	js, _ := jetstream.New(n.nc)
	if err := pb.EnsureStreams(t.Context(), js, streamOptions(c)); err != nil {
		t.Fatal(err)
	}
	url := n.srv.ClientURL()
	// Anonymous clients are refused; the edge's key works with its rights.
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("anonymous client accepted")
	}
	enc, err := natsconn.Connect(t.Context(), natsconn.ConnectOptions{URL: url, NKeySeedFile: seed, InboxPrefix: pb.EdgeInboxPrefix("site-1")})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	ejs, _ := jetstream.New(enc)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := uplink.ReadStreamState(ctx, ejs); err != nil {
		t.Fatalf("edge reads the stream state: %v", err)
	}
	if err := uplink.PublishReceipt(ctx, ejs, &pb.DeleteReceipt{EdgeId: "site-1", UserId: "u", Revision: 1}); err != nil {
		t.Fatalf("edge receipt: %v", err)
	}
	short, cancel2 := context.WithTimeout(t.Context(), time.Second)
	defer cancel2()
	if err := pb.EnsureStreams(short, ejs, pb.StreamOptions{}); err == nil {
		t.Fatal("the edge may change streams")
	}
}

func TestEmbeddedOptions(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	badKeys := t.TempDir()
	os.WriteFile(filepath.Join(badKeys, "site-1.pub"), []byte("not a key"), 0o644)
	badID := t.TempDir()
	writeEdgeKey(t, badID, "bad.id")
	goodKeys := t.TempDir()
	writeEdgeKey(t, goodKeys, "site-1")
	tests := []struct {
		name    string
		args    []string
		users   int // central's NKey and the local edge's always
		wantErr string
	}{
		{"loopback, zero configuration", nil, 2, ""},
		{"user and password", []string{"--nats-user", "c", "--nats-password", "p"}, 3, ""},
		{"two local edges", []string{"--nats-local-edges", "a, b"}, 3, ""},
		{"no local edge", []string{"--nats-local-edges", ""}, 1, ""},
		{"edge keys", []string{"--nats-edge-keys", goodKeys}, 3, ""},
		{"beyond loopback with edge keys", []string{"--nats-listen", "0.0.0.0:4222", "--nats-edge-keys", goodKeys}, 3, ""},
		{"beyond loopback without edge keys", []string{"--nats-listen", "0.0.0.0:4222"}, 0, "set NATS_EDGE_KEYS"},
		{"bad local edge id", []string{"--nats-local-edges", "a.b"}, 0, "NATS_LOCAL_EDGES"},
		{"empty key folder", []string{"--nats-edge-keys", t.TempDir()}, 0, "no <edge-id>.pub"},
		{"bad key", []string{"--nats-edge-keys", badKeys}, 0, "NKey user public key"},
		{"bad edge id", []string{"--nats-edge-keys", badID}, 0, "edge id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			o, err := embeddedOptions(natsContext(t, tc.args...), data, log)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(o.Users) != tc.users || o.StoreDir != filepath.Join(data, "nats") {
				t.Fatalf("options %+v", o)
			}
			// The generated credentials are the owner's alone, and the
			// same on the next start.
			fi, err := os.Stat(centralSeedFile(data))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("central's seed: %v %v", fi, err)
			}
			o2, err := embeddedOptions(natsContext(t, tc.args...), data, log)
			if err != nil || o2.Users[len(o2.Users)-1].NKey != o.Users[len(o.Users)-1].NKey {
				t.Fatalf("credentials changed on the second start: %v", err)
			}
		})
	}
}

// TestEmbeddedNATSAuthByDefault starts the embedded server as a default
// `central serve` does: the server announces that authentication is
// required, a client without credentials is refused, and the generated
// local edge credentials read the feed but cannot write it.
func TestEmbeddedNATSAuthByDefault(t *testing.T) {
	data := t.TempDir()
	c := natsContext(t, "--nats-listen", "127.0.0.1:0")
	n, err := openNATS(t.Context(), c, data, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	js, _ := jetstream.New(n.nc)
	if err := pb.EnsureStreams(t.Context(), js, pb.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	url := n.srv.ClientURL()

	// The server's INFO, the first line it sends, says auth is required.
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "nats://"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	info, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if err != nil || !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"auth_required":true`) {
		t.Fatalf("INFO = %q, %v", info, err)
	}
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("a client without credentials was accepted")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("anonymous connect: %v", err)
	}

	// The local edge's generated seed, as `make run` passes it.
	seed := filepath.Join(data, localCredsDir, "local-edge.nk")
	if fi, err := os.Stat(seed); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("local edge seed: %v %v", fi, err)
	}
	asyncErrs := make(chan error, 4)
	enc, err := natsconn.Connect(t.Context(), natsconn.ConnectOptions{URL: url, NKeySeedFile: seed, InboxPrefix: pb.EdgeInboxPrefix("local-edge")})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	enc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErrs <- err })
	ejs, _ := jetstream.New(enc)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := uplink.ReadStreamState(ctx, ejs); err != nil {
		t.Fatalf("the local edge cannot read the feed: %v", err)
	}
	if err := enc.Publish(pb.UserSubject([]byte("any subject key"), "mallory", ""), []byte("x")); err != nil {
		t.Fatal(err)
	}
	enc.Flush()
	select {
	case err := <-asyncErrs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("publish on the feed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the local edge published on the feed without a permissions violation")
	}
}

func TestNATSClientURL(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "nats://127.0.0.1:4222"},
		{[]string{"--nats-listen", "0.0.0.0:4333", "--nats-tls-cert", "c.pem"}, "tls://127.0.0.1:4333"},
		{[]string{"--nats-listen", "10.1.2.3:4333"}, "nats://10.1.2.3:4333"},
		{[]string{"--nats-url", "tls://nats.example:4222"}, "tls://nats.example:4222"},
	}
	for _, tc := range tests {
		if got := natsClientURL(natsContext(t, tc.args...)); got != tc.want {
			t.Errorf("natsClientURL(%v) = %q, want %q", tc.args, got, tc.want)
		}
	}
	for listen, want := range map[string]bool{"127.0.0.1:4222": true, "localhost:1": true, "[::1]:4222": true, "0.0.0.0:4222": false, "10.0.0.1:4222": false} {
		if isLoopback(listen) != want {
			t.Errorf("isLoopback(%q) != %v", listen, want)
		}
	}
}

// TestEdgeSitesFiles: an edge's permissions name the sites of its
// <edge-id>.sites file, beside its .pub in NATS_EDGE_KEYS or its .nk for a
// local edge; no file means only the users of no site, and a file naming a
// reserved or malformed site stops central with the file's name.
func TestEdgeSitesFiles(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	keys := t.TempDir()
	writeEdgeKey(t, keys, "site-1")
	writeEdgeKey(t, keys, "site-2")
	os.WriteFile(filepath.Join(keys, "site-1.sites"), []byte("lobby, hq\nlobby\n"), 0o644)
	bad := t.TempDir()
	writeEdgeKey(t, bad, "site-3")
	os.WriteFile(filepath.Join(bad, "site-3.sites"), []byte("_all"), 0o644)

	data := t.TempDir()
	os.MkdirAll(filepath.Join(data, localCredsDir), 0o700)
	os.WriteFile(filepath.Join(data, localCredsDir, "door.sites"), []byte("hq"), 0o600)
	o, err := embeddedOptions(natsContext(t, "--nats-edge-keys", keys, "--nats-local-edges", "door,plain"), data, log)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"site-1": {"hq", "lobby"}, "site-2": nil, "door": {"hq"}, "plain": nil}
	seen := 0
	for _, u := range o.Users {
		for id, sites := range want {
			if slices.Contains(u.Subscribe, pb.EdgeInboxPrefix(id)+".>") {
				seen++
				if p := pb.EdgePermissions(id, sites); !slices.Equal(u.Publish, p.Publish) {
					t.Errorf("%s may publish %v, want %v", id, u.Publish, p.Publish)
				}
			}
		}
	}
	if seen != len(want) {
		t.Fatalf("found %d of the %d edges among the users", seen, len(want))
	}
	if _, err := embeddedOptions(natsContext(t, "--nats-edge-keys", bad), t.TempDir(), log); err == nil || !strings.Contains(err.Error(), "site-3.sites") {
		t.Fatalf("a sites file naming _all: %v, want an error naming the file", err)
	}
}
