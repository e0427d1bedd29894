package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
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
					r, err := evalPairs(c.Context, e, pairs, pairsConfig{
						Workers:   c.Int("workers"),
						TargetFMR: c.Float64("target-fmr"),
						Progress:  terminal(os.Stderr),
					})
					if err != nil {
						return err
					}
					r.List = path
					if p := c.String("plot"); p != "" {
						if err := writePlot(p, r.scores, eval.PlotOptions{
							Title:   fmt.Sprintf("%s, %s", filepath.Base(filepath.Dir(path)), r.Model),
							LogFAR:  true,
							Markers: []eval.Marker{{Label: "shipped", Threshold: float64(r.ShippedThreshold)}, {Label: fmt.Sprintf("FMR %g", r.TargetFMR), Threshold: float64(r.Threshold)}},
						}); err != nil {
							return err
						}
					}
					return printReport(c, r, r.table)
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
					threshold := float64(e.LivenessThreshold())
					if c.IsSet("threshold") {
						threshold = c.Float64("threshold")
					}
					r, err := evalSpoof(c.Context, e, ps, threshold, c.Int("workers"), terminal(os.Stderr))
					if err != nil {
						return err
					}
					r.List = path
					if p := c.String("scores"); p != "" {
						if err := writeLivenessScores(p, ps, r.perImage, filepath.Dir(path)); err != nil {
							return err
						}
					}
					if p := c.String("plot"); p != "" {
						if err := writePlot(p, r.scores, eval.PlotOptions{
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
					return printReport(c, r, r.table)
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
					var sets []labelledSet
					for _, dir := range c.Args().Slice() {
						s, err := readSet(dir)
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
					threshold := float64(e.Threshold())
					if c.IsSet("threshold") {
						threshold = c.Float64("threshold")
					}
					r, err := evalSets(c.Context, e, sets, setsConfig{
						Workers:   c.Int("workers"),
						TargetFMR: c.Float64("target-fmr"),
						Threshold: threshold,
						Progress:  terminal(os.Stderr),
					})
					if err != nil {
						return err
					}
					if p := c.String("scores"); p != "" {
						if err := writeScores(p, r.all); err != nil {
							return err
						}
					}
					return printReport(c, r, r.table)
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

// prober is what the evaluation needs from the face engine.
type prober interface {
	Probe(ctx context.Context, img []byte, opts face.Options) (*face.Analysis, error)
}

// imageResult is the outcome of analysing one image.
type imageResult struct {
	embedding []float32
	liveness  float32
	noFace    bool  // no usable face: pairs with it score eval.NoScore
	bad       error // undecodable or too large: likewise
}

func (r imageResult) scored() bool { return !r.noFace && r.bad == nil }

// analyseAll runs every distinct file through the engine once, with workers
// goroutines. Only faults of the data (no face, bad image) are recorded per
// image; a file that cannot be read or an engine failure stops everything,
// since the numbers would not mean what they say.
func analyseAll(ctx context.Context, p prober, files []string, opts face.Options, workers int, progress io.Writer) (map[string]imageResult, error) {
	uniq := map[string]bool{}
	var todo []string
	for _, f := range files {
		if !uniq[f] {
			uniq[f] = true
			todo = append(todo, f)
		}
	}
	sort.Strings(todo)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(map[string]imageResult, len(todo))
	var (
		mu       sync.Mutex
		firstErr error
		done     int
		wg       sync.WaitGroup
	)
	bar := newProgressBar(progress, len(todo), "images")
	jobs := make(chan string)
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for file := range jobs {
				r, err := analyse(ctx, p, file, opts)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				results[file] = r
				done++
				bar.update(done, 0)
				mu.Unlock()
			}
		}()
	}
feed:
	for _, f := range todo {
		select {
		case jobs <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	bar.finish()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return results, nil
}

func analyse(ctx context.Context, p prober, file string, opts face.Options) (imageResult, error) {
	img, err := os.ReadFile(file)
	if err != nil {
		return imageResult{}, fmt.Errorf("read listed image: %w", err)
	}
	a, err := p.Probe(ctx, img, opts)
	if err != nil {
		switch faceauth.KindOf(err) {
		case faceauth.KindNoFace:
			return imageResult{noFace: true}, nil
		case faceauth.KindBadImage, faceauth.KindTooLarge:
			return imageResult{bad: err}, nil
		}
		return imageResult{}, fmt.Errorf("%s: %w", file, err)
	}
	r := imageResult{embedding: a.Embedding, liveness: a.Liveness}
	if opts.Liveness && !a.LivenessChecked {
		return imageResult{}, fmt.Errorf("%s: the engine did not check liveness although asked to", file)
	}
	return r, nil
}

// unscoredCounts tells which images of a run could not be scored.
type unscoredCounts struct {
	NoFace      int      `json:"no_face"` // images with no usable face
	Errors      int      `json:"errors"`  // images that did not decode or were too large
	NoFaceFiles []string `json:"no_face_files,omitempty"`
	ErrorFiles  []string `json:"error_files,omitempty"` // "file: reason"
}

func countUnscored(results map[string]imageResult, base string) unscoredCounts {
	var u unscoredCounts
	for f, r := range results {
		rel := relTo(base, f)
		switch {
		case r.noFace:
			u.NoFace++
			u.NoFaceFiles = append(u.NoFaceFiles, rel)
		case r.bad != nil:
			u.Errors++
			u.ErrorFiles = append(u.ErrorFiles, fmt.Sprintf("%s: %v", rel, r.bad))
		}
	}
	sort.Strings(u.NoFaceFiles)
	sort.Strings(u.ErrorFiles)
	return u
}

func relTo(base, f string) string {
	if r, err := filepath.Rel(base, f); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return f
}

// pairScore is the similarity of a pair, or eval.NoScore when either image
// could not be scored.
func pairScore(results map[string]imageResult, x, y string) (float64, bool) {
	a, b := results[x], results[y]
	if !a.scored() || !b.scored() {
		return eval.NoScore, false
	}
	return float64(face.Similarity(a.embedding, b.embedding)), true
}

type pairsConfig struct {
	Workers   int
	TargetFMR float64
	Progress  io.Writer
}

// pairsReport is the outcome of `central eval pairs`.
type pairsReport struct {
	List     string `json:"list"`
	Model    string `json:"model"`
	Pairs    int    `json:"pairs"`
	Genuine  int    `json:"genuine"`
	Impostor int    `json:"impostor"`
	// Accuracy is k-fold cross-validated when the list has folds, else
	// measured at the best threshold for these very pairs (optimistic);
	// AccuracyMethod says which.
	Accuracy          float64           `json:"accuracy"`
	AccuracyMethod    string            `json:"accuracy_method"`
	AccuracyStdDev    float64           `json:"accuracy_stddev,omitempty"`
	AccuracyThreshold *float64          `json:"accuracy_threshold,omitempty"`
	Folds             []eval.FoldResult `json:"folds,omitempty"`
	AUC               float64           `json:"auc"`
	EER               float64           `json:"eer"`
	TARAtFAR1e3       float64           `json:"tar_at_far_1e-3"`
	TARAtFAR1e2       float64           `json:"tar_at_far_1e-2"`
	// MinFAR is the smallest non-zero FAR these pairs can show (one
	// impostor pair); a FAR target below it means "no impostor accepted".
	MinFAR float64 `json:"min_measurable_far"`
	// Threshold is the smallest threshold whose FMR on these pairs is at
	// most TargetFMR; TARAtThreshold is the TAR there.
	TargetFMR        float64 `json:"target_fmr"`
	Threshold        float32 `json:"threshold"`
	TARAtThreshold   float64 `json:"tar_at_threshold"`
	ShippedThreshold float32 `json:"shipped_threshold"`
	// FMR, FNMR and accuracy at the shipped threshold.
	FMR               float64 `json:"fmr"`
	FNMR              float64 `json:"fnmr"`
	AccuracyAtShipped float64 `json:"accuracy_at_shipped_threshold"`
	unscoredCounts
	// UnscoredPairs were scored eval.NoScore (a non-match) because an image
	// had no face or did not decode.
	UnscoredPairs int `json:"unscored_pairs"`

	scores eval.Scores
}

// evalPairs embeds every image of pairs once and measures the lot.
func evalPairs(ctx context.Context, e interface {
	prober
	ModelID() string
	Threshold() float32
}, pairs []eval.Pair, cfg pairsConfig) (*pairsReport, error) {
	if len(pairs) == 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "no_pairs", "the pairs list is empty")
	}
	var files []string
	for _, p := range pairs {
		files = append(files, p.X, p.Y)
	}
	results, err := analyseAll(ctx, e, files, face.Options{}, cfg.Workers, cfg.Progress)
	if err != nil {
		return nil, err
	}
	r := &pairsReport{
		Model:            e.ModelID(),
		Pairs:            len(pairs),
		TargetFMR:        cfg.TargetFMR,
		ShippedThreshold: e.Threshold(),
		unscoredCounts:   countUnscored(results, commonDir(files)),
	}
	var trials []eval.Trial
	folds := false
	for _, p := range pairs {
		s, ok := pairScore(results, p.X, p.Y)
		if !ok {
			r.UnscoredPairs++
		}
		if p.Same {
			r.scores.Genuine = append(r.scores.Genuine, s)
		} else {
			r.scores.Impostor = append(r.scores.Impostor, s)
		}
		trials = append(trials, eval.Trial{Score: s, Genuine: p.Same, Fold: p.Fold})
		folds = p.Fold != ""
	}
	r.Genuine, r.Impostor = len(r.scores.Genuine), len(r.scores.Impostor)
	if r.Genuine == 0 || r.Impostor == 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "one_class",
			"the pairs list needs both same-person and different-person pairs; it has %d and %d", r.Genuine, r.Impostor)
	}
	if folds {
		cv, err := eval.CrossValidate(trials)
		if err != nil {
			return nil, err
		}
		r.Accuracy, r.AccuracyStdDev, r.Folds = cv.Accuracy, cv.StdDev, cv.Folds
		r.AccuracyMethod = fmt.Sprintf("%d-fold cross-validation", len(cv.Folds))
	} else {
		acc, t, err := eval.BestAccuracy(trials)
		if err != nil {
			return nil, err
		}
		r.Accuracy, r.AccuracyThreshold = acc, &t
		r.AccuracyMethod = "best threshold chosen on these same pairs (optimistic: the list has no folds)"
	}
	if r.AUC, err = r.scores.AUC(); err != nil {
		return nil, err
	}
	if r.EER, _, err = r.scores.EER(); err != nil {
		return nil, err
	}
	if r.TARAtFAR1e3, _, err = r.scores.TARAtFAR(1e-3); err != nil {
		return nil, err
	}
	if r.TARAtFAR1e2, _, err = r.scores.TARAtFAR(1e-2); err != nil {
		return nil, err
	}
	tar, t, err := r.scores.TARAtFAR(cfg.TargetFMR)
	if err != nil {
		return nil, faceauth.Wrap(err, faceauth.KindInvalid, "bad_target", "cannot find the threshold for --target-fmr %v", cfg.TargetFMR)
	}
	r.TARAtThreshold, r.Threshold = tar, ceil32(t)
	r.MinFAR = 1 / float64(r.Impostor)
	r.FMR, r.FNMR = r.scores.Rates(float64(r.ShippedThreshold))
	r.AccuracyAtShipped = (float64(r.Impostor)*(1-r.FMR) + float64(r.Genuine)*(1-r.FNMR)) / float64(r.Pairs)
	return r, nil
}

