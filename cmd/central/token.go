package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/auth"
	"github.com/xplore/faceauth/config"
)

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "mint API bearer tokens with the service's signing key (SECRET_KEY or the key file)",
		Subcommands: []*cli.Command{{
			Name:      "create",
			Usage:     "print a new bearer token",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "role", Usage: "admin (register, users, edges, verify) or verify (verify, identify)", Required: true},
				&cli.StringFlag{Name: "ttl", Usage: "validity, e.g. 24h or 720h; 0 never expires", Value: "2160h"},
				&cli.StringFlag{Name: "subject", Usage: "who the token is for (shows in the logs)", Value: "cli"},
				dataFlag(),
				keyFileFlag(),
			},
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return fmt.Errorf("token create takes no arguments, got %q", c.Args().First())
				}
				role, err := auth.ParseRole(c.String("role"))
				if err != nil {
					return err
				}
				ttl, err := config.ParseDuration(c.String("ttl"))
				if err != nil {
					return fmt.Errorf("--ttl: %w", err)
				}
				keyFile := c.String("token-key-file")
				if keyFile == "" {
					keyFile = filepath.Join(c.String("data"), auth.KeyFileName)
				}
				signer, err := loadSigner(os.Getenv("SECRET_KEY"), keyFile, newLogger(0))
				if err != nil {
					return err
				}
				now := time.Now()
				tok, err := signer.Issue(c.String("subject"), role, ttl, now)
				if err != nil {
					return err
				}
				if ttl > 0 {
					fmt.Fprintf(c.App.ErrWriter, "%s token for %q, valid until %s\n", role, c.String("subject"), now.Add(ttl).UTC().Format(time.RFC3339))
				} else {
					fmt.Fprintf(c.App.ErrWriter, "%s token for %q, never expires (rotate the key to revoke it)\n", role, c.String("subject"))
				}
				fmt.Fprintln(c.App.Writer, tok)
				return nil
			},
		}},
	}
}
