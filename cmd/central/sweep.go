package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/internal/config"
)

func sweepCommand() *cli.Command {
	return &cli.Command{
		Name:  "sweep",
		Usage: "delete images no record names and finish deletes that stopped half-way (serve does it every SWEEP_EVERY)",
		Description: `Reads the store directly, with the same settings as serve. A register writes
its images before its record, so an image no record names may belong to a
register still in flight: sweep deletes those written more than --min-age
ago (the file's or object's modification time) and looks at the younger
ones again --min-age later. --min-age 0 deletes at once; use it
only when no central process is running. Deletes that stopped half-way
(the user is invisible, its images are not yet gone) are finished, as a
second delete of the user would. Temporary files that a write killed
mid-way left (the file store; they may hold a whole photo or record) are
removed, and listed by --dry-run.`,
		Flags: append(serveCommand().Flags,
			&cli.StringFlag{Name: "min-age", Value: "10m", Usage: "how long ago an unreferenced image must have been written before it is deleted"},
			&cli.BoolFlag{Name: "dry-run", Usage: "only report what would be deleted now"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := parseServeConfig(c)
			if err != nil {
				return err
			}
			minAge, err := config.ParseDuration(c.String("min-age"))
			if err != nil {
				return fmt.Errorf("--min-age: %w", err)
			}
			ctx := c.Context
			store, where, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			// The sweep only reads records and deletes: no face engine.
			reg := central.NewRegistry(central.Config{Store: store, Log: newLogger(cfg.logLevel)})
			s := reg.NewSweeper(minAge)
			if c.Bool("dry-run") {
				s.MinAge, s.DryRun = 0, true
			}
			st, err := s.Pass(ctx)
			if err != nil {
				return err
			}
			if st.Waiting > 0 {
				fmt.Fprintf(c.App.Writer, "%d images no record names; looking again in %s, as a register may be in flight\n", st.Waiting, minAge)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(minAge):
				}
				if st, err = s.Pass(ctx); err != nil {
					return err
				}
			}
			printSweep(c.App.Writer, where, st, s.Debris, c.Bool("dry-run"))
			return nil
		},
	}
}

// printSweep writes one line saying what a sweep did.
func printSweep(w io.Writer, where string, st central.SweepStats, debris []string, dry bool) {
	verb, finish := "deleted", "finished"
	if dry {
		verb, finish = "would delete", "would finish"
	}
	fmt.Fprintf(w, "swept %s: %d images of %d users; %s %d images no record names, %s %d stopped deletes, %s %d temporary files of writes that died",
		where, st.Images, st.Users, verb, st.Deleted, finish, st.Finished, verb, st.Debris)
	if st.Unfinished > 0 {
		fmt.Fprintf(w, " (%d deletes younger than a minute left to run)", st.Unfinished)
	}
	fmt.Fprintln(w)
	for _, f := range debris {
		fmt.Fprintf(w, "  temporary file %s\n", f)
	}
}