func (r *pairsReport) table(w io.Writer) {
	fmt.Fprintf(w, "list\t%s\n", r.List)
	fmt.Fprintf(w, "model\t%s\n", r.Model)
	fmt.Fprintf(w, "pairs\t%d (%d same person, %d different)\n", r.Pairs, r.Genuine, r.Impostor)
	fmt.Fprintf(w, "accuracy\t%.4f", r.Accuracy)
	if r.Folds != nil {
		fmt.Fprintf(w, " ± %.4f", r.AccuracyStdDev)
	} else {
		fmt.Fprintf(w, " at threshold %.4f", *r.AccuracyThreshold)
	}
	fmt.Fprintf(w, "\t%s\n", r.AccuracyMethod)
	fmt.Fprintf(w, "AUC\t%.4f\n", r.AUC)
	fmt.Fprintf(w, "EER\t%.4f\n", r.EER)
	fmt.Fprintf(w, "TAR at FAR 1e-3\t%.4f\t%s\n", r.TARAtFAR1e3, farNote(1e-3, r.Impostor))
	fmt.Fprintf(w, "TAR at FAR 1e-2\t%.4f\t%s\n", r.TARAtFAR1e2, farNote(1e-2, r.Impostor))
	fmt.Fprintf(w, "threshold for FMR %g\t%.4f\tTAR %.4f there\n", r.TargetFMR, r.Threshold, r.TARAtThreshold)
	fmt.Fprintf(w, "shipped threshold\t%.4f\tFMR %.4f, FNMR %.4f, accuracy %.4f\n", r.ShippedThreshold, r.FMR, r.FNMR, r.AccuracyAtShipped)
	fmt.Fprintf(w, "no face\t%d images\t%s\n", r.NoFace, strings.Join(r.NoFaceFiles, " "))
	fmt.Fprintf(w, "errors\t%d images\t%s\n", r.Errors, strings.Join(r.ErrorFiles, "; "))
	fmt.Fprintf(w, "unscored pairs\t%d\tscored as non-matches\n", r.UnscoredPairs)
}

