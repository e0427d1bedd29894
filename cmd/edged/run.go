package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/cmd/internal/natsflags"
	"github.com/xplore/faceauth/cmd/internal/serveflags"
	"github.com/xplore/faceauth/edged"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/config"
	"github.com/xplore/faceauth/internal/natsconn"
	"github.com/xplore/faceauth/models"
	"github.com/xplore/faceauth/models/face"
	"github.com/xplore/faceauth/models/photo"
	pb "github.com/xplore/faceauth/proto"
)

// Defaults of the run command.
const (
	defaultNATS   = "nats://127.0.0.1:4222"
	defaultListen = "127.0.0.1:5001"
	defaultData   = "./edge-data"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "serve verify and identify from the local copy and follow the change feed",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "HTTP address", EnvVars: []string{"EDGE_LISTEN_ADDR"}, Value: defaultListen},
			&cli.StringFlag{Name: "data", Usage: "folder of the edge's database", EnvVars: []string{"EDGE_DATA_DIR"}, Value: defaultData},
			&cli.StringFlag{Name: "edge-id", Usage: "this edge's id: letters, digits, '-' and '_' (default: the host name)", EnvVars: []string{"EDGE_ID"}},
			&cli.StringFlag{Name: "sites", Usage: "comma-separated sites this edge serves: it receives their users and those of no site (default: only users of no site)", EnvVars: []string{"EDGE_SITES"}},
			&cli.StringFlag{Name: "models-dir", Usage: "folder holding the fetched, pinned model files", EnvVars: []string{"MODELS_DIR"}, Value: models.DefaultDir},
			&cli.StringFlag{Name: "model", Usage: "embedding model; must match central's", EnvVars: []string{"VERIFICATION_MODEL"}, Value: models.DefaultModel},
			&cli.IntFlag{Name: "workers", Usage: "face pipeline workers, each with its own model sessions (0: one per CPU)", EnvVars: []string{"WORKERS"}},
			&cli.StringFlag{Name: "shutdown-timeout", Usage: "how long shutdown waits for requests in flight", EnvVars: []string{"SHUTDOWN_TIMEOUT"}, Value: "10s"},
			&cli.StringFlag{Name: "token-public-key", Usage: "central's token public key (base64 or hex), used until one arrives over NATS", EnvVars: []string{"TOKEN_PUBLIC_KEY"}},
			&cli.StringFlag{Name: "feed-public-key", Usage: "central's feed key (base64 or hex, as `central feed-key` prints it): every change must be signed by it; unset, the key central announces is pinned on first contact", EnvVars: []string{"FEED_PUBLIC_KEY"}},
			&cli.StringFlag{Name: "heartbeat", Usage: "interval of status messages", EnvVars: []string{"EDGE_HEARTBEAT"}, Value: edged.DefaultHeartbeat.String()},
			&cli.StringFlag{Name: "compact-delay", Usage: "wait after a delete (or an update that dropped vectors) before the erasing compaction, to gather a burst", EnvVars: []string{"EDGE_COMPACT_DELAY"}, Value: edged.DefaultCompactDelay.String()},
			&cli.StringFlag{Name: "nats-inbox-prefix", Usage: "reply-subject prefix (default: the edge's own, as its NATS permissions expect)", EnvVars: []string{"NATS_INBOX_PREFIX"}},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", EnvVars: []string{"LOG_LEVEL"}, Value: "info"},
			&cli.IntFlag{Name: "max-conns-per-client", Usage: "open connections one IP address may hold; more are closed at once (0: no limit)", EnvVars: []string{"EDGE_MAX_CONNS_PER_CLIENT"}, Value: api.DefaultConnLimit.PerClient},
			&cli.IntFlag{Name: "max-conns", Usage: "open connections in all; more are closed at once (0: no limit)", EnvVars: []string{"EDGE_MAX_CONNS"}, Value: api.DefaultConnLimit.Total},
		}, append(serveflags.Flags(), natsflags.Flags(defaultNATS, "NATS server URL(s), comma-separated")...)...),
		Action: run,
	}
}

