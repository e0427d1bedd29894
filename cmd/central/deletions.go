package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/central/fleet"
)

// deletionsResponse mirrors the body of GET /api/deletions.
type deletionsResponse struct {
	Deletions []fleet.DeletionState `json:"deletions"`
	Next      string                `json:"next,omitempty"`
}

func deletionsCommand() *cli.Command {
	return &cli.Command{
		Name:  "deletions",
		Usage: "list erased users and which edges have confirmed purging them (GET /api/deletions)",
		Flags: append([]cli.Flag{jsonFlag(),
			&cli.BoolFlag{Name: "pending", Usage: "only deletions some known edge has not confirmed"},
			&cli.IntFlag{Name: "limit", Value: 100, Usage: "deletions per request (1-1000)"},
		}, clientFlags()...),
		Action: func(c *cli.Context) error {
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			q := url.Values{}
			q.Set("limit", strconv.Itoa(c.Int("limit")))
			if c.Bool("pending") {
				q.Set("pending", "true")
			}
			all := []fleet.DeletionState{}
			for {
				var resp deletionsResponse
				if err := cl.do(c.Context, http.MethodGet, "/api/deletions?"+q.Encode(), "", nil, &resp); err != nil {
					return err
				}
				all = append(all, resp.Deletions...)
				if resp.Next == "" {
					break
				}
				q.Set("after", resp.Next)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, deletionsResponse{Deletions: all})
			}
			printDeletions(c.App.Writer, all)
			return nil
		},
	}
}

// printDeletions writes the deletions as a table.
func printDeletions(w io.Writer, dels []fleet.DeletionState) {
	if len(dels) == 0 {
		fmt.Fprintln(w, "no deletions")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tREVISION\tDELETED\tPURGED\tPENDING")
	for _, d := range dels {
		deleted := "-"
		if !d.DeletedAt.IsZero() {
			deleted = d.DeletedAt.Local().Format(time.DateTime)
		}
		pending := strings.Join(d.Pending, ",")
		if pending == "" {
			pending = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d/%d\t%s\n", d.UserID, d.Revision, deleted, len(d.Purged), len(d.Purged)+len(d.Pending), pending)
	}
	tw.Flush()
}