// ceil32 is the smallest float32 at or above t. Scores are float32 values,
// so on them this threshold decides exactly as t does, and it is the value
// the engine (which compares in float32) must be given.
func ceil32(t float64) float32 {
	t32 := float32(t)
	if float64(t32) < t {
		t32 = math.Nextafter32(t32, float32(math.Inf(1)))
	}
	return t32
}

// farNote says when a FAR target is finer than the data can resolve.
func farNote(far float64, impostors int) string {
	allowed := int(math.Floor(far*float64(impostors) + 1e-9))
	return fmt.Sprintf("(%d of %d impostor pairs may pass)", allowed, impostors)
}

// commonDir is the longest folder holding every file, for short names.
func commonDir(files []string) string {
	if len(files) == 0 {
		return ""
	}
	dir := filepath.Dir(files[0])
	for _, f := range files[1:] {
		for !strings.HasPrefix(f, dir+string(filepath.Separator)) && dir != "." && dir != string(filepath.Separator) {
			dir = filepath.Dir(dir)
		}
	}
	return dir
}

// spoofReport is the outcome of `central eval spoof`.
type spoofReport struct {
	List    string `json:"list"`
	Model   string `json:"model"`
	Live    int    `json:"live"`
	Attacks int    `json:"attacks"`
	// Threshold is the liveness threshold APCER and BPCER are measured at.
	Threshold float64 `json:"threshold"`
	APCER     float64 `json:"apcer"`
	BPCER     float64 `json:"bpcer"`
	// APCERByType is APCER per attack_type; the standard's APCER for a
	// mix of types is the worst of them.
	APCERByType  map[string]float64 `json:"apcer_by_type,omitempty"`
	AUC          float64            `json:"auc"`
	EER          float64            `json:"eer"`
	EERThreshold float64            `json:"eer_threshold"`
	// NoFace images are rejected before the liveness check: for an attack
	// that is a correct rejection, for a live face a BPCER error.
	NoFaceLive   int `json:"no_face_live"`
	NoFaceAttack int `json:"no_face_attack"`
	unscoredCounts

	scores   eval.Scores
	perImage []float64 // score of each presentation, in list order
}

