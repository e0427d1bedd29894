package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/natsd"
	"github.com/xplore/faceauth/cmd/internal/natsflags"
	"github.com/xplore/faceauth/internal/natsconn"
	pb "github.com/xplore/faceauth/proto"
)

// natsFlags are the change feed's settings, shared by serve and resync.
// docs/sync.md explains them.
func natsFlags() []cli.Flag {
	return append(natsflags.Flags("", "external NATS server URL(s), comma-separated; unset: run the embedded server"),
		&cli.IntFlag{Name: "nats-replicas", EnvVars: []string{"NATS_REPLICAS"}, Value: 1, Usage: "stream replicas on a NATS cluster"},
		&cli.StringFlag{Name: "nats-listen", EnvVars: []string{"NATS_LISTEN"}, Value: natsd.DefaultListen, Usage: "embedded NATS: listen address"},
		&cli.StringFlag{Name: "nats-store", EnvVars: []string{"NATS_STORE_DIR"}, Usage: "embedded NATS: JetStream folder (default <data>/nats)"},
		&cli.StringFlag{Name: "nats-edge-keys", EnvVars: []string{"NATS_EDGE_KEYS"}, Usage: "embedded NATS: folder of <edge-id>.pub NKey public keys of the edges, each with its own permissions, for the sites listed in its <edge-id>.sites (none: only the users of no site); required to listen beyond loopback"},
		&cli.StringFlag{Name: "nats-local-edges", EnvVars: []string{"NATS_LOCAL_EDGES"}, Value: "local-edge", Usage: "embedded NATS: comma-separated ids of edges on this host; each gets a generated NKey seed <data>/" + localCredsDir + "/<edge-id>.nk (mode 0600) with its edge permissions, for the sites listed in <edge-id>.sites beside it (none: only the users of no site)"},
		&cli.StringFlag{Name: "nats-tls-cert", EnvVars: []string{"NATS_TLS_CERT"}, Usage: "embedded NATS: server certificate file (clients must use TLS)"},
		&cli.StringFlag{Name: "nats-tls-key", EnvVars: []string{"NATS_TLS_KEY"}, Usage: "embedded NATS: server key file"},
		&cli.StringFlag{Name: "nats-tls-ca", EnvVars: []string{"NATS_TLS_CA"}, Usage: "embedded NATS: CA of client certificates (clients must present one)"},
	)
}

// natsConn is central's NATS connection and, when it runs one, the
// embedded server.
type natsConn struct {
	nc  *nats.Conn
	srv *natsd.Server
}

// Close drains the connection and stops the embedded server.
func (n *natsConn) Close() {
	n.nc.Close()
	if n.srv != nil {
		n.srv.Shutdown()
	}
}

// streamOptions returns the streams' settings from the flags.
func streamOptions(c *cli.Context) pb.StreamOptions {
	return pb.StreamOptions{Replicas: c.Int("nats-replicas")}
}

