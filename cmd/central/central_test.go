package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/httpapi"
	"github.com/xplore/faceauth/central/store/filestore"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/facetest"
	"github.com/xplore/faceauth/internal/fakeengine"
)

// run runs the central command line with args and returns its stdout and
// stderr.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	app := &cli.App{
		Name:           "central",
		Writer:         &out,
		ErrWriter:      &errb,
		Commands:       []*cli.Command{serveCommand(), tokenCommand(), usersCommand(), importCommand(), sweepCommand()},
		ExitErrHandler: func(*cli.Context, error) {}, // keep the test process alive
	}
	err = app.RunContext(t.Context(), append([]string{"central"}, args...))
	return out.String(), errb.String(), err
}

func TestServeConfig(t *testing.T) {
	parse := func(t *testing.T, env map[string]string, args ...string) (*serveConfig, error) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		cmd := serveCommand()
		var cfg *serveConfig
		var perr error
		cmd.Action = func(c *cli.Context) error { cfg, perr = parseServeConfig(c); return nil }
		app := &cli.App{Name: "central", Commands: []*cli.Command{cmd}, Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{}}
		if err := app.Run(append([]string{"central", "serve"}, args...)); err != nil {
			return nil, err
		}
		return cfg, perr
	}
	t.Run("defaults", func(t *testing.T) {
		cfg, err := parse(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.listen != "127.0.0.1:5000" || cfg.data != "./data" || cfg.MaxBodyBytes != 10<<20 || cfg.Limit != api.DefaultLimit ||
			cfg.Liveness || cfg.keyFile != filepath.Join("data", auth.KeyFileName) || cfg.s3.Bucket != "" || cfg.logLevel != slog.LevelInfo || cfg.sweepEvery != time.Hour {
			t.Fatalf("defaults: %+v", cfg)
		}
	})
	t.Run("environment", func(t *testing.T) {
		cfg, err := parse(t, map[string]string{
			"LISTEN_ADDR": "0.0.0.0:8080", "DATA_DIR": "/var/lib/fa", "S3_BUCKET": "faces", "AWS_REGION": "eu-west-1",
			"S3_ENDPOINT": "http://s3.local", "S3_PREFIX": "prod", "S3_SSE": "aws:kms", "S3_KMS_KEY_ID": "key-1",
			"MAX_BODY_BYTES": "5MiB", "MAX_PIXELS": "1000000", "VERIFY_MAX_FAILURES": "3", "VERIFY_FAILURE_WINDOW": "60",
			"VERIFY_LOCKOUT": "1h", "LIVENESS": "on", "WORKERS": "4", "LOG_LEVEL": "debug", "VERIFICATION_MODEL": "Other",
			"SECRET_KEY": "a secret that is long enough", "MODELS_DIR": "/opt/models", "SWEEP_EVERY": "0",
			"VERIFY_USER_CEILING": "50", "VERIFY_FAILURE_SCORES": "on", "VERIFY_CLIENT_MAX_FAILURES": "20",
		})
		if err != nil {
			t.Fatal(err)
		}
		want := api.LimitConfig{MaxFailures: 3, Window: time.Minute, Lockout: time.Hour, UserCeiling: 50, ClientMaxFailures: 20}
		if cfg.listen != "0.0.0.0:8080" || cfg.data != "/var/lib/fa" || cfg.s3.Bucket != "faces" || cfg.s3.Region != "eu-west-1" ||
			cfg.s3.Endpoint != "http://s3.local" || cfg.s3.Prefix != "prod" || cfg.s3.SSE != "aws:kms" || cfg.s3.KMSKeyID != "key-1" ||
			cfg.MaxBodyBytes != 5<<20 || cfg.MaxPixels != 1e6 || cfg.Limit != want || !cfg.FailureScores || !cfg.Liveness || cfg.workers != 4 ||
			cfg.logLevel != slog.LevelDebug || cfg.model != "Other" || cfg.secret == "" || cfg.modelsDir != "/opt/models" || cfg.sweepEvery != 0 {
			t.Fatalf("from the environment: %+v", cfg)
		}
	})
	t.Run("S3 selected but unconfigured", func(t *testing.T) {
		cfg, err := parse(t, map[string]string{"STORE": "s3"})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = openStore(t.Context(), cfg)
		if err == nil || err.Error() != "S3 is not configured. Set S3_BUCKET (and AWS credentials) in environment." {
			t.Fatalf("err = %v, want the seed's sentence", err)
		}
	})
	t.Run("flag wins", func(t *testing.T) {
		cfg, err := parse(t, map[string]string{"LISTEN_ADDR": "0.0.0.0:8080"}, "--listen", "127.0.0.1:9")
		if err != nil || cfg.listen != "127.0.0.1:9" {
			t.Fatalf("%+v %v", cfg, err)
		}
	})
	for _, tt := range []struct{ env, value, want string }{
		{"MAX_BODY_BYTES", "lots", "MAX_BODY_BYTES"},
		{"MAX_BODY_BYTES", "0", "MAX_BODY_BYTES"},
		{"VERIFY_LOCKOUT", "forever", "VERIFY_LOCKOUT"},
		{"LIVENESS", "maybe", "LIVENESS"},
		{"LOG_LEVEL", "loud", "LOG_LEVEL"},
		{"MAX_PIXELS", "-5", "MAX_PIXELS"},
		{"STORE", "ftp", "STORE"},
		{"SWEEP_EVERY", "daily", "SWEEP_EVERY"},
	} {
		t.Run("bad "+tt.env, func(t *testing.T) {
			_, err := parse(t, map[string]string{tt.env: tt.value})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestTokenCreate(t *testing.T) {
	t.Setenv("SECRET_KEY", "")
	dir := t.TempDir()
	out, stderr, err := run(t, "token", "create", "--role", "verify", "--subject", "door-3", "--ttl", "1h", "--data", dir)
	if err != nil {
		t.Fatal(err, stderr)
	}
	signer, err := auth.LoadKeyFile(filepath.Join(dir, auth.KeyFileName))
	if err != nil {
		t.Fatalf("the key file was not created: %v", err)
	}
	c, err := signer.Check(strings.TrimSpace(out), time.Now())
	if err != nil || c.Role != auth.RoleVerify || c.Subject != "door-3" || c.ExpiresAt.Sub(c.IssuedAt) != time.Hour {
		t.Fatalf("token %q: %+v %v", out, c, err)
	}
	// SECRET_KEY wins over the key file.
	t.Setenv("SECRET_KEY", "another secret, long enough")
	out, _, err = run(t, "token", "create", "--role", "admin", "--data", dir)
	if err != nil {
		t.Fatal(err)
	}
	fromSecret, _ := auth.SignerFromSecret("another secret, long enough")
	if _, err := fromSecret.Check(strings.TrimSpace(out), time.Now()); err != nil {
		t.Fatalf("token not signed with SECRET_KEY: %v", err)
	}
	if _, _, err := run(t, "token", "create", "--role", "root"); err == nil {
		t.Fatal("unknown role accepted")
	}
	// A verify token names its door: doors sharing a subject would share
	// their lockout counts, and one door's failures lock the others.
	if _, _, err := run(t, "token", "create", "--role", "verify", "--data", dir); err == nil || !strings.Contains(err.Error(), "--subject") {
		t.Fatalf("a verify token without --subject: %v, want an error naming --subject", err)
	}
	out, _, err = run(t, "token", "create", "--role", "admin", "--data", dir)
	if c, cerr := fromSecret.Check(strings.TrimSpace(out), time.Now()); err != nil || cerr != nil || c.Subject != "cli" {
		t.Fatalf("an admin token without --subject: %+v %v %v, want subject cli", c, err, cerr)
	}
}

// env is a running central service with the real engine and a filestore.
type env struct {
	url, token string
	reg        *central.Registry
	signer     *auth.Signer
}

// The command tests drive the HTTP API, so they run on the fake engine
// (internal/fakeengine) with pictures of made-up people; the eval tests
// run the real one.
var fake = fakeengine.New(fakeengine.Config{})

// faces are JPEG pictures of single faces of three different people.
var faces = func() [][]byte {
	var out [][]byte
	for _, id := range []string{"alice", "bob", "carol"} {
		b, err := fakeengine.Person(id, 0).EncodeJPEG(92)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}()

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := filestore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := auth.SignerFromSecret("cmd test secret, long enough")
	reg := central.NewRegistry(central.Config{Store: st, Engine: fake, Info: fake.Info(), Log: slog.New(slog.DiscardHandler)})
	revs := central.NewRevocations(central.RevocationsConfig{Store: st, Log: slog.New(slog.DiscardHandler)})
	hs := httptest.NewServer(httpapi.NewServer(httpapi.Config{
		Registry: reg, Tokens: signer, Revocations: revs, Log: slog.New(slog.DiscardHandler),
	}))
	t.Cleanup(hs.Close)
	tok, _ := signer.Issue("test", auth.RoleAdmin, time.Hour, time.Now())
	return &env{url: hs.URL, token: tok, reg: reg, signer: signer}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUsersCommands(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.jpg"), faces[0])
	write(t, filepath.Join(dir, "b.jpg"), faces[1])
	conn := []string{"--url", e.url, "--token", e.token}

	out, stderr, err := run(t, append([]string{"users", "add", "--name", "Alice"}, append(conn, "alice", filepath.Join(dir, "a.jpg"))...)...)
	if err != nil || !strings.HasPrefix(out, "created alice: 1 reference image(s)") {
		t.Fatalf("add: %q %q %v", out, stderr, err)
	}
	if _, _, err := run(t, append([]string{"users", "add", "--sites", "hq,branch-2"}, append(conn, "bob", filepath.Join(dir, "b.jpg"))...)...); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, append([]string{"users", "list", "--page", "1"}, conn...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 3 || !strings.HasPrefix(lines[1], "alice") || !strings.Contains(lines[1], "Alice") || !strings.Contains(lines[1], "(every edge)") ||
		!strings.HasPrefix(lines[2], "bob") || !strings.Contains(lines[2], "branch-2,hq") {
		t.Fatalf("list: %q %v", out, err)
	}
	// Sites: set, listed by site, refused when listed twice.
	out, _, err = run(t, append([]string{"users", "sites"}, append(conn, "alice", "hq, lab")...)...)
	if err != nil || !strings.HasPrefix(out, "alice: sites hq,lab (revision ") {
		t.Fatalf("users sites: %q %v", out, err)
	}
	out, _, err = run(t, append([]string{"users", "list", "--site", "lab"}, conn...)...)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); err != nil || len(lines) != 2 || !strings.HasPrefix(lines[1], "alice") {
		t.Fatalf("list --site lab: %q %v", out, err)
	}
	if _, _, err := run(t, append([]string{"users", "sites"}, append(conn, "alice", "hq,hq")...)...); err == nil || !strings.Contains(err.Error(), `The site "hq" is listed more than once. (HTTP 400, duplicate_site)`) {
		t.Fatalf("users sites with a site twice: %v", err)
	}
	out, _, err = run(t, append([]string{"users", "sites", "--everywhere"}, append(conn, "alice")...)...)
	if err != nil || !strings.HasPrefix(out, "alice: every edge (revision ") {
		t.Fatalf("users sites --everywhere: %q %v", out, err)
	}
	if _, _, err := run(t, append([]string{"users", "sites"}, append(conn, "alice")...)...); err == nil || !strings.Contains(err.Error(), "usage:") {
		t.Fatalf("users sites without sites: %v", err)
	}
	out, _, err = run(t, append([]string{"users", "list", "--search", "ALI"}, conn...)...)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || !strings.HasPrefix(lines[1], "alice") {
		t.Fatalf("list --search: %q %v", out, err)
	}
	out, _, err = run(t, append([]string{"users", "show"}, append(conn, "alice")...)...)
	var detail httpapi.UserDetail
	if err != nil || json.Unmarshal([]byte(out), &detail) != nil || detail.UserID != "alice" || len(detail.Images) != 1 {
		t.Fatalf("show: %q %v", out, err)
	}
	out, stderr, err = run(t, append([]string{"users", "rm"}, append(conn, "alice", "nobody")...)...)
	if err == nil || !strings.Contains(out, "deleted alice") || !strings.Contains(stderr, "nobody: No user \"nobody\" is registered. (HTTP 404, user_not_found)") {
		t.Fatalf("rm: %q %q %v", out, stderr, err)
	}
	if _, _, err := run(t, "users", "list", "--url", e.url, "--token", "bad"); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("bad token: %v", err)
	}
	if _, _, err := run(t, "users", "list", "--url", e.url, "--token", ""); err == nil || !strings.Contains(err.Error(), "FACEAUTH_TOKEN") {
		t.Fatalf("no token: %v", err)
	}
}

func TestImport(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "photos")
	write(t, filepath.Join(src, "alice", "1.jpg"), faces[0])
	write(t, filepath.Join(src, "alice", "wall.jpg"), facetest.NoFaceJPEG(t))
	write(t, filepath.Join(src, "bob", "1.jpg"), faces[1])
	write(t, filepath.Join(src, "bob", "notes.txt"), []byte("not a photo"))
	write(t, filepath.Join(src, "-bad", "1.jpg"), faces[2])
	conn := []string{"--url", e.url, "--token", e.token}

	out, stderr, err := run(t, append(append([]string{"import"}, conn...), src)...)
	if err == nil {
		t.Fatal("import with failures exited 0")
	}
	if !strings.Contains(out, "imported 2, already done 0, failed 3") {
		t.Fatalf("summary: %q", out)
	}
	for _, want := range []string{
		"FAILED alice " + filepath.Join(src, "alice", "wall.jpg") + ": ",
		"FAILED bob " + filepath.Join(src, "bob", "notes.txt") + ": ",
		"FAILED -bad ",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if users, _, _ := e.reg.List(t.Context(), "", "", "", 10); len(users) != 2 {
		t.Fatalf("%d users after import", len(users))
	}
	// Run again: the done photos are skipped, the failed ones tried again.
	out, _, _ = run(t, append(append([]string{"import"}, conn...), src)...)
	if !strings.Contains(out, "imported 0, already done 2, failed 3") {
		t.Fatalf("second run: %q", out)
	}
	state, _ := os.ReadFile(src + ".import-state")
	if got := strings.Count(string(state), "\n"); got != 2 {
		t.Fatalf("state file has %d entries:\n%s", got, state)
	}

	// A CSV source.
	dir := t.TempDir()
	write(t, filepath.Join(dir, "img", "c.jpg"), faces[2])
	write(t, filepath.Join(dir, "list.csv"), []byte("user_id,file\ncarol,img/c.jpg\ndave,img/missing.jpg\nonly-one-column\n"))
	out, stderr, _ = run(t, append(append([]string{"import"}, conn...), filepath.Join(dir, "list.csv"))...)
	if !strings.Contains(out, "imported 1, already done 0, failed 2") || !strings.Contains(stderr, "missing.jpg") || !strings.Contains(stderr, "two columns") {
		t.Fatalf("csv: %q %q", out, stderr)
	}
	if _, err := e.reg.Get(t.Context(), "carol"); err != nil {
		t.Fatal(err)
	}
}

// TestTokenRevoke revokes a subject with `central token revoke`, lists it
// with `central token revocations`, and checks that its token is refused.
func TestTokenRevoke(t *testing.T) {
	e := newEnv(t)
	conn := []string{"--url", e.url, "--token", e.token}
	door, _ := e.signer.Issue("door-9", auth.RoleVerify, time.Hour, time.Now().Add(-time.Minute))

	out, _, err := run(t, append([]string{"token", "revocations"}, conn...)...)
	if err != nil || !strings.Contains(out, "no revoked tokens") {
		t.Fatalf("empty list: %q %v", out, err)
	}
	out, _, err = run(t, append([]string{"token", "revoke", "--reason", "stolen van"}, append(conn, "door-9")...)...)
	if err != nil || !strings.HasPrefix(out, `revoked the tokens of "door-9" issued up to `) {
		t.Fatalf("revoke: %q %v", out, err)
	}
	out, _, err = run(t, append([]string{"token", "revocations"}, conn...)...)
	if err != nil || !strings.Contains(out, "door-9") || !strings.Contains(out, "stolen van") || !strings.Contains(out, "list version ") {
		t.Fatalf("list: %q %v", out, err)
	}
	out, _, err = run(t, append([]string{"token", "revocations", "--json"}, conn...)...)
	var list httpapi.RevocationsResponse
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || list.Version == 0 || list.Revocations[0].Subject != "door-9" {
		t.Fatalf("list --json: %q %v", out, err)
	}
	if _, _, err := run(t, "users", "list", "--url", e.url, "--token", door); err == nil || !strings.Contains(err.Error(), "token_revoked") {
		t.Fatalf("revoked token: %v", err)
	}
	if _, _, err := run(t, append([]string{"token", "revoke"}, conn...)...); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("no subject: %v", err)
	}
}