// evalSpoof runs the liveness check on every presentation. Images without
// a usable face score eval.NoScore: rejected, as the service would.
func evalSpoof(ctx context.Context, e interface {
	prober
	ModelID() string
}, ps []eval.Presentation, threshold float64, workers int, progress io.Writer) (*spoofReport, error) {
	var files []string
	for _, p := range ps {
		files = append(files, p.File)
	}
	results, err := analyseAll(ctx, e, files, face.Options{Liveness: true}, workers, progress)
	if err != nil {
		return nil, err
	}
	r := &spoofReport{Model: e.ModelID(), Threshold: threshold, unscoredCounts: countUnscored(results, commonDir(files))}
	byType := map[string]*eval.Scores{}
	for _, p := range ps {
		res := results[p.File]
		s := float64(res.liveness)
		if !res.scored() {
			s = eval.NoScore
			if p.Live {
				r.NoFaceLive++
			} else {
				r.NoFaceAttack++
			}
		}
		r.perImage = append(r.perImage, s)
		if p.Live {
			r.scores.Genuine = append(r.scores.Genuine, s)
			continue
		}
		r.scores.Impostor = append(r.scores.Impostor, s)
		if p.Attack != "" {
			if byType[p.Attack] == nil {
				byType[p.Attack] = &eval.Scores{}
			}
			byType[p.Attack].Impostor = append(byType[p.Attack].Impostor, s)
		}
	}
	r.Live, r.Attacks = len(r.scores.Genuine), len(r.scores.Impostor)
	if r.Live == 0 || r.Attacks == 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "one_class",
			"the spoof manifest needs both live and spoof images; it has %d and %d", r.Live, r.Attacks)
	}
	pad := eval.PADRates(r.scores, threshold)
	r.APCER, r.BPCER = pad.APCER, pad.BPCER
	if len(byType) > 0 {
		r.APCERByType = map[string]float64{}
		for t, s := range byType {
			r.APCERByType[t] = eval.PADRates(*s, threshold).APCER
		}
	}
	if r.AUC, err = r.scores.AUC(); err != nil {
		return nil, err
	}
	if r.EER, r.EERThreshold, err = r.scores.EER(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *spoofReport) table(w io.Writer) {
	fmt.Fprintf(w, "list\t%s\n", r.List)
	fmt.Fprintf(w, "presentations\t%d live, %d attacks\n", r.Live, r.Attacks)
	fmt.Fprintf(w, "liveness threshold\t%.4f\n", r.Threshold)
	fmt.Fprintf(w, "APCER\t%.4f\tattacks accepted as live\n", r.APCER)
	types := make([]string, 0, len(r.APCERByType))
	for t := range r.APCERByType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		fmt.Fprintf(w, "  APCER %s\t%.4f\n", t, r.APCERByType[t])
	}
	fmt.Fprintf(w, "BPCER\t%.4f\tlive faces rejected\n", r.BPCER)
	fmt.Fprintf(w, "AUC\t%.4f\n", r.AUC)
	fmt.Fprintf(w, "EER\t%.4f\tat threshold %.4f\n", r.EER, r.EERThreshold)
	fmt.Fprintf(w, "no face\t%d live, %d attacks\t%s\n", r.NoFaceLive, r.NoFaceAttack, strings.Join(r.NoFaceFiles, " "))
	fmt.Fprintf(w, "errors\t%d images\t%s\n", r.Errors, strings.Join(r.ErrorFiles, "; "))
}

