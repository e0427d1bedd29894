package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/xplore/faceauth"
)

// PairsConfig sets a pairs run.
type PairsConfig struct {
	Workers   int
	TargetFMR float64
	Progress  NewProgress
}

// PairsReport is the outcome of `central eval pairs`.
type PairsReport struct {
	List     string `json:"list"`
	Model    string `json:"model"`
	Pairs    int    `json:"pairs"`
	Genuine  int    `json:"genuine"`
	Impostor int    `json:"impostor"`
	// Accuracy is k-fold cross-validated when the list has folds, else
	// measured at the best threshold for these very pairs (optimistic);
	// AccuracyMethod says which.
	Accuracy          float64      `json:"accuracy"`
	AccuracyMethod    string       `json:"accuracy_method"`
	AccuracyStdDev    float64      `json:"accuracy_stddev,omitempty"`
	AccuracyThreshold *float64     `json:"accuracy_threshold,omitempty"`
	Folds             []FoldResult `json:"folds,omitempty"`
	AUC               float64      `json:"auc"`
	EER               float64      `json:"eer"`
	TARAtFAR1e3       float64      `json:"tar_at_far_1e-3"`
	TARAtFAR1e2       float64      `json:"tar_at_far_1e-2"`
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
	Unscored
	// UnscoredPairs were scored NoScore (a non-match) because an image
	// had no face or did not decode.
	UnscoredPairs int `json:"unscored_pairs"`

	Scores Scores `json:"-"`
}

// RunPairs embeds every image of pairs once and measures the lot.
func RunPairs(ctx context.Context, e Engine, pairs []Pair, cfg PairsConfig) (*PairsReport, error) {
	if len(pairs) == 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "no_pairs", "the pairs list is empty")
	}
	var files []string
	for _, p := range pairs {
		files = append(files, p.X, p.Y)
	}
	results, err := analyseAll(ctx, e, files, faceauth.Request{}, cfg.Workers, cfg.Progress)
	if err != nil {
		return nil, err
	}
	r := &PairsReport{
		Model:            e.Info().Model,
		Pairs:            len(pairs),
		TargetFMR:        cfg.TargetFMR,
		ShippedThreshold: e.Info().Threshold,
		Unscored:         countUnscored(results, commonDir(files)),
	}
	var trials []Trial
	folds := false
	for _, p := range pairs {
		s, ok := pairScore(results, p.X, p.Y)
		if !ok {
			r.UnscoredPairs++
		}
		if p.Same {
			r.Scores.Genuine = append(r.Scores.Genuine, s)
		} else {
			r.Scores.Impostor = append(r.Scores.Impostor, s)
		}
		trials = append(trials, Trial{Score: s, Genuine: p.Same, Fold: p.Fold})
		folds = p.Fold != ""
	}
	r.Genuine, r.Impostor = len(r.Scores.Genuine), len(r.Scores.Impostor)
	if r.Genuine == 0 || r.Impostor == 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "one_class",
			"the pairs list needs both same-person and different-person pairs; it has %d and %d", r.Genuine, r.Impostor)
	}
	if folds {
		cv, err := CrossValidate(trials)
		if err != nil {
			return nil, err
		}
		r.Accuracy, r.AccuracyStdDev, r.Folds = cv.Accuracy, cv.StdDev, cv.Folds
		r.AccuracyMethod = fmt.Sprintf("%d-fold cross-validation", len(cv.Folds))
	} else {
		acc, t, err := BestAccuracy(trials)
		if err != nil {
			return nil, err
		}
		r.Accuracy, r.AccuracyThreshold = acc, &t
		r.AccuracyMethod = "best threshold chosen on these same pairs (optimistic: the list has no folds)"
	}
	if r.AUC, err = r.Scores.AUC(); err != nil {
		return nil, err
	}
	if r.EER, _, err = r.Scores.EER(); err != nil {
		return nil, err
	}
	if r.TARAtFAR1e3, _, err = r.Scores.TARAtFAR(1e-3); err != nil {
		return nil, err
	}
	if r.TARAtFAR1e2, _, err = r.Scores.TARAtFAR(1e-2); err != nil {
		return nil, err
	}
	tar, t, err := r.Scores.TARAtFAR(cfg.TargetFMR)
	if err != nil {
		return nil, faceauth.Wrap(err, faceauth.KindInvalid, "bad_target", "cannot find the threshold for --target-fmr %v", cfg.TargetFMR)
	}
	r.TARAtThreshold, r.Threshold = tar, ceil32(t)
	r.MinFAR = 1 / float64(r.Impostor)
	r.FMR, r.FNMR = r.Scores.Rates(float64(r.ShippedThreshold))
	r.AccuracyAtShipped = (float64(r.Impostor)*(1-r.FMR) + float64(r.Genuine)*(1-r.FNMR)) / float64(r.Pairs)
	return r, nil
}

