package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "print the readiness of the edge running on this machine (its GET /readyz)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "the running edge's HTTP address", EnvVars: []string{"EDGE_LISTEN_ADDR"}, Value: defaultListen},
		},
		Action: func(c *cli.Context) error {
			client := &http.Client{Timeout: 5 * time.Second}
			resp, err := client.Get("http://" + c.String("listen") + "/readyz")
			if err != nil {
				return fmt.Errorf("no edge answers on %s: %w", c.String("listen"), err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return err
			}
			var v map[string]any
			if err := json.Unmarshal(body, &v); err != nil {
				return fmt.Errorf("the edge on %s answered %s, not JSON", c.String("listen"), resp.Status)
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(v); err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("the edge is not ready (%s)", resp.Status)
			}
			return nil
		},
	}
}
