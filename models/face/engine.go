package face

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models"
	"github.com/xplore/faceauth/models/onnxgraph"
	"github.com/xplore/faceauth/models/photo"
)

// Config selects the models and sizes the worker pool.
type Config struct {
	// ModelsDir holds the fetched model files; "" means models.DefaultDir.
	ModelsDir string
	// Model is the embedding model or fusion (VERIFICATION_MODEL); "" means
	// models.DefaultModel.
	// An unknown name is an error that lists the choices.
	Model string
	// Workers is how many requests run at once, each with its own set of
	// ONNX sessions and buffers; 0 means runtime.GOMAXPROCS(0).
	Workers int
	// IntraOpThreads is ONNX Runtime's thread count inside one session run;
	// 0 means 1, which is fastest per core when Workers keeps cores busy.
	IntraOpThreads int
	// Photo limits and sizes image decoding.
	Photo photo.Options
	// Log receives warnings; nil means slog.Default().
	Log *slog.Logger
}

// Engine runs the face pipeline. It is safe for concurrent use; at most
// Config.Workers images are processed at once, others wait for a worker.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	p        params
	ans      answer // which embeddings make the answer
	modelID  string
	thresh   float32
	liveness float32
	liveID   string
	pool     *pool
}

// Fallbacks for shipped thresholds that the manifest does not set yet (0):
// conservative values from our own measurements, see docs/face-pipeline.md.
const (
	interimThreshold         = 0.40
	interimLivenessThreshold = 0.50
)

// New loads and verifies the models and starts cfg.Workers session sets.
// A missing or altered model file gives a *models.FileError.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.ModelsDir == "" {
		cfg.ModelsDir = models.DefaultDir
	}
	if cfg.Model == "" {
		cfg.Model = models.DefaultModel
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.IntraOpThreads <= 0 {
		cfg.IntraOpThreads = 1
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	m, err := models.Load(cfg.ModelsDir)
	if err != nil {
		return nil, err
	}
	choice, err := m.Choose(cfg.Model)
	if err != nil {
		return nil, faceauth.Wrap(err, faceauth.KindInvalid, "unknown_model", "%s.", err.Error())
	}
	emb, ans, err := plan(m, choice)
	if err != nil {
		return nil, err
	}
	files := []string{m.Runtime, m.Detector, m.Landmarker, m.Liveness.File, emb.File}
	for _, x := range ans.extra {
		files = append(files, x.emb.File)
	}
	if err := m.Verify(cfg.ModelsDir, files...); err != nil {
		return nil, err
	}
	p, err := newParams(m, emb)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: log, p: p, ans: ans, modelID: choice.ModelID(), thresh: choice.Threshold, liveness: m.Liveness.Threshold, liveID: m.Liveness.ModelID()}
	if e.thresh == 0 {
		e.thresh = interimThreshold
		log.Warn("the model manifest sets no match threshold yet; using an interim value", "model", e.modelID, "threshold", e.thresh)
	}
	if e.liveness == 0 {
		e.liveness = interimLivenessThreshold
		log.Warn("the model manifest sets no liveness threshold yet; using an interim value", "threshold", e.liveness)
	}

	if err := initRuntime(filepath.Join(cfg.ModelsDir, m.Runtime)); err != nil {
		return nil, err
	}
	blobs := map[string][]byte{}
	for _, f := range files[1:] {
		if blobs[f], err = os.ReadFile(filepath.Join(cfg.ModelsDir, f)); err != nil {
			return nil, fmt.Errorf("read model: %w", err)
		}
		// The pinned files stay as verified; ONNX Runtime gets an
		// equivalent graph it runs faster (see onnxgraph.RewritePReLU).
		if blobs[f], _, err = onnxgraph.RewritePReLU(blobs[f]); err != nil {
			return nil, fmt.Errorf("model %s: %w", f, err)
		}
	}
	// The detector's decoding tail runs in Go (dethead.go).
	var dec *detDecoder
	if blobs[m.Detector], dec, err = cutDetector(blobs[m.Detector]); err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Detector, err)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx session options: %w", err)
	}
	defer opts.Destroy()
	if err := errors.Join(
		opts.SetIntraOpNumThreads(cfg.IntraOpThreads),
		opts.SetInterOpNumThreads(1),
		opts.SetExecutionMode(ort.ExecutionModeSequential),
	); err != nil {
		return nil, fmt.Errorf("onnx session options: %w", err)
	}
	var ws []*worker
	for i := 0; i < cfg.Workers; i++ {
		if err := ctx.Err(); err != nil {
			destroyWorkers(ws)
			return nil, err
		}
		w, err := newWorker(blobs, m, emb, &e.ans, dec, opts)
		if err != nil {
			destroyWorkers(ws)
			return nil, err
		}
		ws = append(ws, w)
	}
	e.pool = newPool(ws)
	return e, nil
}

