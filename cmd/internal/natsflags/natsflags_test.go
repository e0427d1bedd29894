package natsflags

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/internal/natsconn"
)

// run parses args with the flags the way a binary does and returns the
// options they give.
func run(t *testing.T, defaultURL string, args ...string) natsconn.ConnectOptions {
	t.Helper()
	var got natsconn.ConnectOptions
	app := &cli.App{
		Name:  "test",
		Flags: Flags(defaultURL, "NATS server URL(s)"),
		Action: func(c *cli.Context) error {
			got = Options(c)
			return nil
		},
	}
	if err := app.Run(append([]string{"test"}, args...)); err != nil {
		t.Fatal(err)
	}
	return got
}

// unsetenv removes v for the test, restoring it afterwards.
func unsetenv(t *testing.T, v string) {
	t.Helper()
	t.Setenv(v, "") // registers the restore
	os.Unsetenv(v)
}

func TestOptions(t *testing.T) {
	const def = "nats://127.0.0.1:4222"
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want natsconn.ConnectOptions
	}{
		{name: "default", want: natsconn.ConnectOptions{URL: def}},
		{name: "flag", args: []string{"--nats-url", "nats://a:1"}, want: natsconn.ConnectOptions{URL: "nats://a:1"}},
		{name: "former name", args: []string{"--nats", "nats://b:2"}, want: natsconn.ConnectOptions{URL: "nats://b:2"}},
		{name: "variable", env: map[string]string{"NATS_URL": "nats://c:3"}, want: natsconn.ConnectOptions{URL: "nats://c:3"}},
		{name: "former name over variable", env: map[string]string{"NATS_URL": "nats://c:3"}, args: []string{"--nats", "nats://b:2"}, want: natsconn.ConnectOptions{URL: "nats://b:2"}},
		{name: "flag over variable", env: map[string]string{"NATS_URL": "nats://c:3"}, args: []string{"--nats-url", "nats://a:1"}, want: natsconn.ConnectOptions{URL: "nats://a:1"}},
		{
			name: "credentials and TLS from flags",
			args: []string{"--nats-user", "u", "--nats-password", "p", "--nats-nkey", "k.nk", "--nats-creds", "c.creds",
				"--nats-ca", "ca.pem", "--nats-cert", "cert.pem", "--nats-key", "key.pem"},
			want: natsconn.ConnectOptions{URL: def, User: "u", Password: "p", NKeySeedFile: "k.nk", CredsFile: "c.creds",
				CAFile: "ca.pem", CertFile: "cert.pem", KeyFile: "key.pem"},
		},
		{
			name: "credentials and TLS from variables",
			env: map[string]string{"NATS_USER": "u", "NATS_PASSWORD": "p", "NATS_NKEY_SEED": "k.nk", "NATS_CREDS": "c.creds",
				"NATS_CA": "ca.pem", "NATS_CERT": "cert.pem", "NATS_KEY": "key.pem"},
			want: natsconn.ConnectOptions{URL: def, User: "u", Password: "p", NKeySeedFile: "k.nk", CredsFile: "c.creds",
				CAFile: "ca.pem", CertFile: "cert.pem", KeyFile: "key.pem"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_NKEY_SEED", "NATS_CREDS", "NATS_CA", "NATS_CERT", "NATS_KEY"} {
				unsetenv(t, v)
				if val, ok := tc.env[v]; ok {
					t.Setenv(v, val)
				}
			}
			if got := run(t, def, tc.args...); got != tc.want {
				t.Errorf("options = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestEmptyDefault: central leaves the URL empty to run its embedded
// server.
func TestEmptyDefault(t *testing.T) {
	unsetenv(t, "NATS_URL")
	if got := run(t, ""); got.URL != "" {
		t.Errorf("URL = %q, want empty", got.URL)
	}
}

// TestHelpHidesFormerName: the help shows one name for the URL.
func TestHelpHidesFormerName(t *testing.T) {
	var out bytes.Buffer
	app := &cli.App{Name: "test", Flags: Flags("", "NATS server URL(s)"), Writer: &out}
	if err := app.Run([]string{"test", "--help"}); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	if !strings.Contains(help, "--"+URLFlag) {
		t.Errorf("help lacks --%s:\n%s", URLFlag, help)
	}
	if strings.Contains(help, "--"+oldURLFlag+" ") {
		t.Errorf("help shows the former name --%s:\n%s", oldURLFlag, help)
	}
}
