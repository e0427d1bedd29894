// Package serveflags holds the request-handling flags that `central serve`
// and `edged run` share, so both binaries read the same variables with the
// same defaults and the same checks: both serve the same verify contract.
package serveflags

import (
	"fmt"
	"net/netip"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/config"
	"github.com/xplore/faceauth/models/photo"
)

// Flags returns the shared flags: liveness, body and pixel limits, and the
// per-user verify lockout.
func Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "liveness", Usage: "presentation-attack check on verify and identify: off or on", EnvVars: []string{"LIVENESS"}, Value: "off"},
		&cli.StringFlag{Name: "max-body-bytes", Usage: "request body limit (413 above it)", EnvVars: []string{"MAX_BODY_BYTES"}, Value: "10MiB"},
		&cli.Int64Flag{Name: "max-pixels", Usage: "largest image accepted, in pixels, read from the header before decoding (413 above it)", EnvVars: []string{"MAX_PIXELS"}, Value: photo.DefaultMaxPixels},
		&cli.IntFlag{Name: "verify-max-failures", Usage: "failed verifications within the window that lock a user (0: no lockout)", EnvVars: []string{"VERIFY_MAX_FAILURES"}, Value: api.DefaultLimit.MaxFailures},
		&cli.StringFlag{Name: "verify-failure-window", Usage: "window in which failures are counted", EnvVars: []string{"VERIFY_FAILURE_WINDOW"}, Value: api.DefaultLimit.Window.String()},
		&cli.IntFlag{Name: "verify-client-max-failures", Usage: "failed verifications from one client within the window, of any users, that lock the client's verifications (0: no such bound)", EnvVars: []string{"VERIFY_CLIENT_MAX_FAILURES"}, Value: api.DefaultClientMaxFailures},
		&cli.IntFlag{Name: "verify-user-ceiling", Usage: "consecutive failed verifications of a user from all clients that lock the user for everyone (NIST SP 800-63B: at most 100)", EnvVars: []string{"VERIFY_USER_CEILING"}, Value: api.DefaultUserCeiling},
		&cli.StringFlag{Name: "verify-failure-scores", Usage: "include the similarity in failed verifications: off or on (it helps tune a fake)", EnvVars: []string{"VERIFY_FAILURE_SCORES"}, Value: "off"},
		&cli.IntFlag{Name: "pipeline-queue", Usage: "image requests that may wait for a face pipeline slot; more are answered 503 at once", EnvVars: []string{"PIPELINE_QUEUE"}, Value: api.DefaultAdmit.Queue},
		&cli.IntFlag{Name: "pipeline-queue-per-client", Usage: "of the pipeline's slots and queue, how many one client (token subject) may hold at once; more get 503 at once (0: no share)", EnvVars: []string{"PIPELINE_QUEUE_PER_CLIENT"}, Value: api.DefaultAdmit.PerClient},
		&cli.StringFlag{Name: "pipeline-wait", Usage: "longest wait for a face pipeline slot before 503", EnvVars: []string{"PIPELINE_WAIT"}, Value: api.DefaultAdmit.Wait.String()},
		&cli.StringFlag{Name: "memory-release-idle", Usage: "give freed memory back to the system after this long without image requests (0: never)", EnvVars: []string{"MEMORY_RELEASE_IDLE"}, Value: api.DefaultAdmit.IdleRelease.String()},
		&cli.StringFlag{Name: "verify-without-token-from", Usage: "networks (CIDRs, comma-separated) whose door controllers may call POST /api/verify without a token; off by default", EnvVars: []string{"VERIFY_WITHOUT_TOKEN_FROM"}},
		&cli.StringFlag{Name: "verify-lockout", Usage: "how long a locked user gets 429", EnvVars: []string{"VERIFY_LOCKOUT"}, Value: api.DefaultLimit.Lockout.String()},
	}
}

// Settings are the parsed shared flags.
type Settings struct {
	Liveness     bool
	MaxBodyBytes int64
	MaxPixels    int64
	Limit        api.LimitConfig
	// FailureScores puts the similarity into failed verifications.
	FailureScores bool
	// Admit has the queue, wait and idle release; the caller sets Slots to
	// the engine's workers.
	Admit api.AdmitConfig
	// TokenlessVerify are the networks that may verify without a token
	// (api.AllowWithoutToken); none by default.
	TokenlessVerify []netip.Prefix
}

