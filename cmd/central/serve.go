package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/central/httpapi"
	"github.com/xplore/faceauth/central/kvlocks"
	"github.com/xplore/faceauth/central/publish"
	"github.com/xplore/faceauth/central/store/filestore"
	"github.com/xplore/faceauth/central/store/s3store"
	"github.com/xplore/faceauth/cmd/internal/serveflags"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/config"
	"github.com/xplore/faceauth/internal/metrics"
	"github.com/xplore/faceauth/models"
	"github.com/xplore/faceauth/models/face"
	"github.com/xplore/faceauth/models/photo"
	pb "github.com/xplore/faceauth/proto"
)

// Flags shared by several commands are made fresh for each command:
// urfave/cli writes values taken from the environment into the flag
// itself, so a shared flag value would carry one run's setting into the
// next (in tests, where one process runs many).

// dataFlag is shared by serve and token (both need the signing key).
func dataFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "data",
		Usage:   "data folder: the local store (when S3_BUCKET is unset) and the token key file",
		EnvVars: []string{"DATA_DIR"},
		Value:   "./data",
	}
}

// keyFileFlag is shared by serve and token.
func keyFileFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "token-key-file",
		Usage:   "token signing key file, used when SECRET_KEY is unset (default: <data>/token.key, created when missing)",
		EnvVars: []string{"TOKEN_KEY_FILE"},
	}
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the central HTTP API (settings from flags, the environment and ./.env; see docs/configuration.md)",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "HTTP listen address", EnvVars: []string{"LISTEN_ADDR"}, Value: "127.0.0.1:5000"},
			dataFlag(),
			keyFileFlag(),
			modelsDirFlag(),
			&cli.StringFlag{Name: "model", Usage: "embedding model (see models/manifest.json)", EnvVars: []string{"VERIFICATION_MODEL"}, Value: models.DefaultModel},
			&cli.IntFlag{Name: "workers", Usage: "face pipeline workers, each with its own model sessions (0: one per CPU)", EnvVars: []string{"WORKERS"}},
			&cli.StringFlag{Name: "store", Usage: "where the reference set lives: auto (S3 when S3_BUCKET is set, else local), local or s3", EnvVars: []string{"STORE"}, Value: "auto"},
			&cli.StringFlag{Name: "s3-bucket", Usage: "S3 bucket of the reference set; unset: the local store in --data", EnvVars: []string{"S3_BUCKET"}},
			&cli.StringFlag{Name: "s3-region", Usage: "AWS region of the bucket", EnvVars: []string{"AWS_REGION"}},
			&cli.StringFlag{Name: "s3-endpoint", Usage: "S3-compatible endpoint URL (unset: AWS)", EnvVars: []string{"S3_ENDPOINT"}},
			&cli.StringFlag{Name: "s3-prefix", Usage: "key prefix inside the bucket", EnvVars: []string{"S3_PREFIX"}},
			&cli.StringFlag{Name: "s3-sse", Usage: "server-side encryption: AES256 or aws:kms", EnvVars: []string{"S3_SSE"}},
			&cli.StringFlag{Name: "s3-kms-key-id", Usage: "KMS key for S3_SSE=aws:kms", EnvVars: []string{"S3_KMS_KEY_ID"}},
			&cli.StringFlag{Name: "shutdown-timeout", Usage: "how long shutdown waits for requests in flight", EnvVars: []string{"SHUTDOWN_TIMEOUT"}, Value: "30s"},
			&cli.StringFlag{Name: "previous-token-key-file", Usage: "during a key rotation: the previous token key file, whose feed key signs the announcement of the new one (or PREVIOUS_SECRET_KEY)", EnvVars: []string{"PREVIOUS_TOKEN_KEY_FILE"}},
			&cli.StringFlag{Name: "feed-check-every", Usage: "how often the publisher checks that the users stream holds what the store does and reconciles when not (a safety net: failed publishes and reconnections reconcile at once)", EnvVars: []string{"FEED_CHECK_EVERY"}, Value: "30s"},
			&cli.StringFlag{Name: "sweep-every", Usage: "how often to sweep images no record names from the store (0: never)", EnvVars: []string{"SWEEP_EVERY"}, Value: "1h"},
			logLevelFlag(),
		}, append(serveflags.Flags(), natsFlags()...)...),
		Action: runServe,
	}
}

