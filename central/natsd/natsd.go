// Package natsd runs a NATS server with JetStream inside the calling
// process. `central serve` uses it when NATS_URL names no external server,
// so that a single host needs no separate NATS installation, and tests use
// it to talk to a real server on a random port.
//
// Production sites with several edges are better served by a standalone
// nats-server (see docs/sync.md); the embedded one takes the same users and
// permissions, so the feed works the same against either.
package natsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultListen is the address the embedded server listens on when Options
// names none: the loopback interface only, so that a local setup is never
// reachable from the network by accident.
const DefaultListen = "127.0.0.1:4222"

// Options configure the embedded server.
type Options struct {
	// Listen is host:port for client connections. Empty means
	// DefaultListen; port 0 picks a free port (see Server.ClientURL).
	Listen string
	// StoreDir is the folder for JetStream's file storage. It is created
	// when missing. Required: the feed's streams must survive a restart.
	StoreDir string
	// Users may connect. With none, the server accepts any client, which
	// Start allows only on the loopback interface (tests).
	Users []User
	// TLSCert and TLSKey are PEM files of the server's certificate and key.
	// With them, clients must connect with TLS.
	TLSCert, TLSKey string
	// TLSCA is a PEM file of the certificate authority that client
	// certificates must chain to. With it, clients must present a
	// certificate (mutual TLS).
	TLSCA string
	// MaxStore caps JetStream's file storage in bytes; 0 lets the server
	// choose (a share of the free disk).
	MaxStore int64
	// Log receives the server's log lines; nil discards them.
	Log *slog.Logger
}

// User is one client identity: a name and password, or an NKey public key
// (the client proves it holds the seed), with optional permissions.
type User struct {
	// Name and Password authenticate with user/password.
	Name, Password string
	// NKey is a user public key ("U..."); set it instead of Name/Password.
	NKey string
	// Publish and Subscribe list the subjects (wildcards allowed) the user
	// may publish and subscribe to. Both nil means no restriction.
	Publish, Subscribe []string
}

// Server is a running embedded NATS server.
type Server struct {
	ns *server.Server
}

// Start starts the server and waits until it accepts connections. The
// context bounds only the start-up; stop the server with Shutdown.
func Start(ctx context.Context, opts Options) (*Server, error) {
	sopts, err := serverOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("natsd: create store folder: %w", err)
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsd: %w", err)
	}
	if opts.Log != nil {
		ns.SetLoggerV2(slogLogger{opts.Log}, false, false, false)
	}
	go ns.Start()
	wait := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsd: the server did not become ready on %s within %s (is the port in use?)", listenOrDefault(opts.Listen), wait)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("natsd: JetStream did not start")
	}
	return &Server{ns: ns}, nil
}

func listenOrDefault(listen string) string {
	if listen == "" {
		return DefaultListen
	}
	return listen
}

func serverOptions(opts Options) (*server.Options, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("natsd: a JetStream store folder is required")
	}
	host, portStr, err := net.SplitHostPort(listenOrDefault(opts.Listen))
	if err != nil {
		return nil, fmt.Errorf("natsd: listen address %q: %w", opts.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("natsd: listen address %q: bad port", opts.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if len(opts.Users) == 0 {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("natsd: refusing to listen on %s, beyond this host, without authentication: set NATS_EDGE_KEYS to a folder of <edge-id>.pub NKey public keys (deploy/nats/new-edge.sh makes them)", listenOrDefault(opts.Listen))
		}
	}
	sopts := &server.Options{
		ServerName: "faceauth-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true, // the host process owns signal handling
		NoLog:      opts.Log == nil,
		// The feed's messages are a few KB; a user with many references
		// stays far below this.
		MaxPayload:         8 << 20,
		JetStreamMaxStore:  opts.MaxStore,
		JetStreamMaxMemory: 64 << 20,
	}
	for _, u := range opts.Users {
		var perms *server.Permissions
		if u.Publish != nil || u.Subscribe != nil {
			perms = &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: u.Publish},
				Subscribe: &server.SubjectPermission{Allow: u.Subscribe},
			}
		}
		switch {
		case u.NKey != "" && u.Name == "":
			sopts.Nkeys = append(sopts.Nkeys, &server.NkeyUser{Nkey: u.NKey, Permissions: perms})
		case u.Name != "" && u.NKey == "":
			sopts.Users = append(sopts.Users, &server.User{Username: u.Name, Password: u.Password, Permissions: perms})
		default:
			return nil, errors.New("natsd: a user has either a name and password or an NKey")
		}
	}
	if opts.TLSCert != "" || opts.TLSKey != "" || opts.TLSCA != "" {
		if opts.TLSCert == "" || opts.TLSKey == "" {
			return nil, errors.New("natsd: TLS needs both a certificate and a key file")
		}
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: opts.TLSCert,
			KeyFile:  opts.TLSKey,
			CaFile:   opts.TLSCA,
			Verify:   opts.TLSCA != "",
		})
		if err != nil {
			return nil, fmt.Errorf("natsd: TLS: %w", err)
		}
		sopts.TLS = true
		sopts.TLSConfig = tc
		sopts.TLSVerify = opts.TLSCA != ""
		sopts.TLSTimeout = 5
	}
	return sopts, nil
}

// ClientURL returns the URL clients connect to, such as
// "nats://127.0.0.1:4222" ("tls://..." when TLS is on), with the port
// actually chosen.
func (s *Server) ClientURL() string {
	return s.ns.ClientURL() // tls:// when TLS is required
}

// InProcessConn returns a connection to the server that bypasses the
// network (and TLS, which guards only the network): the host process's own
// client uses it through nats.InProcessServer, natsconn.ConnectOptions'
// InProcess.
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }

// Shutdown stops the server and waits until it has stopped. JetStream data
// stays in the store folder for the next Start.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// slogLogger adapts slog to the server's logger interface. The server's
// notices (a start-up banner of thirty lines among them) go to debug: the
// host process logs the one line that matters, that NATS is up.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l slogLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l slogLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l slogLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l slogLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l slogLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