// Parse reads and checks the shared flags. An error names the variable and
// the flag.
func Parse(c *cli.Context) (Settings, error) {
	var s Settings
	var err error
	bad := func(env, flag string, err error) error { return fmt.Errorf("%s (--%s): %w", env, flag, err) }
	if s.Liveness, err = config.ParseSwitch(c.String("liveness")); err != nil {
		return s, bad("LIVENESS", "liveness", err)
	}
	if s.MaxBodyBytes, err = config.ParseBytes(c.String("max-body-bytes")); err != nil || s.MaxBodyBytes <= 0 {
		return s, bad("MAX_BODY_BYTES", "max-body-bytes", fmt.Errorf("%q is not a positive size", c.String("max-body-bytes")))
	}
	if s.MaxPixels = c.Int64("max-pixels"); s.MaxPixels <= 0 {
		return s, bad("MAX_PIXELS", "max-pixels", fmt.Errorf("%d is not positive", s.MaxPixels))
	}
	if s.Limit.MaxFailures = c.Int("verify-max-failures"); s.Limit.MaxFailures < 0 {
		return s, bad("VERIFY_MAX_FAILURES", "verify-max-failures", fmt.Errorf("%d is negative", s.Limit.MaxFailures))
	}
	if s.Limit.Window, err = config.ParseDuration(c.String("verify-failure-window")); err != nil || s.Limit.Window <= 0 {
		return s, bad("VERIFY_FAILURE_WINDOW", "verify-failure-window", fmt.Errorf("%q is not a positive duration", c.String("verify-failure-window")))
	}
	if s.Limit.Lockout, err = config.ParseDuration(c.String("verify-lockout")); err != nil || s.Limit.Lockout <= 0 {
		return s, bad("VERIFY_LOCKOUT", "verify-lockout", fmt.Errorf("%q is not a positive duration", c.String("verify-lockout")))
	}
	if s.Limit.UserCeiling = c.Int("verify-user-ceiling"); s.Limit.UserCeiling < 1 || s.Limit.UserCeiling > 100 {
		return s, bad("VERIFY_USER_CEILING", "verify-user-ceiling", fmt.Errorf("%d is not from 1 to 100", s.Limit.UserCeiling))
	}
	if s.Limit.ClientMaxFailures = c.Int("verify-client-max-failures"); s.Limit.ClientMaxFailures < 0 {
		return s, bad("VERIFY_CLIENT_MAX_FAILURES", "verify-client-max-failures", fmt.Errorf("%d is negative", s.Limit.ClientMaxFailures))
	}
	if s.FailureScores, err = config.ParseSwitch(c.String("verify-failure-scores")); err != nil {
		return s, bad("VERIFY_FAILURE_SCORES", "verify-failure-scores", err)
	}
	if s.Admit.Queue = c.Int("pipeline-queue"); s.Admit.Queue < 0 {
		return s, bad("PIPELINE_QUEUE", "pipeline-queue", fmt.Errorf("%d is negative", s.Admit.Queue))
	}
	if s.Admit.PerClient = c.Int("pipeline-queue-per-client"); s.Admit.PerClient < 0 {
		return s, bad("PIPELINE_QUEUE_PER_CLIENT", "pipeline-queue-per-client", fmt.Errorf("%d is negative", s.Admit.PerClient))
	}
	if s.Admit.Wait, err = config.ParseDuration(c.String("pipeline-wait")); err != nil || s.Admit.Wait <= 0 {
		return s, bad("PIPELINE_WAIT", "pipeline-wait", fmt.Errorf("%q is not a positive duration", c.String("pipeline-wait")))
	}
	if s.Admit.IdleRelease, err = config.ParseDuration(c.String("memory-release-idle")); err != nil || s.Admit.IdleRelease < 0 {
		return s, bad("MEMORY_RELEASE_IDLE", "memory-release-idle", fmt.Errorf("%q is not a duration", c.String("memory-release-idle")))
	}
	if s.TokenlessVerify, err = api.ParseNetworks(c.String("verify-without-token-from")); err != nil {
		return s, bad("VERIFY_WITHOUT_TOKEN_FROM", "verify-without-token-from", err)
	}
	return s, nil
}

// AdmitFor returns the admission settings with one pipeline slot per
// engine worker.
func (s Settings) AdmitFor(workers int) api.AdmitConfig {
	cfg := s.Admit
	cfg.Slots = workers
	return cfg
}
