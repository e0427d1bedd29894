// Package natsflags holds the NATS client flags that `central` and `edged`
// share, so both binaries take the same names and variables for the server
// URL, the credentials and TLS, and turn them into the same
// natsconn.ConnectOptions.
package natsflags

import (
	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/internal/natsconn"
)

// URLFlag is the name of the server URL flag; its variable is NATS_URL.
const URLFlag = "nats-url"

// oldURLFlag is the edge's former name of URLFlag, still accepted but not
// shown in the help. It reads no variable: NATS_URL belongs to URLFlag.
const oldURLFlag = "nats"

// Flags returns the NATS client flags. defaultURL is the server URL when
// none is given (empty at central, where that means running the embedded
// server) and urlUsage the URL flag's help, which says what that default
// means.
func Flags(defaultURL, urlUsage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: URLFlag, EnvVars: []string{"NATS_URL"}, Value: defaultURL, Usage: urlUsage},
		&cli.StringFlag{Name: oldURLFlag, Hidden: true, Usage: "former name of --" + URLFlag},
		&cli.StringFlag{Name: "nats-user", EnvVars: []string{"NATS_USER"}, Usage: "NATS user"},
		&cli.StringFlag{Name: "nats-password", EnvVars: []string{"NATS_PASSWORD"}, Usage: "NATS password"},
		&cli.StringFlag{Name: "nats-nkey", EnvVars: []string{"NATS_NKEY_SEED"}, Usage: "file with this client's NATS NKey seed"},
		&cli.StringFlag{Name: "nats-creds", EnvVars: []string{"NATS_CREDS"}, Usage: "NATS .creds file (operator mode)"},
		&cli.StringFlag{Name: "nats-ca", EnvVars: []string{"NATS_CA"}, Usage: "CA file the NATS server certificate must chain to"},
		&cli.StringFlag{Name: "nats-cert", EnvVars: []string{"NATS_CERT"}, Usage: "client certificate file for mutual TLS with NATS"},
		&cli.StringFlag{Name: "nats-key", EnvVars: []string{"NATS_KEY"}, Usage: "client key file for mutual TLS with NATS"},
	}
}

// URL returns the server URL: the former flag name when given on the
// command line (a flag wins over NATS_URL, as it did), else --nats-url,
// NATS_URL or the default.
func URL(c *cli.Context) string {
	if c.IsSet(oldURLFlag) {
		return c.String(oldURLFlag)
	}
	return c.String(URLFlag)
}

// Options returns the connection options the flags give. The caller sets
// the client's Name, Log and, at an edge, InboxPrefix.
func Options(c *cli.Context) natsconn.ConnectOptions {
	return natsconn.ConnectOptions{
		URL:          URL(c),
		User:         c.String("nats-user"),
		Password:     c.String("nats-password"),
		NKeySeedFile: c.String("nats-nkey"),
		CredsFile:    c.String("nats-creds"),
		CAFile:       c.String("nats-ca"),
		CertFile:     c.String("nats-cert"),
		KeyFile:      c.String("nats-key"),
	}
}
