package face

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models"
)

// ONNX Runtime keeps one environment per process (onnxruntime_go holds it
// in a package variable and refuses a second InitializeEnvironment), so it
// is created once, by the first Engine, and never destroyed: Engines come
// and go (tests create many) while the environment, which owns only thread
// pools and a logger, stays. A failure is sticky, as the shared library
// cannot be unloaded and loaded again.
var (
	ortOnce sync.Once
	ortLib  string
	ortErr  error
)

func initRuntime(lib string) error {
	ortOnce.Do(func() {
		ortLib = lib
		ort.SetSharedLibraryPath(lib)
		ortErr = ort.InitializeEnvironment(ort.WithLogLevelError())
	})
	if ortErr != nil {
		return fmt.Errorf("start ONNX Runtime from %s: %w", ortLib, ortErr)
	}
	return nil
}

// net is one ONNX session with its input and output tensors, allocated once
// and reused by every run.
type net struct {
	sess *ort.AdvancedSession
	in   *ort.Tensor[float32]
	outs []*ort.Tensor[float32]
}

// tensorSpec names a tensor and gives its shape.
type tensorSpec struct {
	name  string
	shape ort.Shape
}

func newNet(model []byte, opts *ort.SessionOptions, in tensorSpec, outs ...tensorSpec) (*net, error) {
	n := &net{}
	var err error
	if n.in, err = ort.NewEmptyTensor[float32](in.shape); err != nil {
		return nil, err
	}
	inputs := []ort.Value{n.in}
	var outputs []ort.Value
	var outNames []string
	for _, o := range outs {
		t, err := ort.NewEmptyTensor[float32](o.shape)
		if err != nil {
			n.destroy()
			return nil, err
		}
		n.outs = append(n.outs, t)
		outputs = append(outputs, t)
		outNames = append(outNames, o.name)
	}
	n.sess, err = ort.NewAdvancedSessionWithONNXData(model, []string{in.name}, outNames, inputs, outputs, opts)
	if err != nil {
		n.destroy()
		return nil, err
	}
	return n, nil
}

func (n *net) input() []float32       { return n.in.GetData() }
func (n *net) output(i int) []float32 { return n.outs[i].GetData() }
func (n *net) run() error             { return withFlushToZero(n.sess.Run) }

func (n *net) destroy() {
	if n.sess != nil {
		n.sess.Destroy()
	}
	if n.in != nil {
		n.in.Destroy()
	}
	for _, t := range n.outs {
		t.Destroy()
	}
}

// pool hands out workers, each with its own sessions and buffers, so
// concurrent requests never share mutable state.
type pool struct {
	free chan *worker
	all  []*worker
}

func newPool(ws []*worker) *pool {
	p := &pool{free: make(chan *worker, len(ws)), all: ws}
	for _, w := range ws {
		p.free <- w
	}
	return p
}

// get waits for a free worker or for ctx to end.
func (p *pool) get(ctx context.Context) (*worker, error) {
	select {
	case w := <-p.free:
		return w, nil
	default:
	}
	select {
	case w := <-p.free:
		return w, nil
	case <-ctx.Done():
		return nil, faceauth.Wrap(ctx.Err(), faceauth.KindUnavailable, "busy", "The face pipeline is busy; please try again.")
	}
}

func (p *pool) put(w *worker) { p.free <- w }

// RuntimeVersion starts ONNX Runtime from the pinned library in modelsDir,
// after checking its SHA-256 as New does, and returns the version the
// library reports (e.g. "1.24.1").
func RuntimeVersion(modelsDir string) (string, error) {
	m, err := models.Load(modelsDir)
	if err != nil {
		return "", err
	}
	if err := m.Verify(modelsDir, m.Runtime); err != nil {
		return "", err
	}
	if err := initRuntime(filepath.Join(modelsDir, m.Runtime)); err != nil {
		return "", err
	}
	return ort.GetVersion(), nil
}
