package central

import (
	"context"
	"sync"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/gallery"
	pb "github.com/xplore/faceauth/proto"
)

// recheckEvery is how often identify looks at meta/revision for changes
// written by other central replicas.
const recheckEvery = time.Second

// index is the in-memory embedding set that identify searches. It is
// loaded from the store on first use and kept current by this process's
// own writes. Changes by another process sharing the store (a second
// central replica) are noticed through meta/revision: when it advanced by
// more than the revisions this process allocated, the index is reloaded.
type index struct {
	r       *Registry
	recheck time.Duration // recheckEvery; tests set 0

	loadMu sync.Mutex // one load or freshness check at a time

	mu        sync.Mutex
	g         *gallery.Gallery // nil until the first vector is known
	revs      map[string]uint64
	names     map[string]string
	dir       *directory // every live user, for listings
	loaded    bool
	reloading bool
	dirty     map[string]bool // users changed while a reload read the store
	base      uint64          // meta/revision read before the last load
	own       []uint64        // revisions this process allocated above base
	checked   time.Time
}

func newIndex(r *Registry) *index {
	return &index{r: r, recheck: recheckEvery, revs: map[string]uint64{}, names: map[string]string{}, dir: newDirectory(), dirty: map[string]bool{}}
}

// allocated notes a revision this process allocated.
func (x *index) allocated(rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if rev > x.base {
		x.own = append(x.own, rev)
	}
}

// upsert applies a stored record.
func (x *index) upsert(rec *pb.UserRecord) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.loaded && !x.reloading {
		return
	}
	if x.reloading {
		x.dirty[rec.Id] = true
	}
	x.applyLocked(rec.Id, rec.Revision, rec)
}

// remove applies a deletion.
func (x *index) remove(id string, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.loaded && !x.reloading {
		return
	}
	if x.reloading {
		x.dirty[id] = true
	}
	x.applyLocked(id, rev, nil)
}

// applyLocked sets the user to rec (nil: deleted) unless the index already
// holds a newer revision.
func (x *index) applyLocked(id string, rev uint64, rec *pb.UserRecord) {
	if cur, ok := x.revs[id]; ok && cur >= rev {
		return
	}
	x.revs[id] = rev
	if rec != nil {
		x.dir.set(rec)
	} else {
		x.dir.remove(id)
	}
	vecs := x.vectors(rec)
	if len(vecs) == 0 {
		delete(x.names, id)
		if x.g != nil {
			x.g.Delete(id)
		}
		return
	}
	if x.g == nil {
		x.g = gallery.New(len(vecs[0]))
	}
	if err := x.g.Upsert(id, vecs); err != nil {
		x.r.log.Warn("identify index: user left out", "user_id", id, "err", err)
		x.g.Delete(id)
		return
	}
	x.names[id] = rec.GetName()
}

// vectors returns rec's embeddings of the current model with the
// gallery's size.
func (x *index) vectors(rec *pb.UserRecord) [][]float32 {
	if rec == nil {
		return nil
	}
	model := x.r.info.Model
	var out [][]float32
	for _, ref := range rec.References {
		v := ref.Embedding.GetVector()
		if ref.Embedding.GetModel() != model || len(v) == 0 || (x.g != nil && len(v) != x.g.Dims()) {
			continue
		}
		out = append(out, v)
	}
	return out
}

// Search implements api.Searcher over the whole registry.
func (r *Registry) Search(ctx context.Context, probe []float32, model string, threshold float32, limit int) ([]faceauth.Match, error) {
	if model != r.info.Model {
		return nil, faceauth.E(faceauth.KindInvalid, "model_mismatch", "The probe was made with model %s, the registry uses %s.", model, r.info.Model)
	}
	if err := r.index.fresh(ctx); err != nil {
		return nil, err
	}
	x := r.index
	x.mu.Lock()
	g := x.g
	x.mu.Unlock()
	if g == nil {
		return nil, nil
	}
	found := g.Search(probe, limit, threshold)
	out := make([]faceauth.Match, len(found))
	x.mu.Lock()
	for i, m := range found {
		out[i] = faceauth.Match{UserID: m.UserID, Name: x.names[m.UserID], Similarity: m.Similarity}
	}
	x.mu.Unlock()
	return out, nil
}

// fresh loads the index on first use and reloads it when another process
// changed the store.
func (x *index) fresh(ctx context.Context) error {
	x.loadMu.Lock()
	defer x.loadMu.Unlock()
	x.mu.Lock()
	loaded, checked := x.loaded, x.checked
	x.mu.Unlock()
	if loaded && time.Since(checked) < x.recheck {
		return nil
	}
	if loaded {
		m, err := x.r.Revision(ctx)
		if err != nil {
			return err
		}
		x.mu.Lock()
		mine := 0
		for _, rev := range x.own {
			if rev <= m {
				mine++
			}
		}
		foreign := m > x.base && m-x.base > uint64(mine)
		x.checked = time.Now()
		x.mu.Unlock()
		if !foreign {
			return nil
		}
	}
	return x.load(ctx)
}

// load reads every record into a new gallery and swaps it in. Changes this
// process stores meanwhile are marked dirty and read again afterwards, so
// none is lost to the swap.
func (x *index) load(ctx context.Context) error {
	base, err := x.r.Revision(ctx)
	if err != nil {
		return err
	}
	x.mu.Lock()
	x.reloading = true
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		x.reloading = false
		x.mu.Unlock()
	}()
	revs := map[string]uint64{}
	names := map[string]string{}
	var recs []*pb.UserRecord
	err = x.r.eachRecord(ctx, func(rec *pb.UserRecord) error {
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return err
	}
	var g *gallery.Gallery
	model := x.r.info.Model
	for _, rec := range recs {
		revs[rec.Id] = rec.Revision
		for _, ref := range rec.References {
			if ref.Embedding.GetModel() == model && len(ref.Embedding.GetVector()) > 0 {
				g = gallery.New(len(ref.Embedding.Vector))
				break
			}
		}
		if g != nil {
			break
		}
	}

	x.mu.Lock()
	prev := x.g
	x.g = g
	if g != nil {
		err = g.Reset(func(add func(string, [][]float32) error) error {
			for _, rec := range recs {
				if vecs := x.vectors(rec); len(vecs) > 0 {
					if err := add(rec.Id, vecs); err != nil {
						x.r.log.Warn("identify index: user left out", "user_id", rec.Id, "err", err)
						continue
					}
					names[rec.Id] = rec.Name
				}
			}
			return nil
		})
	}
	if err != nil {
		x.g = prev
		x.mu.Unlock()
		return err
	}
	x.revs, x.names = revs, names
	x.dir.reset(recs)
	dirty := x.dirty
	x.dirty = map[string]bool{}
	x.loaded, x.base, x.checked = true, base, time.Now()
	own := x.own[:0]
	for _, rev := range x.own {
		if rev > base {
			own = append(own, rev)
		}
	}
	x.own = own
	x.mu.Unlock()

	// Users written while the store was read: their freshest state is in
	// the store.
	for id := range dirty {
		rec, _, _, err := x.r.read(ctx, id)
		if err != nil {
			return err
		}
		x.mu.Lock()
		if rec != nil {
			x.applyLocked(id, rec.Revision, rec)
		} else {
			x.dir.remove(id)
			if g := x.g; g != nil {
				delete(x.names, id)
				g.Delete(id)
			}
		}
		x.mu.Unlock()
	}
	x.r.log.Debug("identify index loaded", "users", len(names), "revision", base)
	return nil
}
