package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/publish"
	"github.com/xplore/faceauth/internal/natsconn"
)

func resyncCommand() *cli.Command {
	return &cli.Command{
		Name:  "resync",
		Usage: "republish every user and deletion to the edges over NATS (docs/sync.md)",
		Description: "Reads the store and talks to NATS directly, with the same settings as serve " +
			"(a running serve's embedded NATS is reached at NATS_LISTEN). Edges apply what is newer " +
			"than what they hold. With --recreate the users stream is deleted and created again first, " +
			"and every edge rebuilds its cache from it, dropping users the store no longer has.",
		Flags: append(serveCommand().Flags,
			&cli.BoolFlag{Name: "recreate", Usage: "delete and re-create the users stream first: every edge rebuilds its cache"},
			&cli.StringFlag{Name: "nats-wait", Value: "30s", Usage: "how long to wait for NATS to be reachable"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := parseServeConfig(c)
			if err != nil {
				return err
			}
			wait, err := time.ParseDuration(c.String("nats-wait"))
			if err != nil {
				return fmt.Errorf("--nats-wait: %w", err)
			}
			log := newLogger(cfg.logLevel)
			ctx := c.Context
			store, where, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			// Snapshot only reads the store: no face engine is needed.
			reg := central.NewRegistry(central.Config{Store: store, Log: log})
			signer, err := loadSigner(cfg.secret, cfg.keyFile, log)
			if err != nil {
				return err
			}
			feedKey, err := feedSigner(signer)
			if err != nil {
				return err
			}
			url := natsClientURL(c)
			nc, err := natsconn.Connect(ctx, clientOptions(c, url, log))
			if err != nil {
				return err
			}
			defer nc.Close()
			pub, err := publish.New(nc, publish.Options{Log: log, Streams: streamOptions(c), Signer: feedKey, Timeout: time.Minute})
			if err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			if err := waitNATS(wctx, nc); err != nil {
				return faceauth.Wrap(err, faceauth.KindUnavailable, "nats_unreachable",
					"NATS at %s is unreachable: start `central serve` (it embeds NATS) or set NATS_URL.", url)
			}
			start := time.Now()
			n, err := pub.Resync(ctx, reg, publish.ResyncOptions{Recreate: c.Bool("recreate")})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "republished %d users and deletions from %s in %s\n", n, where, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
}

// waitNATS waits until nc is connected.
func waitNATS(ctx context.Context, nc interface{ IsConnected() bool }) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
