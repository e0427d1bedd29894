package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
				Usage: "list every user, or those whose id or name contains --search, or those of --site",
				Flags: append([]cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "one JSON object per line"},
					&cli.StringFlag{Name: "search", Usage: "only users whose id or name contains this text, ignoring case"},
					&cli.StringFlag{Name: "site", Usage: "only users of this site"},
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
						fmt.Fprintln(tw, "USER_ID\tNAME\tSITES\tIMAGES\tREVISION\tUPDATED")
					}
					after := ""
					for {
						page, err := cl.listUsers(c.Context, c.String("search"), c.String("site"), after, c.Int("page"))
						if err != nil {
							return err
						}
						for _, u := range page.Users {
							if c.Bool("json") {
								enc.Encode(u)
								continue
							}
							fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", u.UserID, u.Name, sitesColumn(u.Sites), u.References, u.Revision, u.UpdatedAt.Format(time.RFC3339))
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
					&cli.StringFlag{Name: "sites", Usage: "for a new user: the sites whose edges alone receive it, comma-separated (default: every edge)"},
				}, clientFlags()...),
				Action: func(c *cli.Context) error {
					if c.NArg() < 2 {
						return errors.New("usage: central users add USER_ID IMAGE [MORE_IMAGES]")
					}
					cl, err := newClient(c)
					if err != nil {
						return err
					}
					res, err := cl.register(c.Context, c.Args().First(), c.String("name"), c.String("sites"), c.Args().Slice()[1:])
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
				Name:      "sites",
				Usage:     "distribute a user only to the edges of SITES (comma-separated; an edge serves the sites in its EDGE_SITES), or with --everywhere to every edge; the edges it leaves erase it",
				ArgsUsage: "USER_ID [SITES]",
				Flags:     append([]cli.Flag{&cli.BoolFlag{Name: "everywhere", Usage: "send the user to every edge (no site)"}}, clientFlags()...),
				Action: func(c *cli.Context) error {
					sites := c.Args().Get(1)
					if c.NArg() < 1 || c.NArg() > 2 || (sites == "") == !c.Bool("everywhere") {
						return errors.New("usage: central users sites USER_ID SITE[,SITE...], or central users sites --everywhere USER_ID")
					}
					cl, err := newClient(c)
					if err != nil {
						return err
					}
					res, err := cl.setSites(c.Context, c.Args().First(), sites)
					if err != nil {
						return err
					}
					where := "sites " + strings.Join(res.Sites, ",")
					if len(res.Sites) == 0 {
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

// sitesColumn shows a user's sites in a table: comma-separated, or
// "(every edge)" for a user of no site.
func sitesColumn(sites []string) string {
	if len(sites) == 0 {
		return "(every edge)"
	}
	return strings.Join(sites, ",")
}
