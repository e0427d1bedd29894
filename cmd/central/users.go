package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

func usersCommand() *cli.Command {
	return &cli.Command{
		Name:  "users",
		Usage: "list, show, add and remove users of a running central service (admin token)",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list every user, or those whose id or name contains --search",
				Flags: append([]cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "one JSON object per line"},
					&cli.StringFlag{Name: "search", Usage: "only users whose id or name contains this text, ignoring case"},
					&cli.IntFlag{Name: "page", Usage: "users fetched per request", Value: 500},
				}, clientFlags()...),
				Action: func(c *cli.Context) error {
					cl, err := newClient(c)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					enc := json.NewEncoder(c.App.Writer)
					if !c.Bool("json") {
						fmt.Fprintln(tw, "USER_ID\tNAME\tIMAGES\tREVISION\tUPDATED")
					}
					after := ""
					for {
						page, err := cl.listUsers(c.Context, c.String("search"), after, c.Int("page"))
						if err != nil {
							return err
						}
						for _, u := range page.Users {
							if c.Bool("json") {
								enc.Encode(u)
								continue
							}
							fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", u.UserID, u.Name, u.References, u.Revision, u.UpdatedAt.Format(time.RFC3339))
						}
						if page.Next == "" {
							return tw.Flush()
						}
						after = page.Next
					}
				},
			},
			{
				Name:      "show",
				Usage:     "show a user and their reference images",
				ArgsUsage: "USER_ID",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("usage: central users show USER_ID")
					}
					cl, err := newClient(c)
					if err != nil {
						return err
					}
					u, err := cl.getUser(c.Context, c.Args().First())
					if err != nil {
						return err
					}
					enc := json.NewEncoder(c.App.Writer)
					enc.SetIndent("", "  ")
					return enc.Encode(u)
				},
			},
			{
				Name:      "add",
				Usage:     "register a user from photos, or add photos to an existing user",
				ArgsUsage: "USER_ID IMAGE...",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "name", Usage: "display name"},
					&cli.StringFlag{Name: "site", Usage: "for a new user: the site whose edges alone receive it (default: every edge)"},
				}, clientFlags()...),
				Action: func(c *cli.Context) error {
					if c.NArg() < 2 {
						return errors.New("usage: central users add USER_ID IMAGE [MORE_IMAGES]")
					}
					cl, err := newClient(c)
					if err != nil {
						return err
					}
					res, err := cl.register(c.Context, c.Args().First(), c.String("name"), c.String("site"), c.Args().Slice()[1:])
					if err != nil {
						return err
					}
					verb := "updated"
					if res.Created {
						verb = "created"
					}
					fmt.Fprintf(c.App.Writer, "%s %s: %d reference image(s), revision %d, model %s\n", verb, res.UserID, res.References, res.Revision, res.Model)
					return nil
				},
			},
			{
				Name:      "site",
				Usage:     "distribute a user only to the edges of SITE (EDGE_SITES), or with --everywhere to every edge; the edges it leaves erase it",
				ArgsUsage: "USER_ID [SITE]",
				Flags:     append([]cli.Flag{&cli.BoolFlag{Name: "everywhere", Usage: "send the user to every edge (no site)"}}, clientFlags()...),
				Action: func(c *cli.Context) error {
					site := c.Args().Get(1)
					if c.NArg() < 1 || c.NArg() > 2 || (site == "") == !c.Bool("everywhere") {
						return errors.New("usage: central users site USER_ID SITE, or central users site --everywhere USER_ID")
					}
					cl, err := newClient(c)
					if err != nil {
						return err
					}
					res, err := cl.setSite(c.Context, c.Args().First(), site)
					if err != nil {
						return err
					}
					where := "site " + res.Site
					if res.Site == "" {
						where = "every edge"
					}
					fmt.Fprintf(c.App.Writer, "%s: %s (revision %d)\n", res.UserID, where, res.Revision)
					return nil
				},
			},
			{
				Name:      "rm",
				Usage:     "erase users: records, images and embeddings, also from the edges",
				ArgsUsage: "USER_ID...",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() < 1 {
						return errors.New("usage: central users rm USER_ID [MORE_USER_IDS]")
					}
					cl, err := newClient(c)
					if err != nil {
						return err
					}
					var failed int
					for _, id := range c.Args().Slice() {
						res, err := cl.deleteUser(c.Context, id)
						if err != nil {
							fmt.Fprintf(c.App.ErrWriter, "%s: %v\n", id, err)
							failed++
							continue
						}
						fmt.Fprintf(c.App.Writer, "deleted %s (revision %d)\n", res.UserID, res.Revision)
					}
					if failed > 0 {
						return fmt.Errorf("%d of %d deletions failed", failed, c.NArg())
					}
					return nil
				},
			},
		},
	}
}
