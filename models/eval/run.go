package eval

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/xplore/faceauth"
)

// Engine is what an evaluation needs from the face pipeline: the analysis
// and the description of its models (*face.Engine is one).
type Engine interface {
	faceauth.Engine
	Info() faceauth.EngineInfo
}

// Progress follows a run's images: Update gets the number analysed so far
// (called under the run's lock), Finish is called once at the end.
type Progress interface {
	Update(done int)
	Finish()
}

// NewProgress starts following a run of total images; nil follows nothing.
type NewProgress func(total int) Progress

type noProgress struct{}

func (noProgress) Update(int) {}
func (noProgress) Finish()    {}

// imageResult is the outcome of analysing one image.
type imageResult struct {
	embedding []float32
	liveness  float32
	noFace    bool  // no usable face: pairs with it score NoScore
	bad       error // undecodable or too large: likewise
}

func (r imageResult) scored() bool { return !r.noFace && r.bad == nil }

// analyseAll runs every distinct file through the engine once, with workers
// goroutines. Only faults of the data (no face, bad image) are recorded per
// image; a file that cannot be read or an engine failure stops everything,
// since the numbers would not mean what they say.
func analyseAll(ctx context.Context, p Engine, files []string, req faceauth.Request, workers int, newProgress NewProgress) (map[string]imageResult, error) {
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
	var bar Progress = noProgress{}
	if newProgress != nil {
		bar = newProgress(len(todo))
	}
	jobs := make(chan string)
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for file := range jobs {
				r, err := analyse(ctx, p, file, req)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				results[file] = r
				done++
				bar.Update(done)
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
	bar.Finish()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return results, nil
}

func analyse(ctx context.Context, p Engine, file string, req faceauth.Request) (imageResult, error) {
	img, err := os.ReadFile(file)
	if err != nil {
		return imageResult{}, fmt.Errorf("read listed image: %w", err)
	}
	a, err := p.Analyze(ctx, img, req)
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
	if req.Liveness && !a.LivenessChecked {
		return imageResult{}, fmt.Errorf("%s: the engine did not check liveness although asked to", file)
	}
	return r, nil
}

// Unscored tells which images of a run could not be scored.
type Unscored struct {
	NoFace      int      `json:"no_face"` // images with no usable face
	Errors      int      `json:"errors"`  // images that did not decode or were too large
	NoFaceFiles []string `json:"no_face_files,omitempty"`
	ErrorFiles  []string `json:"error_files,omitempty"` // "file: reason"
}

func countUnscored(results map[string]imageResult, base string) Unscored {
	var u Unscored
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

// pairScore is the similarity of a pair, or NoScore when either image
// could not be scored.
func pairScore(results map[string]imageResult, x, y string) (float64, bool) {
	a, b := results[x], results[y]
	if !a.scored() || !b.scored() {
		return NoScore, false
	}
	return float64(faceauth.Similarity(a.embedding, b.embedding)), true
}
