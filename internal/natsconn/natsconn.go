// Package natsconn connects central and the edges to NATS: the options
// both binaries fill from their flags, a connection that keeps retrying
// through outages, and the back-off both retry with.
package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnectOptions say how central or an edge reaches NATS. The command-line
// tools fill them from NATS_URL, NATS_USER, NATS_PASSWORD, NATS_NKEY_SEED,
// NATS_CREDS, NATS_CA, NATS_CERT and NATS_KEY.
type ConnectOptions struct {
	// URL is one or more comma-separated server URLs
	// ("nats://host:4222", "tls://host:4222").
	URL string
	// Name identifies the client in the server's monitoring, e.g.
	// "central" or "edge site-1".
	Name string
	// User and Password authenticate with user/password.
	User, Password string
	// NKeySeedFile is a file holding a user NKey seed ("SU...").
	NKeySeedFile string
	// CredsFile is a .creds file (JWT and seed) for operator-mode servers.
	CredsFile string
	// CAFile is a PEM file of the authority the server's certificate must
	// chain to; CertFile and KeyFile are the client's own certificate and
	// key for mutual TLS.
	CAFile, CertFile, KeyFile string
	// InProcess, when set, connects to an embedded server in the same
	// process (*natsd.Server) without the network; URL is then only a
	// label.
	InProcess nats.InProcessConnProvider
	// InboxPrefix replaces "_INBOX" as the prefix of reply subjects. An
	// edge connecting under pb.EdgePermissions sets it to pb.EdgeInboxPrefix.
	InboxPrefix string
	// Log receives connection events; nil discards them.
	Log *slog.Logger
}

// reconnectBuf is how much the client buffers while disconnected. The
// publisher does not rely on it (it reconciles after a reconnect), but it
// keeps heartbeats and receipts sent during a short blip.
const reconnectBuf = 8 << 20

// Connect connects to NATS. It returns at once even when no server is
// reachable yet: the connection keeps trying for ever, and reconnects for
// ever after a loss, so central and edges start and keep working through
// NATS outages. Only bad options (a missing seed file, no URL) fail.
func Connect(ctx context.Context, o ConnectOptions) (*nats.Conn, error) {
	if o.URL == "" {
		return nil, errors.New("feed: no NATS URL")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.ReconnectBufSize(reconnectBuf),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "err", err)
			} else {
				log.Info("disconnected from NATS")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("NATS error", "subject", subj, "err", err)
		}),
	}
	if o.User != "" || o.Password != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.NKeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("feed: NATS NKey seed %s: %w", o.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" || o.KeyFile != "" {
		if o.CertFile == "" || o.KeyFile == "" {
			return nil, errors.New("feed: a NATS client certificate needs both NATS_CERT and NATS_KEY")
		}
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	if o.InProcess != nil {
		opts = append(opts, nats.InProcessServer(o.InProcess))
	}
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("feed: connect to NATS at %s: %w", o.URL, err)
	}
	return nc, nil
}

// WaitConnected blocks until nc is connected or ctx ends.
func WaitConnected(ctx context.Context, nc *nats.Conn) error {
	if nc.IsConnected() {
		return nil
	}
	ch := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(ch)
	for !nc.IsConnected() {
		if nc.IsClosed() {
			return nats.ErrConnectionClosed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-time.After(time.Second):
		}
	}
	return nil
}

// Backoff yields exponentially growing delays between min and max.
type Backoff struct {
	min, max, cur time.Duration
}

// NewBackoff returns a Backoff from min to max.
func NewBackoff(min, max time.Duration) *Backoff { return &Backoff{min: min, max: max} }

// Next returns the next delay: min first, then twice the last, up to max.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

// Reset starts again from min.
func (b *Backoff) Reset() { b.cur = 0 }