func logLevelFlag() cli.Flag {
	return &cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", EnvVars: []string{"LOG_LEVEL"}, Value: "info"}
}

// serveConfig is the parsed configuration of serve.
type serveConfig struct {
	listen    string
	data      string
	keyFile   string
	secret    string
	modelsDir string
	model     string
	workers   int
	store     string // auto, local or s3
	s3        s3store.Config
	serveflags.Settings
	shutdownTimeout time.Duration
	sweepEvery      time.Duration // 0: no sweep
	feedCheckEvery  time.Duration
	logLevel        slog.Level
}

func parseServeConfig(c *cli.Context) (*serveConfig, error) {
	cfg := &serveConfig{
		listen:    c.String("listen"),
		data:      c.String("data"),
		keyFile:   c.String("token-key-file"),
		secret:    os.Getenv("SECRET_KEY"),
		modelsDir: c.String("models-dir"),
		model:     c.String("model"),
		workers:   c.Int("workers"),
		store:     c.String("store"),
		s3: s3store.Config{
			Bucket:   c.String("s3-bucket"),
			Region:   c.String("s3-region"),
			Endpoint: c.String("s3-endpoint"),
			Prefix:   c.String("s3-prefix"),
			SSE:      c.String("s3-sse"),
			KMSKeyID: c.String("s3-kms-key-id"),
		},
	}
	var err error
	bad := func(name string, e error) error { return fmt.Errorf("%s: %w", name, e) }
	switch cfg.store {
	case "auto", "local", "s3":
	default:
		return nil, fmt.Errorf("STORE: %q is not auto, local or s3", cfg.store)
	}
	if cfg.Settings, err = serveflags.Parse(c); err != nil {
		return nil, err
	}
	if cfg.workers < 0 {
		return nil, bad("WORKERS", errors.New("must not be negative"))
	}
	if cfg.shutdownTimeout, err = config.ParseDuration(c.String("shutdown-timeout")); err != nil {
		return nil, bad("SHUTDOWN_TIMEOUT", err)
	}
	if cfg.sweepEvery, err = config.ParseDuration(c.String("sweep-every")); err != nil {
		return nil, bad("SWEEP_EVERY", err)
	}
	if cfg.feedCheckEvery, err = config.ParseDuration(c.String("feed-check-every")); err != nil {
		return nil, bad("FEED_CHECK_EVERY", err)
	}
	if cfg.feedCheckEvery == 0 {
		return nil, bad("FEED_CHECK_EVERY", errors.New("must be above 0"))
	}
	if cfg.logLevel, err = parseLogLevel(c.String("log-level")); err != nil {
		return nil, bad("LOG_LEVEL", err)
	}
	if cfg.keyFile == "" {
		cfg.keyFile = filepath.Join(cfg.data, auth.KeyFileName)
	}
	return cfg, nil
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

func newLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// openStore returns the S3 store when STORE=s3 or, with STORE=auto, when a
// bucket is configured; else the local store in the data folder. It pings
// the store, so a command fails at once with the fix. STORE=s3 without a
// bucket fails with the seed's "S3 is not configured" sentence.
func openStore(ctx context.Context, cfg *serveConfig) (faceauth.Store, string, error) {
	var (
		s     faceauth.Store
		where string
	)
	if cfg.store == "s3" || (cfg.store == "auto" && cfg.s3.Bucket != "") {
		s3, err := s3store.New(ctx, cfg.s3)
		if err != nil {
			return nil, "", err
		}
		s, where = s3, "s3://"+cfg.s3.Bucket+"/"+cfg.s3.Prefix
	} else {
		fs, err := filestore.New(filepath.Join(cfg.data, "store"))
		if err != nil {
			return nil, "", err
		}
		s, where = fs, fs.Dir()
	}
	if err := s.Ping(ctx); err != nil {
		return nil, "", err
	}
	return s, where, nil
}

// loadSigner returns the token signer: from SECRET_KEY, else from the key
// file, which is created on first use.
func loadSigner(secret, keyFile string, log *slog.Logger) (*auth.Signer, error) {
	s, created, err := auth.LoadSigner(auth.KeyConfig{Secret: secret, KeyFile: keyFile, Create: true})
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("SECRET_KEY is not set: created a random token signing key; set SECRET_KEY for several replicas",
			"key_file", keyFile,
			"get_a_token", fmt.Sprintf("central token create --role admin --token-key-file %s", keyFile))
	}
	return s, nil
}