// labelledSet is one identity-labelled folder of ../shared/faces.
type labelledSet struct {
	Name   string
	Dir    string
	Images []eval.Labelled
	Pairs  []eval.Pair // every pair of Images, near-duplicates marked
}

// readSet reads dir/manifest.csv (file,identity) or, failing that, derives
// identities from dir/pairs.csv. Near-duplicate marks come from pairs.csv.
func readSet(dir string) (labelledSet, error) {
	s := labelledSet{Name: filepath.Base(filepath.Clean(dir)), Dir: dir}
	var listed []eval.Pair
	pairsPath := filepath.Join(dir, "pairs.csv")
	if _, err := os.Stat(pairsPath); err == nil {
		if listed, err = eval.ReadPairs(pairsPath); err != nil {
			return s, err
		}
	}
	var err error
	switch s.Images, err = eval.ReadIdentities(filepath.Join(dir, "manifest.csv")); {
	case errors.Is(err, os.ErrNotExist) && listed != nil:
		if s.Images, err = eval.IdentitiesFromPairs(listed); err != nil {
			return s, err
		}
	case errors.Is(err, os.ErrNotExist):
		return s, faceauth.E(faceauth.KindInvalid, "no_labels", "%s has neither manifest.csv nor pairs.csv", dir)
	case err != nil:
		return s, err
	}
	s.Pairs = eval.AllPairs(s.Images, listed)
	return s, nil
}