// Close waits for running requests to finish and frees the sessions. The
// Engine must not be used afterwards.
func (e *Engine) Close() error {
	ws := make([]*worker, 0, len(e.pool.all))
	for range e.pool.all {
		ws = append(ws, <-e.pool.free)
	}
	destroyWorkers(ws)
	return nil
}

// Workers is how many images the engine processes at once, so callers
// can admit no more than that into the pipeline.
func (e *Engine) Workers() int { return len(e.pool.all) }

// Info describes the engine's models. Model names the embedding model or
// fusion and its exact weights, for example "ArcFace@87aacdfe"; embeddings
// are comparable only within one Model. Threshold and LivenessThreshold are
// the shipped values.
func (e *Engine) Info() faceauth.EngineInfo {
	return faceauth.EngineInfo{
		Model:             e.modelID,
		Dims:              e.ans.dims,
		Threshold:         e.thresh,
		LivenessModel:     e.liveID,
		LivenessThreshold: e.liveness,
	}
}

// worker is one set of sessions with their buffers; only one goroutine
// uses it at a time.
type worker struct {
	det, lm, emb, live *net
	dec                *detDecoder // the detector's decoding, shared
	extra              []*net      // answer.extra's models, in order
	boxes              []box       // detector candidates
	bufA, bufB         []found     // faces of two framings of one image
	scratch            []float32   // an embedding that may be discarded
	pix                []byte      // the last decoded image's pixels, reused (keepPixels)
}

// maxKeptPixels bounds the decode buffer a worker keeps for the next image:
// a 12 MP JPEG decodes to 1500x1125 pixels (5 MB) at the default target
// side; a larger buffer (a full-size decode) is left to the collector.
const maxKeptPixels = 8 << 20

// keepPixels keeps pix, the current image's pixels, for decoding the
// worker's next image into: allocating, zeroing and faulting in a fresh
// buffer cost about a quarter of decoding a 640x480 JPEG. The worker is the
// buffer's only user, and nothing of it outlives a request.
func (w *worker) keepPixels(pix []byte) {
	if cap(pix) <= maxKeptPixels {
		w.pix = pix[:0]
	}
}

func newWorker(blobs map[string][]byte, m *models.Manifest, emb *models.Embedder, ans *answer, dec *detDecoder, opts *ort.SessionOptions) (w *worker, err error) {
	w = &worker{
		dec:     dec,
		boxes:   make([]box, 0, detAnchors),
		bufA:    make([]found, 0, maxFaces),
		bufB:    make([]found, 0, maxFaces),
		scratch: make([]float32, emb.Dims),
	}
	defer func() {
		if err != nil {
			w.destroy()
		}
	}()
	if w.det, err = newNet(blobs[m.Detector], opts,
		tensorSpec{"input", ort.NewShape(1, 3, detH, detW)}, dec.outputs()...); err != nil {
		return nil, fmt.Errorf("load %s: %w", m.Detector, err)
	}
	if w.lm, err = newNet(blobs[m.Landmarker], opts,
		tensorSpec{"input", ort.NewShape(1, 1, landmarkSize, landmarkSize)},
		tensorSpec{"output", ort.NewShape(1, 2*landmarkCount)}); err != nil {
		return nil, fmt.Errorf("load %s: %w", m.Landmarker, err)
	}
	if w.emb, err = newNet(blobs[emb.File], opts,
		tensorSpec{emb.Input, ort.NewShape(1, 3, int64(emb.Size), int64(emb.Size))},
		tensorSpec{emb.Output, ort.NewShape(1, int64(emb.Dims))}); err != nil {
		return nil, fmt.Errorf("load %s: %w", emb.File, err)
	}
	for _, x := range ans.extra {
		n, err := newNet(blobs[x.emb.File], opts,
			tensorSpec{x.emb.Input, ort.NewShape(1, 3, int64(x.emb.Size), int64(x.emb.Size))},
			tensorSpec{x.emb.Output, ort.NewShape(1, int64(x.emb.Dims))})
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", x.emb.File, err)
		}
		w.extra = append(w.extra, n)
	}
	l := &m.Liveness
	if w.live, err = newNet(blobs[l.File], opts,
		tensorSpec{l.Input, ort.NewShape(1, 3, int64(l.Size), int64(l.Size))},
		tensorSpec{l.Output, ort.NewShape(1, int64(l.Classes))}); err != nil {
		return nil, fmt.Errorf("load %s: %w", l.File, err)
	}
	return w, nil
}

func (w *worker) destroy() {
	for _, n := range append([]*net{w.det, w.lm, w.emb, w.live}, w.extra...) {
		if n != nil {
			n.destroy()
		}
	}
}

func destroyWorkers(ws []*worker) {
	for _, w := range ws {
		w.destroy()
	}
}
