package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/feed"
)

// apiFlags say how the edges and deletions commands reach the central
// service, like the other admin commands.
func apiFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "url", EnvVars: []string{"FACEAUTH_URL"}, Value: "http://127.0.0.1:5000", Usage: "base URL of the central service"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"FACEAUTH_TOKEN"}, Usage: "admin bearer token"},
		&cli.BoolFlag{Name: "json", Usage: "print the API's JSON instead of a table"},
	}
}

// edgesResponse mirrors the body of GET /api/edges.
type edgesResponse struct {
	Edges []feed.EdgeState `json:"edges"`
}

func edgesCommand() *cli.Command {
	return &cli.Command{
		Name:  "edges",
		Usage: "list every edge with its state, lag and last heartbeat (GET /api/edges)",
		Description: "States: in_sync, behind (a change older than its last heartbeat is not applied), " +
			"offline (no heartbeat for 30 s), model_mismatch (another verification model). See docs/sync.md.",
		Flags: append(apiFlags(), &cli.BoolFlag{Name: "check", Usage: "exit with status 1 when an edge is not in_sync (for monitoring)"}),
		Action: func(c *cli.Context) error {
			body, err := apiGet(c.Context, c, "/api/edges", nil)
			if err != nil {
				return err
			}
			var resp edgesResponse
			if err := json.Unmarshal(body, &resp); err != nil {
				return fmt.Errorf("decode the answer of /api/edges: %w", err)
			}
			if c.Bool("json") {
				os.Stdout.Write(body)
			} else {
				printEdges(os.Stdout, resp.Edges, time.Now())
			}
			if c.Bool("check") {
				for _, e := range resp.Edges {
					if e.State != feed.StateInSync {
						return cli.Exit("", 1)
					}
				}
			}
			return nil
		},
	}
}

// printEdges writes the edges as a table.
func printEdges(w io.Writer, edges []feed.EdgeState, now time.Time) {
	if len(edges) == 0 {
		fmt.Fprintln(w, "no edge has reported yet")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EDGE\tSTATE\tLAG\tPENDING\tLAST SEEN\tUSERS\tVERSION\tMODEL\tLAST ERROR")
	for _, e := range edges {
		state := e.State
		if e.Resyncing {
			state += " (resyncing)"
		}
		if len(e.RefusedModels) > 0 {
			state += " (refuses " + strings.Join(e.RefusedModels, ",") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n",
			e.ID, state, e.Lag, e.PendingMessages, ago(now, e.LastSeen), e.UserCount, e.Version, e.Model, oneLine(e.LastError))
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

// apiGet GETs path with query from the central service with the admin
// token and returns the body of a 200 answer; other answers become the
// API's error sentence.
func apiGet(ctx context.Context, c *cli.Context, path string, query url.Values) ([]byte, error) {
	base := strings.TrimRight(c.String("url"), "/")
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, faceauth.Wrap(err, faceauth.KindInvalid, "bad_url", "The central URL %q is not valid.", base)
	}
	if tok := c.String("token"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, faceauth.Wrap(err, faceauth.KindUnavailable, "central_unreachable", "Central at %s is unreachable (set --url or FACEAUTH_URL).", base)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s (%s, HTTP %d)", e.Error, e.Code, resp.StatusCode)
		}
		return nil, fmt.Errorf("central answered %s to GET %s", resp.Status, path)
	}
	return body, nil
}