type setsConfig struct {
	Workers   int
	TargetFMR float64
	Threshold float64
	Progress  io.Writer
}

// setResult is one set's line in `central eval impostors`.
type setResult struct {
	Set        string  `json:"set"`
	Images     int     `json:"images"`
	Identities int     `json:"identities"`
	Genuine    int     `json:"genuine"`
	Impostor   int     `json:"impostor"`
	NearDups   int     `json:"near_dup_skipped"`
	AUC        float64 `json:"auc"`
	// Threshold for the target FMR on this set alone.
	ThresholdAtTarget float32 `json:"threshold_at_target"`
	// FMR and FNMR at the report's threshold, with the false matches.
	FMR          float64 `json:"fmr"`
	FNMR         float64 `json:"fnmr"`
	FalseMatches int     `json:"false_matches"`
	// FMRUpper95 is the one-sided 95% upper confidence bound on the FMR.
	FMRUpper95 float64 `json:"fmr_upper95"`
	// Normal fit of the impostor scores and the threshold it gives for
	// the target FMR: steadier than the empirical one on small sets.
	ImpostorMean    float64 `json:"impostor_mean"`
	ImpostorSD      float64 `json:"impostor_sd"`
	NormalThreshold float64 `json:"normal_threshold"`
	unscoredCounts
}

// setsReport is the outcome of `central eval impostors`.
type setsReport struct {
	Model     string      `json:"model"`
	TargetFMR float64     `json:"target_fmr"`
	Threshold float64     `json:"threshold"`
	Sets      []setResult `json:"sets"`
	Pooled    setResult   `json:"pooled"`

	all []scoredPair
}

type scoredPair struct {
	set  string
	pair eval.Pair
	base string
	s    float64
	ok   bool
}

// evalSets scores every pair of every set (near-duplicates left out) and
// reports each set and the pool.
func evalSets(ctx context.Context, e interface {
	prober
	ModelID() string
}, sets []labelledSet, cfg setsConfig) (*setsReport, error) {
	var files []string
	for _, s := range sets {
		for _, im := range s.Images {
			files = append(files, im.File)
		}
	}
	results, err := analyseAll(ctx, e, files, face.Options{}, cfg.Workers, cfg.Progress)
	if err != nil {
		return nil, err
	}
	r := &setsReport{Model: e.ModelID(), TargetFMR: cfg.TargetFMR, Threshold: cfg.Threshold}
	var pool eval.Scores
	pool0 := setResult{Set: "pooled"}
	for _, s := range sets {
		res := setResult{Set: s.Name, Images: len(s.Images)}
		ids := map[string]bool{}
		mine := map[string]imageResult{}
		for _, im := range s.Images {
			ids[im.Identity] = true
			mine[im.File] = results[im.File]
		}
		res.Identities = len(ids)
		res.unscoredCounts = countUnscored(mine, s.Dir)
		var sc eval.Scores
		for _, p := range s.Pairs {
			if p.NearDup {
				res.NearDups++
				continue
			}
			v, ok := pairScore(results, p.X, p.Y)
			r.all = append(r.all, scoredPair{set: s.Name, pair: p, base: s.Dir, s: v, ok: ok})
			if p.Same {
				sc.Genuine = append(sc.Genuine, v)
			} else {
				sc.Impostor = append(sc.Impostor, v)
			}
		}
		if err := res.measure(sc, cfg); err != nil {
			return nil, fmt.Errorf("set %s: %w", s.Name, err)
		}
		r.Sets = append(r.Sets, res)
		pool.Genuine = append(pool.Genuine, sc.Genuine...)
		pool.Impostor = append(pool.Impostor, sc.Impostor...)
		pool0.Images += res.Images
		pool0.Identities += res.Identities
		pool0.NearDups += res.NearDups
		pool0.NoFace += res.NoFace
		pool0.Errors += res.Errors
	}
	if err := pool0.measure(pool, cfg); err != nil {
		return nil, fmt.Errorf("pooled: %w", err)
	}
	r.Pooled = pool0
	return r, nil
}

