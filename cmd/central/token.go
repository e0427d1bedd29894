package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/central/httpapi"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/config"
)

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "mint API bearer tokens with the service's signing key (SECRET_KEY or the key file), and revoke them",
		Subcommands: []*cli.Command{{
			Name:      "create",
			Usage:     "print a new bearer token",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "role", Usage: "admin (register, users, edges, verify) or verify (verify, identify)", Required: true},
				&cli.StringFlag{Name: "ttl", Usage: "validity, e.g. 24h or 720h; 0 never expires", Value: "2160h"},
				&cli.StringFlag{Name: "subject", Usage: "who the token is for, e.g. door-3 (shows in the logs; the lockout counts per subject); required for a verify token, cli for an admin token by default"},
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
				subject := c.String("subject")
				if subject == "" {
					if role == auth.RoleVerify {
						// Doors sharing a subject share their lockout counts:
						// one door's failures would lock the others.
						return errors.New("--subject is required for a verify token: name the door or kiosk it is for (e.g. --subject door-3), since the lockout counts failures per subject")
					}
					subject = "cli"
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
				tok, err := signer.Issue(subject, role, ttl, now)
				if err != nil {
					return err
				}
				if ttl > 0 {
					fmt.Fprintf(c.App.ErrWriter, "%s token for %q, valid until %s\n", role, subject, now.Add(ttl).UTC().Format(time.RFC3339))
				} else {
					fmt.Fprintf(c.App.ErrWriter, "%s token for %q, never expires (`central token revoke %s` revokes it)\n", role, subject, subject)
				}
				fmt.Fprintln(c.App.Writer, tok)
				return nil
			},
		}, {
			Name:  "revoke",
			Usage: "revoke every token of SUBJECT issued up to now, at central and at every edge (POST /api/revocations)",
			Description: `Tokens issued for SUBJECT afterwards are valid, so revoke first, then
create the replacement. Edges connected to NATS refuse the revoked tokens
within seconds; an edge offline since refuses them once it reconnects.`,
			ArgsUsage: "SUBJECT",
			Flags:     append([]cli.Flag{&cli.StringFlag{Name: "reason", Usage: "a note kept with the revocation"}}, clientFlags()...),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return fmt.Errorf("usage: central token revoke SUBJECT")
				}
				cl, err := newClient(c)
				if err != nil {
					return err
				}
				rv, err := cl.revoke(c.Context, c.Args().First(), c.String("reason"))
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "revoked the tokens of %q issued up to %s; tokens issued from %s on are valid\n",
					rv.Subject, rv.RevokedAt.UTC().Format(time.RFC3339), rv.RevokedAt.UTC().Truncate(time.Second).Add(time.Second).Format(time.RFC3339))
				return nil
			},
		}, {
			Name:  "revocations",
			Usage: "list the revoked token subjects (GET /api/revocations)",
			Flags: append([]cli.Flag{jsonFlag()}, clientFlags()...),
			Action: func(c *cli.Context) error {
				cl, err := newClient(c)
				if err != nil {
					return err
				}
				var list httpapi.RevocationsResponse
				if err := cl.do(c.Context, http.MethodGet, "/api/revocations", "", nil, &list); err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, list)
				}
				printRevocations(c.App.Writer, list)
				return nil
			},
		}},
	}
}

// printRevocations writes the revocation list as a table.
func printRevocations(w io.Writer, list httpapi.RevocationsResponse) {
	if len(list.Revocations) == 0 {
		fmt.Fprintln(w, "no revoked tokens")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBJECT\tREVOKED (tokens issued up to)\tREASON")
	for _, r := range list.Revocations {
		reason := r.Reason
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Subject, r.RevokedAt.Local().Format(time.DateTime), reason)
	}
	tw.Flush()
	fmt.Fprintf(w, "list version %d (edges report the version they hold in /readyz)\n", list.Version)
}
