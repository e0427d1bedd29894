package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/feed"
)

// deletionsResponse mirrors the body of GET /api/deletions.
type deletionsResponse struct {
	Deletions []feed.DeletionState `json:"deletions"`
	Next      string               `json:"next,omitempty"`
}

func deletionsCommand() *cli.Command {
	return &cli.Command{
		Name:  "deletions",
		Usage: "list erased users and which edges have confirmed purging them (GET /api/deletions)",
		Flags: append(apiFlags(),
			&cli.BoolFlag{Name: "pending", Usage: "only deletions some known edge has not confirmed"},
			&cli.IntFlag{Name: "limit", Value: 100, Usage: "deletions per page (1-1000)"},
			&cli.BoolFlag{Name: "all", Usage: "follow every page"},
		),
		Action: func(c *cli.Context) error {
			q := url.Values{}
			q.Set("limit", strconv.Itoa(c.Int("limit")))
			if c.Bool("pending") {
				q.Set("pending", "true")
			}
			var all []feed.DeletionState
			for {
				body, err := apiGet(c.Context, c, "/api/deletions", q)
				if err != nil {
					return err
				}
				var resp deletionsResponse
				if err := json.Unmarshal(body, &resp); err != nil {
					return fmt.Errorf("decode the answer of /api/deletions: %w", err)
				}
				if c.Bool("json") && !c.Bool("all") {
					os.Stdout.Write(body)
					return nil
				}
				all = append(all, resp.Deletions...)
				if !c.Bool("all") || resp.Next == "" {
					break
				}
				q.Set("after", resp.Next)
			}
			if c.Bool("json") {
				return json.NewEncoder(os.Stdout).Encode(deletionsResponse{Deletions: all})
			}
			printDeletions(os.Stdout, all)
			return nil
		},
	}
}

// printDeletions writes the deletions as a table.
func printDeletions(w io.Writer, dels []feed.DeletionState) {
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
