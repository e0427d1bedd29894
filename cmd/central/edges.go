package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/central/fleet"
)

// jsonFlag makes the edges and deletions commands print JSON.
func jsonFlag() cli.Flag { return &cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"} }

// edgesResponse mirrors the body of GET /api/edges.
type edgesResponse struct {
	Edges []fleet.EdgeState `json:"edges"`
}

func edgesCommand() *cli.Command {
	return &cli.Command{
		Name:  "edges",
		Usage: "list every edge with its state, lag and last heartbeat (GET /api/edges)",
		Description: "States: in_sync, behind (a change older than its last heartbeat is not applied), " +
			"offline (no heartbeat for 30 s), model_mismatch (another verification model), " +
			"rejecting (the edge refused forged or replayed feed messages within the hour). See docs/sync.md.",
		Flags: append([]cli.Flag{jsonFlag(),
			&cli.BoolFlag{Name: "check", Usage: "exit with status 1 when an edge is not in_sync (for monitoring)"},
		}, clientFlags()...),
		Subcommands: []*cli.Command{forgetEdgeCommand()},
		Action: func(c *cli.Context) error {
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			var resp edgesResponse
			if err := cl.do(c.Context, http.MethodGet, "/api/edges", "", nil, &resp); err != nil {
				return err
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, resp); err != nil {
					return err
				}
			} else {
				printEdges(c.App.Writer, resp.Edges, time.Now())
			}
			if c.Bool("check") {
				for _, e := range resp.Edges {
					if e.State != fleet.StateInSync {
						return cli.Exit("", 1)
					}
				}
			}
			return nil
		},
	}
}

func forgetEdgeCommand() *cli.Command {
	return &cli.Command{
		Name:      "forget",
		Usage:     "forget an edge taken out of service (DELETE /api/edges/{id})",
		ArgsUsage: "EDGE_ID",
		Description: "The edge leaves the list and the pending deletions, so a decommissioned device no longer " +
			"shows as offline or fails `central edges --check`. Forget a device only once it is wiped or destroyed: " +
			"central can no longer tell whether it purged deleted users. A running edge reappears at its next heartbeat.",
		Flags: clientFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("central edges forget: give exactly one EDGE_ID", 2)
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			id := c.Args().First()
			if err := cl.do(c.Context, http.MethodDelete, "/api/edges/"+url.PathEscape(id), "", nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "edge %s forgotten\n", id)
			return nil
		},
	}
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printEdges writes the edges as a table.
func printEdges(w io.Writer, edges []fleet.EdgeState, now time.Time) {
	if len(edges) == 0 {
		fmt.Fprintln(w, "no edge has reported yet")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EDGE\tSITES\tSTATE\tLAG\tPENDING\tLAST SEEN\tUSERS\tVERSION\tMODEL\tLAST ERROR")
	for _, e := range edges {
		state := e.State
		if e.Resyncing {
			state += " (resyncing)"
		}
		if len(e.RefusedModels) > 0 {
			state += " (refuses " + strings.Join(e.RefusedModels, ",") + ")"
		}
		lastErr := e.LastError
		if e.State == fleet.StateRejecting {
			state += fmt.Sprintf(" (%d refused)", e.FeedRejected)
			lastErr = e.LastReject
		}
		sites := "(none)" // only users of no site
		if len(e.Sites) > 0 {
			sites = strings.Join(e.Sites, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n",
			e.ID, sites, state, e.Lag, e.PendingMessages, ago(now, e.LastSeen), e.UserCount, e.Version, e.Model, oneLine(lastErr))
	}
	tw.Flush()
}

// ago renders how long before now t was, e.g. "12s ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02 15:04")
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