// revocationsRefresh is how often serve re-reads the token revocations,
// so one made through another central replica applies here within it.
const revocationsRefresh = 10 * time.Second

func runServe(c *cli.Context) error {
	cfg, err := parseServeConfig(c)
	if err != nil {
		return err
	}
	log := newLogger(cfg.logLevel)
	ctx := c.Context

	store, where, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	signer, err := loadSigner(cfg.secret, cfg.keyFile, log)
	if err != nil {
		return err
	}
	engine, err := face.New(ctx, face.Config{
		ModelsDir: cfg.modelsDir,
		Model:     cfg.model,
		Workers:   cfg.workers,
		Photo:     photo.Options{MaxPixels: cfg.MaxPixels},
		Log:       log,
	})
	if err != nil {
		return err
	}
	defer engine.Close()

	reg := metrics.NewRegistry()
	httpMetrics := api.NewMetrics(reg, "faceauth_central")

	// ---- Change feed -------------------------------------------------
	// The change feed to the edges (docs/sync.md): the embedded NATS
	// server with JetStream (or the NATS_URL one), the publisher of every
	// change (central.Publisher) with the token public key, and the
	// monitor of edge heartbeats and receipts behind GET /api/edges and
	// GET /api/deletions. NATS being down does not stop central: the
	// publisher reconciles when it is back.
	// Every message is signed with the feed key, derived from the token
	// key, which edges verify before they apply anything.
	feedKey, err := feedSigner(signer)
	if err != nil {
		return err
	}
	prevFeedKey, err := previousFeedSigner(c, log)
	if err != nil {
		return err
	}
	feedConn, err := openNATS(ctx, c, cfg.data, log)
	if err != nil {
		return err
	}
	defer feedConn.Close()
	publisher, err := publish.New(feedConn.nc, publish.Options{
		Log:            log,
		Streams:        streamOptions(c),
		CheckEvery:     cfg.feedCheckEvery,
		Signer:         feedKey,
		PreviousSigner: prevFeedKey,
		TokenKey:       &pb.TokenKey{KeyId: signer.KeyID(), PublicKey: signer.PublicKey()},
	})
	if err != nil {
		return err
	}
	monitor, err := fleet.New(feedConn.nc, fleet.Options{Log: log, Model: engine.Info().Model, Streams: streamOptions(c)})
	if err != nil {
		return err
	}
	// Revoked token subjects: refused here, re-read from the store for
	// revocations made through other replicas, and carried to the edges.
	revocations := central.NewRevocations(central.RevocationsConfig{Store: store, Publisher: publisher, Log: log})
	if err := revocations.Load(ctx); err != nil {
		return err
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "faceauth_central_token_revocations_version",
			Help: "Version of the token revocation list in force (0: none).",
		}, func() float64 { return float64(revocations.List().Version) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "faceauth_central_nats_connected",
			Help: "1 while central is connected to NATS (the change feed to the edges).",
		}, func() float64 {
			if publisher.Status().Connected {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "faceauth_central_feed_queued",
			Help: "User changes waiting to be published to the edges.",
		}, func() float64 { return float64(publisher.Status().Queued) }),
	)
	// The verify lockout's state, shared by the replicas through NATS.
	locks, err := kvlocks.New(feedConn.nc, streamOptions(c), cfg.Limit.StateTTL())
	if err != nil {
		return err
	}
	var pub central.Publisher = publisher
	var extra []httpapi.Route
	// ------------------------------------------------------------------

	registry := central.NewRegistry(central.Config{
		Store:     store,
		Engine:    engine,
		Info:      engine.Info(),
		Publisher: pub,
		Log:       log,
		Metrics:   httpMetrics,
	})
	// The feed outlives ctx (the signal) until the HTTP server has
	// finished its last request.
	feedCtx, stopFeed := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFeed()
	feedDone := make(chan struct{}, 2)
	go func() { publisher.Run(feedCtx, registry); feedDone <- struct{}{} }()
	go func() { monitor.Run(feedCtx); feedDone <- struct{}{} }()
	go revocations.Run(ctx, revocationsRefresh)

	srv := &http.Server{
		Addr: cfg.listen,
		Handler: httpapi.NewServer(httpapi.Config{
			Registry:        registry,
			Tokens:          signer,
			Limiter:         api.NewLimiterWith(cfg.Limit, locks, nil, log),
			FailureScores:   cfg.FailureScores,
			Admission:       api.NewAdmission(cfg.AdmitFor(engine.Workers())),
			Liveness:        cfg.Liveness,
			TokenlessVerify: cfg.TokenlessVerify,
			MaxBodyBytes:    cfg.MaxBodyBytes,
			Metrics:         reg,
			HTTPMetrics:     httpMetrics,
			Edges:           monitor,
			Revocations:     revocations,
			Issuer:          signer,
			Extra:           extra,
			Log:             log,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.listen, err)
	}
	if len(cfg.TokenlessVerify) > 0 {
		log.Warn("POST /api/verify accepts requests without a token from these networks (VERIFY_WITHOUT_TOKEN_FROM)", "networks", cfg.TokenlessVerify)
	}
	log.Info("central serving", "addr", ln.Addr().String(), "store", where, "model", engine.Info().Model, "feed_key", feedKey.KeyID(),
		"threshold", engine.Info().Threshold, "liveness", cfg.Liveness, "version", version)

	// Move references of another model to the current one in the
	// background, so the edges receive current embeddings.
	go func() {
		n, err := registry.Reembed(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("re-embedding references of other models stopped", "err", err)
		case n > 0:
			log.Info("re-embedded references of other models", "users", n, "model", engine.Info().Model)
		}
	}()

	// Load the users into memory now rather than on the first identify or
	// users listing (the console's first page).
	go func() {
		start := time.Now()
		if err := registry.WarmIndex(ctx); err != nil && ctx.Err() == nil {
			log.Warn("users not loaded into memory; the first identify or listing will try again", "err", err)
			return
		}
		log.Debug("users loaded into memory", "took", time.Since(start).Round(time.Millisecond))
	}()

	// Remove what interrupted writes left in the store (central.Sweeper):
	// temporary files at once, the rest minutes after start.
	if debris, err := registry.RemoveDebris(ctx, "", false); err != nil {
		log.Warn("removing temporary files of writes that died failed; the sweep tries again", "err", err)
	} else if len(debris) > 0 {
		log.Info("removed temporary files of writes that died", "files", debris)
	}
	if cfg.sweepEvery > 0 {
		go registry.Sweep(ctx, central.SweepFirst, cfg.sweepEvery)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "timeout", cfg.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	// The change feed stops here, after the last request that could
	// publish has finished; the publisher sends what is still queued.
	stopFeed()
	<-feedDone
	<-feedDone
	log.Info("stopped")
	return nil
}