// WriteTable writes r as the human table, tab-separated for a tabwriter.
func (r *PairsReport) WriteTable(w io.Writer) {
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

// SpoofConfig sets a liveness run.
type SpoofConfig struct {
	// Threshold is the liveness threshold to report APCER and BPCER at.
	Threshold float64
	Workers   int
	Progress  NewProgress
}

// SpoofReport is the outcome of `central eval spoof`.
type SpoofReport struct {
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
	Unscored

	Scores   Scores    `json:"-"`
	PerImage []float64 `json:"-"` // score of each presentation, in list order
}

// RunSpoof runs the liveness check on every presentation. Images without
// a usable face score NoScore: rejected, as the service would.
func RunSpoof(ctx context.Context, e Engine, ps []Presentation, cfg SpoofConfig) (*SpoofReport, error) {
	var files []string
	for _, p := range ps {
		files = append(files, p.File)
	}
	results, err := analyseAll(ctx, e, files, faceauth.Request{Liveness: true}, cfg.Workers, cfg.Progress)
	if err != nil {
		return nil, err
	}
	r := &SpoofReport{Model: e.Info().Model, Threshold: cfg.Threshold, Unscored: countUnscored(results, commonDir(files))}
	byType := map[string]*Scores{}
	for _, p := range ps {
		res := results[p.File]
		s := float64(res.liveness)
		if !res.scored() {
			s = NoScore
			if p.Live {
				r.NoFaceLive++
			} else {
				r.NoFaceAttack++
			}
		}
		r.PerImage = append(r.PerImage, s)
		if p.Live {
			r.Scores.Genuine = append(r.Scores.Genuine, s)
			continue
		}
		r.Scores.Impostor = append(r.Scores.Impostor, s)
		if p.Attack != "" {
			if byType[p.Attack] == nil {
				byType[p.Attack] = &Scores{}
			}
			byType[p.Attack].Impostor = append(byType[p.Attack].Impostor, s)
		}
	}
	r.Live, r.Attacks = len(r.Scores.Genuine), len(r.Scores.Impostor)
	if r.Live == 0 || r.Attacks == 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "one_class",
			"the spoof manifest needs both live and spoof images; it has %d and %d", r.Live, r.Attacks)
	}
	pad := PADRates(r.Scores, cfg.Threshold)
	r.APCER, r.BPCER = pad.APCER, pad.BPCER
	if len(byType) > 0 {
		r.APCERByType = map[string]float64{}
		for t, s := range byType {
			r.APCERByType[t] = PADRates(*s, cfg.Threshold).APCER
		}
	}
	if r.AUC, err = r.Scores.AUC(); err != nil {
		return nil, err
	}
	if r.EER, r.EERThreshold, err = r.Scores.EER(); err != nil {
		return nil, err
	}
	return r, nil
}

