package main

import (
	"encoding/json"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/edged"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:  "inspect",
		Usage: "print what a stopped edge's database holds (position, users, owed receipts) as JSON",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "folder of the edge's database", EnvVars: []string{"EDGE_DATA_DIR"}, Value: defaultData},
			&cli.BoolFlag{Name: "users", Usage: "also list every user id with the revision held"},
		},
		Action: func(c *cli.Context) error {
			s, err := edged.Inspect(c.String("data"), c.Bool("users"))
			if err != nil {
				return err
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(s)
		},
	}
}
