package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/feed"
	"github.com/xplore/faceauth/natsd"
)

// natsFlags are the change feed's settings, shared by serve and resync.
// docs/sync.md explains them.
func natsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "nats-url", EnvVars: []string{"NATS_URL"}, Usage: "external NATS server URL(s), comma-separated; unset: run the embedded server"},
		&cli.StringFlag{Name: "nats-user", EnvVars: []string{"NATS_USER"}, Usage: "NATS user (also accepted by the embedded server)"},
		&cli.StringFlag{Name: "nats-password", EnvVars: []string{"NATS_PASSWORD"}, Usage: "NATS password"},
		&cli.StringFlag{Name: "nats-nkey", EnvVars: []string{"NATS_NKEY_SEED"}, Usage: "file with central's NKey seed"},
		&cli.StringFlag{Name: "nats-creds", EnvVars: []string{"NATS_CREDS"}, Usage: "NATS .creds file (operator mode)"},
		&cli.StringFlag{Name: "nats-ca", EnvVars: []string{"NATS_CA"}, Usage: "CA file the NATS server certificate must chain to"},
		&cli.StringFlag{Name: "nats-cert", EnvVars: []string{"NATS_CERT"}, Usage: "client certificate file for mutual TLS with NATS"},
		&cli.StringFlag{Name: "nats-key", EnvVars: []string{"NATS_KEY"}, Usage: "client key file for mutual TLS with NATS"},
		&cli.IntFlag{Name: "nats-replicas", EnvVars: []string{"NATS_REPLICAS"}, Value: 1, Usage: "stream replicas on a NATS cluster"},
		&cli.StringFlag{Name: "nats-listen", EnvVars: []string{"NATS_LISTEN"}, Value: natsd.DefaultListen, Usage: "embedded NATS: listen address"},
		&cli.StringFlag{Name: "nats-store", EnvVars: []string{"NATS_STORE_DIR"}, Usage: "embedded NATS: JetStream folder (default <data>/nats)"},
		&cli.StringFlag{Name: "nats-edge-keys", EnvVars: []string{"NATS_EDGE_KEYS"}, Usage: "embedded NATS: folder of <edge-id>.pub NKey public keys; turns on authentication with per-edge permissions"},
		&cli.StringFlag{Name: "nats-tls-cert", EnvVars: []string{"NATS_TLS_CERT"}, Usage: "embedded NATS: server certificate file (clients must use TLS)"},
		&cli.StringFlag{Name: "nats-tls-key", EnvVars: []string{"NATS_TLS_KEY"}, Usage: "embedded NATS: server key file"},
		&cli.StringFlag{Name: "nats-tls-ca", EnvVars: []string{"NATS_TLS_CA"}, Usage: "embedded NATS: CA of client certificates (clients must present one)"},
	}
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
func streamOptions(c *cli.Context) feed.StreamOptions {
	return feed.StreamOptions{Replicas: c.Int("nats-replicas")}
}

// clientOptions returns the client settings from the flags.
func clientOptions(c *cli.Context, url string, log *slog.Logger) feed.ConnectOptions {
	return feed.ConnectOptions{
		URL:          url,
		Name:         "central",
		User:         c.String("nats-user"),
		Password:     c.String("nats-password"),
		NKeySeedFile: c.String("nats-nkey"),
		CredsFile:    c.String("nats-creds"),
		CAFile:       c.String("nats-ca"),
		CertFile:     c.String("nats-cert"),
		KeyFile:      c.String("nats-key"),
		Log:          log,
	}
}

// openNATS connects to the NATS server named by --nats-url, or starts the
// embedded one (serve=true) in dataDir/nats. A connection to an external
// server that is down is not an error: it connects when the server is up.
func openNATS(ctx context.Context, c *cli.Context, dataDir string, log *slog.Logger) (*natsConn, error) {
	if url := c.String("nats-url"); url != "" {
		nc, err := feed.Connect(ctx, clientOptions(c, url, log))
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
	co := feed.ConnectOptions{URL: srv.ClientURL(), Name: "central", InProcess: srv, Log: log}
	if len(opts.Users) > 0 {
		// The first user is central's own (see embeddedOptions).
		co.User, co.Password = opts.Users[0].Name, opts.Users[0].Password
	}
	nc, err := feed.Connect(ctx, co)
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	log.Info("embedded NATS started", "url", srv.ClientURL(), "store", opts.StoreDir, "auth", len(opts.Users) > 0, "tls", opts.TLSCert != "")
	return &natsConn{nc: nc, srv: srv}, nil
}

// embeddedOptions turns the flags into the embedded server's options.
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
	if len(edges) > 0 || user != "" {
		if user == "" {
			// Only central's own in-process connection uses it.
			b := make([]byte, 24)
			rand.Read(b)
			user, pass = "central", hex.EncodeToString(b)
		}
		cp := feed.CentralPermissions()
		// Central's user manages the streams and is what `central resync`
		// and the nats CLI use, so it is not restricted beyond the feed.
		o.Users = append(o.Users, natsd.User{Name: user, Password: pass, Publish: append(cp.Publish, "faceauth.>"), Subscribe: append(cp.Subscribe, "faceauth.>")})
		o.Users = append(o.Users, edges...)
	} else if !isLoopback(o.Listen) {
		log.Warn("the embedded NATS server listens beyond this host without authentication; set NATS_EDGE_KEYS (and NATS_TLS_CERT/NATS_TLS_KEY)", "listen", o.Listen)
	}
	return o, nil
}

// readEdgeKeys reads <edge-id>.pub NKey public keys from dir and gives each
// edge the edge permissions.
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
		if err := feed.ValidateEdgeID(id); err != nil {
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
		p := feed.EdgePermissions(id)
		users = append(users, natsd.User{NKey: key, Publish: p.Publish, Subscribe: p.Subscribe})
	}
	return users, nil
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
	if u := c.String("nats-url"); u != "" {
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