// WriteTable writes r as the human table, tab-separated for a tabwriter.
func (r *SpoofReport) WriteTable(w io.Writer) {
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

// Set is one identity-labelled folder of ../shared/faces.
type Set struct {
	Name   string
	Dir    string
	Images []Labelled
	Pairs  []Pair // every pair of Images, near-duplicates marked
}

// ReadSet reads dir/manifest.csv (file,identity) or, failing that, derives
// identities from dir/pairs.csv. Near-duplicate marks come from pairs.csv.
func ReadSet(dir string) (Set, error) {
	s := Set{Name: filepath.Base(filepath.Clean(dir)), Dir: dir}
	var listed []Pair
	pairsPath := filepath.Join(dir, "pairs.csv")
	if _, err := os.Stat(pairsPath); err == nil {
		if listed, err = ReadPairs(pairsPath); err != nil {
			return s, err
		}
	}
	var err error
	switch s.Images, err = ReadIdentities(filepath.Join(dir, "manifest.csv")); {
	case errors.Is(err, os.ErrNotExist) && listed != nil:
		if s.Images, err = IdentitiesFromPairs(listed); err != nil {
			return s, err
		}
	case errors.Is(err, os.ErrNotExist):
		return s, faceauth.E(faceauth.KindInvalid, "no_labels", "%s has neither manifest.csv nor pairs.csv", dir)
	case err != nil:
		return s, err
	}
	s.Pairs = AllPairs(s.Images, listed)
	return s, nil
}

// SetsConfig sets an impostors run; Threshold is the one FMR and FNMR are
// reported at.
type SetsConfig struct {
	Workers   int
	TargetFMR float64
	Threshold float64
	Progress  NewProgress
}

// SetResult is one set's line in `central eval impostors`.
type SetResult struct {
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
	Unscored
}

// SetsReport is the outcome of `central eval impostors`.
type SetsReport struct {
	Model     string      `json:"model"`
	TargetFMR float64     `json:"target_fmr"`
	Threshold float64     `json:"threshold"`
	Sets      []SetResult `json:"sets"`
	Pooled    SetResult   `json:"pooled"`

	All []ScoredPair `json:"-"`
}

// ScoredPair is one pair of a set with its score; ok is false when it
// could not be scored.
type ScoredPair struct {
	set  string
	pair Pair
	base string
	s    float64
	ok   bool
}

// RunSets scores every pair of every set (near-duplicates left out) and
// reports each set and the pool.
func RunSets(ctx context.Context, e Engine, sets []Set, cfg SetsConfig) (*SetsReport, error) {
	var files []string
	for _, s := range sets {
		for _, im := range s.Images {
			files = append(files, im.File)
		}
	}
	results, err := analyseAll(ctx, e, files, faceauth.Request{}, cfg.Workers, cfg.Progress)
	if err != nil {
		return nil, err
	}
	r := &SetsReport{Model: e.Info().Model, TargetFMR: cfg.TargetFMR, Threshold: cfg.Threshold}
	var pool Scores
	pool0 := SetResult{Set: "pooled"}
	for _, s := range sets {
		res := SetResult{Set: s.Name, Images: len(s.Images)}
		ids := map[string]bool{}
		mine := map[string]imageResult{}
		for _, im := range s.Images {
			ids[im.Identity] = true
			mine[im.File] = results[im.File]
		}
		res.Identities = len(ids)
		res.Unscored = countUnscored(mine, s.Dir)
		var sc Scores
		for _, p := range s.Pairs {
			if p.NearDup {
				res.NearDups++
				continue
			}
			v, ok := pairScore(results, p.X, p.Y)
			r.All = append(r.All, ScoredPair{set: s.Name, pair: p, base: s.Dir, s: v, ok: ok})
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

func (res *SetResult) measure(sc Scores, cfg SetsConfig) error {
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
	if res.FMRUpper95, err = FMRUpperBound(res.FalseMatches, res.Impostor, 0.95); err != nil {
		return err
	}
	res.NormalThreshold, res.ImpostorMean, res.ImpostorSD, err = sc.NormalTailThreshold(cfg.TargetFMR)
	return err
}

// WriteTable writes r as the human table, tab-separated for a tabwriter.
func (r *SetsReport) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "model %s, FMR and FNMR at threshold %.4f; threshold for FMR %g per set\n\n", r.Model, r.Threshold, r.TargetFMR)
	fmt.Fprintln(w, "set\timages\tidentities\tgenuine\timpostor\tno face\terrors\tAUC\tthreshold@target\tnormal-fit threshold\tFMR\tfalse matches\tFMR 95% upper\tFNMR")
	for _, s := range append(r.Sets, r.Pooled) {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.5f\t%d\t%.5f\t%.4f\n",
			s.Set, s.Images, s.Identities, s.Genuine, s.Impostor, s.NoFace, s.Errors, s.AUC,
			s.ThresholdAtTarget, s.NormalThreshold, s.FMR, s.FalseMatches, s.FMRUpper95, s.FNMR)
	}
}

// WriteScores writes every scored pair as CSV (set,file_x,file_y,same,score),
// with "" as the score of a pair that could not be scored.
func WriteScores(path string, all []ScoredPair) error {
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

// WriteLivenessScores writes file,liveness,attack_type,score for every
// presentation; an image without a usable face has an empty score.
func WriteLivenessScores(path string, ps []Presentation, scores []float64, base string) error {
	var b strings.Builder
	b.WriteString("file,liveness,attack_type,score\n")
	for i, p := range ps {
		live := "spoof"
		if p.Live {
			live = "live"
		}
		score := ""
		if scores[i] > NoScore {
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