func (res *setResult) measure(sc eval.Scores, cfg setsConfig) error {
	res.Genuine, res.Impostor = len(sc.Genuine), len(sc.Impostor)
	var err error
	if res.AUC, err = sc.AUC(); err != nil {
		return err
	}
	t, err := sc.ThresholdAtFMR(cfg.TargetFMR)
	if err != nil {
		return err
	}
	res.ThresholdAtTarget = ceil32(t)
	res.FMR, res.FNMR = sc.Rates(cfg.Threshold)
	res.FalseMatches = int(math.Round(res.FMR * float64(res.Impostor)))
	if res.FMRUpper95, err = eval.FMRUpperBound(res.FalseMatches, res.Impostor, 0.95); err != nil {
		return err
	}
	res.NormalThreshold, res.ImpostorMean, res.ImpostorSD, err = sc.NormalTailThreshold(cfg.TargetFMR)
	return err
}

func (r *setsReport) table(w io.Writer) {
	fmt.Fprintf(w, "model %s, FMR and FNMR at threshold %.4f; threshold for FMR %g per set\n\n", r.Model, r.Threshold, r.TargetFMR)
	fmt.Fprintln(w, "set\timages\tidentities\tgenuine\timpostor\tno face\terrors\tAUC\tthreshold@target\tnormal-fit threshold\tFMR\tfalse matches\tFMR 95% upper\tFNMR")
	for _, s := range append(r.Sets, r.Pooled) {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.5f\t%d\t%.5f\t%.4f\n",
			s.Set, s.Images, s.Identities, s.Genuine, s.Impostor, s.NoFace, s.Errors, s.AUC,
			s.ThresholdAtTarget, s.NormalThreshold, s.FMR, s.FalseMatches, s.FMRUpper95, s.FNMR)
	}
}

// writeScores writes every scored pair as CSV (set,file_x,file_y,same,score),
// with "" as the score of a pair that could not be scored.
func writeScores(path string, all []scoredPair) error {
	var b strings.Builder
	b.WriteString("set,file_x,file_y,same,score\n")
	for _, p := range all {
		same := "0"
		if p.pair.Same {
			same = "1"
		}
		score := ""
		if p.ok {
			score = fmt.Sprintf("%.6f", p.s)
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s\n", p.set, csvField(relTo(p.base, p.pair.X)), csvField(relTo(p.base, p.pair.Y)), same, score)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write scores: %w", err)
	}
	return nil
}

// writeLivenessScores writes file,liveness,attack_type,score for every
// presentation; an image without a usable face has an empty score.
func writeLivenessScores(path string, ps []eval.Presentation, scores []float64, base string) error {
	var b strings.Builder
	b.WriteString("file,liveness,attack_type,score\n")
	for i, p := range ps {
		live := "spoof"
		if p.Live {
			live = "live"
		}
		score := ""
		if scores[i] > eval.NoScore {
			score = fmt.Sprintf("%.6f", scores[i])
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s\n", csvField(relTo(base, p.File)), live, csvField(p.Attack), score)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write scores: %w", err)
	}
	return nil
}

func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\n") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}