// clientOptions returns the client settings from the flags. Without
// credentials of its own, an admin command reaching the embedded server
// uses central's generated NKey in the data folder.
func clientOptions(c *cli.Context, url string, log *slog.Logger) natsconn.ConnectOptions {
	o := natsflags.Options(c)
	external := o.URL != ""
	o.URL, o.Name, o.Log = url, "central", log
	if o.User == "" && o.NKeySeedFile == "" && o.CredsFile == "" && !external {
		if seed := centralSeedFile(c.String("data")); fileExists(seed) {
			o.NKeySeedFile = seed
		}
	}
	return o
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// localCredsDir is the folder of central's data folder that holds the
// NATS credentials serve generates for the embedded server: central's own
// NKey seed and one per local edge (--nats-local-edges).
const localCredsDir = "nats-auth"

// centralSeedFile is the generated NKey seed of central's own NATS user.
func centralSeedFile(dataDir string) string {
	return filepath.Join(dataDir, localCredsDir, "central.nk")
}

// openNATS connects to the NATS server named by --nats-url, or starts the
// embedded one (serve=true) in dataDir/nats. A connection to an external
// server that is down is not an error: it connects when the server is up.
func openNATS(ctx context.Context, c *cli.Context, dataDir string, log *slog.Logger) (*natsConn, error) {
	if url := natsflags.URL(c); url != "" {
		nc, err := natsconn.Connect(ctx, clientOptions(c, url, log))
		if err != nil {
			return nil, err
		}
		return &natsConn{nc: nc}, nil
	}
	opts, err := embeddedOptions(c, dataDir, log)
	if err != nil {
		return nil, err
	}
	srv, err := natsd.Start(ctx, opts)
	if err != nil {
		return nil, faceauth.Wrap(err, faceauth.KindUnavailable, "nats_start",
			"The embedded NATS server did not start on %s; set NATS_LISTEN to a free address or NATS_URL to an external server.", opts.Listen)
	}
	// Central's own in-process connection uses its generated NKey.
	co := natsconn.ConnectOptions{URL: srv.ClientURL(), Name: "central", InProcess: srv, NKeySeedFile: centralSeedFile(dataDir), Log: log}
	nc, err := natsconn.Connect(ctx, co)
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	log.Info("embedded NATS started", "url", srv.ClientURL(), "store", opts.StoreDir, "users", len(opts.Users),
		"credentials", filepath.Join(dataDir, localCredsDir), "tls", opts.TLSCert != "")
	return &natsConn{nc: nc, srv: srv}, nil
}

// embeddedOptions turns the flags into the embedded server's options. The
// server always requires authentication: central's own NKey and one per
// local edge are generated in dataDir on first start, so a local setup
// needs no configuration and a process without those files can neither
// read nor write the feed. Listening beyond loopback also needs the
// remote edges' keys (NATS_EDGE_KEYS) or a NATS_USER.
func embeddedOptions(c *cli.Context, dataDir string, log *slog.Logger) (natsd.Options, error) {
	o := natsd.Options{
		Listen:   c.String("nats-listen"),
		StoreDir: c.String("nats-store"),
		TLSCert:  c.String("nats-tls-cert"),
		TLSKey:   c.String("nats-tls-key"),
		TLSCA:    c.String("nats-tls-ca"),
		Log:      log.With("component", "nats"),
	}
	if o.StoreDir == "" {
		o.StoreDir = filepath.Join(dataDir, "nats")
	}
	edges, err := readEdgeKeys(c.String("nats-edge-keys"))
	if err != nil {
		return o, err
	}
	user, pass := c.String("nats-user"), c.String("nats-password")
	if !isLoopback(o.Listen) && len(edges) == 0 && user == "" {
		return o, faceauth.E(faceauth.KindInvalid, "nats_open",
			"The embedded NATS server will not listen on %s, beyond this host, with only the local credentials: set NATS_EDGE_KEYS to a folder of <edge-id>.pub NKey public keys (deploy/nats/new-edge.sh makes one per edge), or keep NATS_LISTEN on 127.0.0.1.", o.Listen)
	}
	cp := pb.CentralPermissions()
	// Central's users manage the streams and are what `central resync`
	// and the nats CLI use, so they are not restricted beyond the feed.
	cperm := natsd.User{Publish: append(cp.Publish, "faceauth.>"), Subscribe: append(cp.Subscribe, "faceauth.>")}
	if user != "" {
		u := cperm
		u.Name, u.Password = user, pass
		o.Users = append(o.Users, u)
	}
	kp, err := loadOrCreateSeed(centralSeedFile(dataDir))
	if err != nil {
		return o, err
	}
	u := cperm
	if u.NKey, err = kp.PublicKey(); err != nil {
		return o, err
	}
	o.Users = append(o.Users, u)
	for id := range strings.SplitSeq(c.String("nats-local-edges"), ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if err := pb.ValidateEdgeID(id); err != nil {
			return o, fmt.Errorf("NATS_LOCAL_EDGES: %w", err)
		}
		kp, err := loadOrCreateSeed(filepath.Join(dataDir, localCredsDir, id+".nk"))
		if err != nil {
			return o, err
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return o, err
		}
		sites, err := readEdgeSites(filepath.Join(dataDir, localCredsDir, id+".sites"))
		if err != nil {
			return o, err
		}
		p := pb.EdgePermissions(id, sites)
		o.Users = append(o.Users, natsd.User{NKey: pub, Publish: p.Publish, Subscribe: p.Subscribe})
	}
	o.Users = append(o.Users, edges...)
	return o, nil
}

// loadOrCreateSeed reads the NKey user seed at path, or writes a new one
// there (mode 0600, its folder 0700) when there is none.
func loadOrCreateSeed(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
		if err != nil {
			return nil, fmt.Errorf("%s does not hold an NKey user seed (SU...); delete it to generate a new one: %w", path, err)
		}
		return kp, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read NATS credentials: %w", err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create NATS credentials folder: %w", err)
	}
	// O_EXCL: when two processes start at once, one writes and the other
	// reads what it wrote.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateSeed(path)
	}
	if err != nil {
		return nil, fmt.Errorf("write NATS credentials: %w", err)
	}
	_, err = f.Write(append(seed, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write NATS credentials: %w", err)
	}
	return kp, nil
}

