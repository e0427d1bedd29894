package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models"
	"github.com/xplore/faceauth/models/eval"
	"github.com/xplore/faceauth/models/face"
)

// evalCommand measures the face engine on labelled photos; see
// docs/evaluation.md for what each number means and docs/thresholds.md for
// how the shipped thresholds were chosen with it.
func evalCommand() *cli.Command {
	common := func(extra ...cli.Flag) []cli.Flag {
		return append([]cli.Flag{
			modelsDirFlag(),
			&cli.StringFlag{Name: "model", Usage: "embedding model to evaluate", EnvVars: []string{"VERIFICATION_MODEL"}, Value: models.DefaultModel},
			&cli.IntFlag{Name: "workers", Usage: "images analysed at once", Value: runtime.NumCPU()},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of a table"},
		}, extra...)
	}
	targetFlag := &cli.Float64Flag{Name: "target-fmr", Usage: "false-match rate to find the threshold for", Value: 1e-3}
	plotFlag := &cli.StringFlag{Name: "plot", Usage: "write a PNG with the ROC curve (log FAR axis) and score histograms"}
	return &cli.Command{
		Name:  "eval",
		Usage: "measure verification accuracy and spoof detection on labelled photos",
		Subcommands: []*cli.Command{
			{
				Name:      "pairs",
				Usage:     "accuracy, AUC, TAR at FAR and the threshold for a target FMR on a pairs list (file_x,file_y,same[,fold])",
				ArgsUsage: "PAIRS.csv",
				Flags:     common(targetFlag, plotFlag),
				Action: func(c *cli.Context) error {
					path, err := oneArg(c)
					if err != nil {
						return err
					}
					pairs, err := eval.ReadPairs(path)
					if err != nil {
						return err
					}
					e, err := newEvalEngine(c)
					if err != nil {
						return err
					}
					defer e.Close()
					r, err := eval.RunPairs(c.Context, e, pairs, eval.PairsConfig{
						Workers:   c.Int("workers"),
						TargetFMR: c.Float64("target-fmr"),
						Progress:  imagesProgress(terminal(os.Stderr)),
					})
					if err != nil {
						return err
					}
					r.List = path
					if p := c.String("plot"); p != "" {
						if err := writePlot(p, r.Scores, eval.PlotOptions{
							Title:   fmt.Sprintf("%s, %s", filepath.Base(filepath.Dir(path)), r.Model),
							LogFAR:  true,
							Markers: []eval.Marker{{Label: "shipped", Threshold: float64(r.ShippedThreshold)}, {Label: fmt.Sprintf("FMR %g", r.TargetFMR), Threshold: float64(r.Threshold)}},
						}); err != nil {
							return err
						}
					}
					return printReport(c, r, r.WriteTable)
				},
			},
			{
				Name:      "spoof",
				Usage:     "APCER and BPCER at the shipped liveness threshold on a spoof manifest (file,liveness[,attack_type])",
				ArgsUsage: "MANIFEST.csv",
				Flags: common(plotFlag,
					&cli.Float64Flag{Name: "threshold", Usage: "liveness threshold to report APCER and BPCER at (default: the shipped one)"},
					&cli.StringFlag{Name: "scores", Usage: "also write every image's liveness score to this CSV file"}),
				Action: func(c *cli.Context) error {
					path, err := oneArg(c)
					if err != nil {
						return err
					}
					ps, err := eval.ReadPresentations(path)
					if err != nil {
						return err
					}
					e, err := newEvalEngine(c)
					if err != nil {
						return err
					}
					defer e.Close()
					threshold := float64(e.Info().LivenessThreshold)
					if c.IsSet("threshold") {
						threshold = c.Float64("threshold")
					}
					r, err := eval.RunSpoof(c.Context, e, ps, eval.SpoofConfig{
						Threshold: threshold,
						Workers:   c.Int("workers"),
						Progress:  imagesProgress(terminal(os.Stderr)),
					})
					if err != nil {
						return err
					}
					r.List = path
					if p := c.String("scores"); p != "" {
						if err := eval.WriteLivenessScores(p, ps, r.PerImage, filepath.Dir(path)); err != nil {
							return err
						}
					}
					if p := c.String("plot"); p != "" {
						if err := writePlot(p, r.Scores, eval.PlotOptions{
							Title:         fmt.Sprintf("liveness, %s", filepath.Base(filepath.Dir(path))),
							FARLabel:      "APCER (attacks accepted)",
							TARLabel:      "1 - BPCER (live faces accepted)",
							FARShort:      "APCER",
							TARShort:      "1-BPCER",
							GenuineLabel:  "live",
							ImpostorLabel: "attack",
							ScoreLabel:    "liveness score",
							Markers:       []eval.Marker{{Label: "threshold", Threshold: r.Threshold}},
						}); err != nil {
							return err
						}
					}
					return printReport(c, r, r.WriteTable)
				},
			},
			{
				Name: "impostors",
				Usage: "score every same- and different-person pair within each identity-labelled set " +
					"(a folder with manifest.csv file,identity, or only pairs.csv) and report FMR/FNMR per set and pooled",
				ArgsUsage: "SET_DIR...",
				Flags: common(targetFlag,
					&cli.Float64Flag{Name: "threshold", Usage: "threshold to report FMR and FNMR at (default: the shipped one)"},
					&cli.StringFlag{Name: "scores", Usage: "also write every pair's score to this CSV file"}),
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return faceauth.E(faceauth.KindInvalid, "usage", "give at least one set folder")
					}
					var sets []eval.Set
					for _, dir := range c.Args().Slice() {
						s, err := eval.ReadSet(dir)
						if err != nil {
							return err
						}
						sets = append(sets, s)
					}
					e, err := newEvalEngine(c)
					if err != nil {
						return err
					}
					defer e.Close()
					threshold := float64(e.Info().Threshold)
					if c.IsSet("threshold") {
						threshold = c.Float64("threshold")
					}
					r, err := eval.RunSets(c.Context, e, sets, eval.SetsConfig{
						Workers:   c.Int("workers"),
						TargetFMR: c.Float64("target-fmr"),
						Threshold: threshold,
						Progress:  imagesProgress(terminal(os.Stderr)),
					})
					if err != nil {
						return err
					}
					if p := c.String("scores"); p != "" {
						if err := eval.WriteScores(p, r.All); err != nil {
							return err
						}
					}
					return printReport(c, r, r.WriteTable)
				},
			},
		},
	}
}

func oneArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", faceauth.E(faceauth.KindInvalid, "usage", "give exactly one list file: %s %s", c.Command.HelpName, c.Command.ArgsUsage)
	}
	return c.Args().First(), nil
}

func newEvalEngine(c *cli.Context) (*face.Engine, error) {
	return face.New(c.Context, face.Config{
		ModelsDir: c.String("models-dir"),
		Model:     c.String("model"),
		Workers:   max(1, c.Int("workers")),
		Log:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}

// printReport prints r as one JSON object or as the human table.
func printReport(c *cli.Context, r any, table func(io.Writer)) error {
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func writePlot(path string, s eval.Scores, opt eval.PlotOptions) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create plot: %w", err)
	}
	if err := eval.WritePlot(f, s, opt); err != nil {
		f.Close()
		return fmt.Errorf("draw plot: %w", err)
	}
	return f.Close()
}

// imagesProgress draws a run's progress on w as the import command does;
// nil draws nothing.
func imagesProgress(w io.Writer) eval.NewProgress {
	return func(total int) eval.Progress {
		return imagesBar{newProgressBar(w, total, "images")}
	}
}

// imagesBar is a progressBar counting analysed images, none failed.
type imagesBar struct{ *progressBar }

func (b imagesBar) Update(done int) { b.update(done, 0) }
func (b imagesBar) Finish()         { b.finish() }
