package serveflags

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/models/photo"
)

func parse(t *testing.T, args ...string) (Settings, error) {
	t.Helper()
	var s Settings
	var perr error
	app := &cli.App{Name: "x", Flags: Flags(), Writer: io.Discard, ErrWriter: io.Discard,
		Action: func(c *cli.Context) error { s, perr = Parse(c); return nil }}
	if err := app.Run(append([]string{"x"}, args...)); err != nil {
		return s, err
	}
	return s, perr
}

func TestParse(t *testing.T) {
	s, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if s.Liveness || len(s.TokenlessVerify) != 0 || s.MaxBodyBytes != 10<<20 || s.MaxPixels != photo.DefaultMaxPixels || s.Limit != api.DefaultLimit || s.Admit != api.DefaultAdmit || s.FailureScores {
		t.Errorf("defaults = %+v", s)
	}
	s, err = parse(t, "--liveness", "on", "--max-body-bytes", "5MiB", "--verify-max-failures", "0", "--verify-lockout", "1h")
	if err != nil || !s.Liveness || s.MaxBodyBytes != 5<<20 || s.Limit.MaxFailures != 0 || s.Limit.Lockout != time.Hour {
		t.Errorf("set = %+v, %v", s, err)
	}
	t.Setenv("VERIFY_WITHOUT_TOKEN_FROM", "10.20.0.0/24,192.0.2.7")
	if s, err = parse(t); err != nil || len(s.TokenlessVerify) != 2 || s.TokenlessVerify[1].String() != "192.0.2.7/32" {
		t.Errorf("VERIFY_WITHOUT_TOKEN_FROM: %v, %v", s.TokenlessVerify, err)
	}
	t.Setenv("VERIFY_WITHOUT_TOKEN_FROM", "")
	for _, tt := range []struct{ flag, value, want string }{
		{"max-body-bytes", "lots", "MAX_BODY_BYTES (--max-body-bytes)"},
		{"max-body-bytes", "0", "MAX_BODY_BYTES"},
		{"max-pixels", "-5", "MAX_PIXELS"},
		{"verify-client-max-failures", "-1", "VERIFY_CLIENT_MAX_FAILURES"},
		{"pipeline-queue-per-client", "-1", "PIPELINE_QUEUE_PER_CLIENT"},
		{"verify-max-failures", "-1", "VERIFY_MAX_FAILURES"},
		{"verify-failure-window", "0s", "VERIFY_FAILURE_WINDOW"},
		{"verify-lockout", "forever", "VERIFY_LOCKOUT"},
		{"liveness", "maybe", "LIVENESS"},
		{"pipeline-queue", "-1", "PIPELINE_QUEUE"},
		{"verify-user-ceiling", "101", "VERIFY_USER_CEILING"},
		{"verify-failure-scores", "maybe", "VERIFY_FAILURE_SCORES"},
		{"pipeline-wait", "0", "PIPELINE_WAIT"},
		{"memory-release-idle", "never", "MEMORY_RELEASE_IDLE"},
		{"verify-without-token-from", "127.0.0.0/8", "VERIFY_WITHOUT_TOKEN_FROM (--verify-without-token-from): 127.0.0.0/8 includes loopback"},
	} {
		if _, err := parse(t, "--"+tt.flag, tt.value); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--%s %s: err = %v, want one naming %s", tt.flag, tt.value, err, tt.want)
		}
	}
}