// readEdgeKeys reads <edge-id>.pub NKey public keys from dir and gives each
// edge the edge permissions, for the sites in its <edge-id>.sites file.
func readEdgeKeys(dir string) ([]natsd.User, error) {
	if dir == "" {
		return nil, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "nats_edge_keys", "NATS_EDGE_KEYS %s holds no <edge-id>.pub files.", dir)
	}
	var users []natsd.User
	for _, f := range files {
		id := strings.TrimSuffix(filepath.Base(f), ".pub")
		if id == "central" {
			continue // deploy/nats/new-edge.sh keeps central's key there too
		}
		if err := pb.ValidateEdgeID(id); err != nil {
			return nil, fmt.Errorf("NATS_EDGE_KEYS: %s: %w", f, err)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("NATS_EDGE_KEYS: %w", err)
		}
		key := strings.TrimSpace(string(b))
		if !nkeys.IsValidPublicUserKey(key) {
			return nil, faceauth.E(faceauth.KindInvalid, "nats_edge_keys", "%s does not hold an NKey user public key (U...).", f)
		}
		sites, err := readEdgeSites(strings.TrimSuffix(f, ".pub") + ".sites")
		if err != nil {
			return nil, err
		}
		p := pb.EdgePermissions(id, sites)
		users = append(users, natsd.User{NKey: key, Publish: p.Publish, Subscribe: p.Subscribe})
	}
	return users, nil
}

// readEdgeSites reads the sites an edge may read the users of from its
// <edge-id>.sites file (sites separated by commas, spaces or lines), which
// lies next to its key. No file means no site: the edge reads only the
// users of no site, the safe default.
func readEdgeSites(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the edge's sites: %w", err)
	}
	sites, err := pb.ParseSites(strings.Join(strings.Fields(strings.ReplaceAll(string(b), ",", " ")), ","))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sites, nil
}

func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// natsClientURL is the URL admin commands such as `central resync` use:
// --nats-url, or the embedded server's listen address.
func natsClientURL(c *cli.Context) string {
	if u := natsflags.URL(c); u != "" {
		return u
	}
	scheme := "nats://"
	if c.String("nats-tls-cert") != "" {
		scheme = "tls://"
	}
	listen := c.String("nats-listen")
	if host, port, err := net.SplitHostPort(listen); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			listen = net.JoinHostPort("127.0.0.1", port) // listening everywhere: reach it here
		}
	}
	return scheme + listen
}