func run(c *cli.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	edgeID := c.String("edge-id")
	if edgeID == "" {
		var err error
		if edgeID, err = hostEdgeID(); err != nil {
			return err
		}
	}
	if err := pb.ValidateEdgeID(edgeID); err != nil {
		return fmt.Errorf("--edge-id: %w", err)
	}
	sites, err := pb.ParseSites(c.String("sites"))
	if err != nil {
		return fmt.Errorf("EDGE_SITES: %w", err)
	}
	shared, err := serveflags.Parse(c)
	if err != nil {
		return err
	}
	shutdownTimeout, err := config.ParseDuration(c.String("shutdown-timeout"))
	if err != nil || shutdownTimeout <= 0 {
		return fmt.Errorf("--shutdown-timeout: %q is not a positive duration", c.String("shutdown-timeout"))
	}
	heartbeat, err := config.ParseDuration(c.String("heartbeat"))
	if err != nil || heartbeat <= 0 {
		return fmt.Errorf("--heartbeat: %q is not a positive duration", c.String("heartbeat"))
	}
	compactDelay, err := config.ParseDuration(c.String("compact-delay"))
	if err != nil || compactDelay <= 0 {
		return fmt.Errorf("--compact-delay: %q is not a positive duration", c.String("compact-delay"))
	}
	var pub ed25519.PublicKey
	if s := c.String("token-public-key"); s != "" {
		if pub, err = parsePublicKey(s); err != nil {
			return fmt.Errorf("--token-public-key: %w", err)
		}
	}
	var feedPub ed25519.PublicKey
	if s := c.String("feed-public-key"); s != "" {
		if feedPub, err = parsePublicKey(s); err != nil {
			return fmt.Errorf("--feed-public-key: %w", err)
		}
	}
	conns := api.ConnLimit{PerClient: c.Int("max-conns-per-client"), Total: c.Int("max-conns")}
	if conns.PerClient < 0 || conns.Total < 0 {
		return fmt.Errorf("--max-conns-per-client and --max-conns must not be negative")
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer ln.Close()

	engine, err := face.New(c.Context, face.Config{
		ModelsDir: c.String("models-dir"),
		Model:     c.String("model"),
		Workers:   c.Int("workers"),
		Photo:     photo.Options{MaxPixels: shared.MaxPixels},
		Log:       log,
	})
	if err != nil {
		return err
	}
	defer engine.Close()

	e, err := edged.Open(edged.Config{
		EdgeID:          edgeID,
		Sites:           sites,
		DataDir:         c.String("data"),
		Version:         c.App.Version,
		Engine:          engine,
		Info:            engine.Info(),
		TokenPublicKey:  pub,
		FeedPublicKey:   feedPub,
		Heartbeat:       heartbeat,
		CompactDelay:    compactDelay,
		Liveness:        shared.Liveness,
		TokenlessVerify: shared.TokenlessVerify,
		Limit:           shared.Limit,
		FailureScores:   shared.FailureScores,
		MaxBodyBytes:    shared.MaxBodyBytes,
		Admit:           shared.AdmitFor(engine.Workers()),
		Log:             log,
	})
	if err != nil {
		return err
	}
	defer e.Close()
	if len(shared.TokenlessVerify) > 0 {
		log.Warn("POST /api/verify accepts requests without a token from these networks (VERIFY_WITHOUT_TOKEN_FROM)", "networks", shared.TokenlessVerify)
	}

	inbox := c.String("nats-inbox-prefix")
	if inbox == "" {
		inbox = pb.EdgeInboxPrefix(edgeID)
	}
	opts := natsflags.Options(c)
	opts.Name, opts.InboxPrefix, opts.Log = "edge "+edgeID, inbox, log
	nc, err := natsconn.Connect(c.Context, opts)
	if err != nil {
		return err
	}
	defer nc.Close()

	srv := &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(api.LimitConns(ln, conns, log)) }()
	log.Info("edge serving", "edge_id", edgeID, "listen", ln.Addr().String(), "data", c.String("data"),
		"nats", opts.URL, "model", engine.Info().Model, "version", c.App.Version)

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- e.Run(ctx, nc) }()

	select {
	case <-c.Context.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		log.Error("HTTP server stopped", "err", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		log.Warn("HTTP shutdown", "err", serr)
	}
	cancel()
	if rerr := <-runDone; rerr != nil && err == nil {
		err = rerr
	}
	if ferr := nc.FlushTimeout(2 * time.Second); ferr != nil && nc.IsConnected() {
		log.Warn("NATS flush", "err", ferr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// hostEdgeID derives an edge id from the host name: its first label, with
// characters an edge id may not hold replaced by '-'.
func hostEdgeID() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("no --edge-id given and the host name is unknown: %w", err)
	}
	h, _, _ = strings.Cut(h, ".")
	id := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, h)
	if len(id) > pb.MaxEdgeIDLen {
		id = id[:pb.MaxEdgeIDLen]
	}
	return id, nil
}

// parsePublicKey reads an Ed25519 public key written as standard or URL
// base64 (padded or not) or hex.
func parsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString,
		hex.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, fmt.Errorf("not a %d-byte Ed25519 public key in base64 or hex", ed25519.PublicKeySize)
}
