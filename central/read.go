package central

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth"
	pb "github.com/xplore/faceauth/proto"
)

// Embeddings returns the user's reference embeddings computed by model
// (the api.Gallery of the central service). References stored with
// another model are re-embedded from their stored images with the current
// model and the record is updated, so embeddings of different models are
// never compared and a model change migrates users as they are used.
func (r *Registry) Embeddings(ctx context.Context, id, model string) ([][]float32, error) {
	rec, err := r.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if model == r.info.Model && stale(rec, model) > 0 {
		if rec, err = r.reembed(ctx, rec); err != nil {
			return nil, err
		}
	}
	var out [][]float32
	for _, ref := range rec.References {
		if ref.Embedding.GetModel() == model {
			out = append(out, ref.Embedding.Vector)
		}
	}
	if len(out) == 0 {
		return nil, faceauth.E(faceauth.KindConflict, "no_usable_reference",
			"None of the reference images of user %q can be used with model %s; register the user again.", id, model)
	}
	return out, nil
}

// stale counts the references whose embedding is not of model.
func stale(rec *pb.UserRecord, model string) int {
	n := 0
	for _, ref := range rec.References {
		if ref.Embedding.GetModel() != model {
			n++
		}
	}
	return n
}

// reembed computes current-model embeddings of rec's stale references from
// their stored images and stores them. A reference whose image is missing
// or no longer yields one face keeps its old embedding (never compared
// with the new model) and is logged.
func (r *Registry) reembed(ctx context.Context, rec *pb.UserRecord) (*pb.UserRecord, error) {
	model := r.info.Model
	fresh := map[string]*pb.Embedding{}
	var mu sync.Mutex
	err := parallel(ctx, len(rec.References), func(ctx context.Context, i int) error {
		ref := rec.References[i]
		if ref.Embedding.GetModel() == model {
			return nil
		}
		key := imageKey(rec.Id, ref.ImageId, extOf(ref.ContentType))
		data, _, err := r.store.Get(ctx, key)
		if errors.Is(err, faceauth.ErrNotFound) {
			r.log.Warn("cannot re-embed reference: image missing", "user_id", rec.Id, "image_id", ref.ImageId)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read image %s: %w", key, err)
		}
		a, err := r.eng.Analyze(ctx, data, faceauth.Request{Purpose: faceauth.PurposeEnroll})
		if err != nil {
			if faceauth.KindOf(err) == faceauth.KindInternal {
				return fmt.Errorf("re-embed %s: %w", key, err)
			}
			r.log.Warn("cannot re-embed reference", "user_id", rec.Id, "image_id", ref.ImageId, "model", model, "err", err)
			return nil
		}
		mu.Lock()
		fresh[ref.ImageId] = &pb.Embedding{Model: a.Model, Vector: slices.Clone(a.Embedding)}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(fresh) == 0 {
		return rec, nil
	}
	res, err := r.update(ctx, rec.Id, func(cur *pb.UserRecord) (*pb.UserRecord, error) {
		if cur == nil {
			return nil, errUserNotFound(rec.Id)
		}
		changed := false
		for _, ref := range cur.References {
			if e := fresh[ref.ImageId]; e != nil && ref.Embedding.GetModel() != model {
				ref.Embedding, changed = e, true
			}
		}
		if !changed {
			return nil, nil
		}
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	r.log.Info("re-embedded references", "user_id", rec.Id, "model", model, "count", len(fresh))
	return res.Record, nil
}

// Reembed walks every user and re-embeds references of other models with
// the current model. The central service runs it in the background after a
// model change so that the edges receive current embeddings without
// waiting for each user to verify. It returns the number of users updated.
func (r *Registry) Reembed(ctx context.Context) (int, error) {
	// The revision index says which users have references of another
	// model: after a restart without a model change, none is read.
	users, err := r.revisions(ctx)
	if err != nil {
		return 0, err
	}
	var ids []string
	for id, e := range users {
		if e.Model != r.info.Model {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	n := 0
	for _, id := range ids {
		rec, err := r.Get(ctx, id)
		if faceauth.KindOf(err) == faceauth.KindNotFound {
			continue // deleted meanwhile
		}
		if err != nil {
			return n, err
		}
		if stale(rec, r.info.Model) == 0 {
			continue
		}
		if _, err := r.reembed(ctx, rec); err != nil {
			if faceauth.KindOf(err) == faceauth.KindNotFound {
				continue // deleted meanwhile
			}
			return n, err
		}
		n++
	}
	return n, nil
}

// eachRecord calls fn with every live user record, in key order, reading
// ahead in parallel.
func (r *Registry) eachRecord(ctx context.Context, fn func(*pb.UserRecord) error) error {
	after := ""
	for {
		keys, err := r.store.List(ctx, recordsPrefix, after, 1000)
		if err != nil {
			return fmt.Errorf("list records: %w", err)
		}
		recs, err := r.readKeys(ctx, keys)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if rec != nil {
				if err := fn(rec); err != nil {
					return err
				}
			}
		}
		if len(keys) < 1000 {
			return nil
		}
		after = keys[len(keys)-1]
	}
}

// readKeys reads the records of the given keys in parallel; a missing one
// or a tombstone gives nil.
func (r *Registry) readKeys(ctx context.Context, keys []string) ([]*pb.UserRecord, error) {
	recs := make([]*pb.UserRecord, len(keys))
	err := parallel(ctx, len(keys), func(ctx context.Context, i int) error {
		id, ok := userOfRecordKey(keys[i])
		if !ok {
			return nil
		}
		rec, _, _, err := r.read(ctx, id)
		recs[i] = rec
		return err
	})
	return recs, err
}

// DefaultPageSize and MaxPageSize bound List.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// WarmIndex loads the in-memory index of users (identify's gallery and
// the listing directory) now, so the first identify or console page after
// a start does not wait for it. central serve runs it in the background.
func (r *Registry) WarmIndex(ctx context.Context) error { return r.index.fresh(ctx) }

// MaxQueryLen is the longest search text List accepts, in bytes.
const MaxQueryLen = 256

// List returns up to limit users whose record keys sort after that of
// user after ("" starts at the beginning), whose id or name contains q,
// ignoring case ("" lists all), and that are in site ("" any), and the
// cursor for the next page ("" when this was the last). It reads the in-memory directory, loaded from the
// store on first use like identify's index, so a page costs no store
// request however many users there are.
func (r *Registry) List(ctx context.Context, q, site, after string, limit int) (users []UserSummary, next string, err error) {
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	if after != "" {
		if err := faceauth.ValidateUserID(after); err != nil {
			return nil, "", faceauth.E(faceauth.KindInvalid, "invalid_cursor", "The after parameter must be a user id from an earlier page.")
		}
	}
	if err := validateText("q", q, MaxQueryLen, false); err != nil {
		return nil, "", faceauth.E(faceauth.KindInvalid, "invalid_query",
			"The search text (q) must be at most %d bytes of text without control characters.", MaxQueryLen)
	}
	if site != "" {
		if err := pb.ValidateSite(site); err != nil {
			return nil, "", err
		}
	}
	if err := r.index.fresh(ctx); err != nil {
		return nil, "", err
	}
	r.index.mu.Lock()
	defer r.index.mu.Unlock()
	users, next = r.index.dir.page(q, site, after, limit)
	return users, next, nil
}

// Snapshot calls fn with the whole current state as changes in ascending
// revision order: every live user as an upsert and every deletion record
// as a delete. An edge that applies them, and then the changes published
// after the snapshot began, holds the current state. A deletion that was
// superseded before it completed (the user is live at a lower revision) is
// left out. known, when not nil, names changes the caller holds already
// (see publish.Source): their records are not read a second time and their
// deletion records not at all, and fn does not see them.
func (r *Registry) Snapshot(ctx context.Context, known func(rev uint64) bool, fn func(*pb.UserChange) error) error {
	type entry struct {
		rev uint64
		id  string
		del *pb.Deletion
	}
	var entries []entry
	live := map[string]uint64{}
	if known == nil {
		// A full republication reads every record anyway; it does not
		// trust the index either, so it repairs what the index may miss.
		err := r.eachRecord(ctx, func(rec *pb.UserRecord) error {
			live[rec.Id] = rec.Revision
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		// The revision index: only users changed since its last fold are
		// read, so a restart with nothing missed reads O(changes).
		users, err := r.revisions(ctx)
		if err != nil {
			return err
		}
		for id, e := range users {
			live[id] = e.Rev
		}
	}
	for id, rev := range live {
		entries = append(entries, entry{rev: rev, id: id})
	}
	after := ""
	for {
		keys, err := r.store.List(ctx, deletionsPrefix, after, 1000)
		if err != nil {
			return fmt.Errorf("list deletions: %w", err)
		}
		unknown := keys
		if known != nil {
			unknown = slices.DeleteFunc(slices.Clone(keys), func(k string) bool {
				rev, ok := revisionOfDeletionKey(k)
				return ok && known(rev)
			})
		}
		dels, err := r.readDeletions(ctx, unknown)
		if err != nil {
			return err
		}
		for _, d := range dels {
			if d == nil {
				continue
			}
			if rev, ok := live[d.UserId]; ok && rev < d.Revision {
				continue
			}
			entries = append(entries, entry{rev: d.Revision, id: d.UserId, del: d})
		}
		if len(keys) < 1000 {
			break
		}
		after = keys[len(keys)-1]
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.rev, b.rev) })
	for _, e := range entries {
		if e.del != nil {
			for _, c := range deleteChanges(e.del) {
				if err := fn(c); err != nil {
					return err
				}
			}
			continue
		}
		if known != nil && known(e.rev) {
			continue // a later change of the user is published anyway
		}
		// Read again: the user may have changed or gone since the first
		// pass; a change is published anyway, a deletion has its record.
		rec, _, _, err := r.read(ctx, e.id)
		if err != nil {
			return err
		}
		if rec == nil {
			continue
		}
		for _, c := range upsertChanges(rec) {
			if err := fn(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// readDeletions reads the deletion records named by keys, in parallel. The
// result has one entry per key, nil where the key is not a deletion record
// or the record has gone meanwhile.
func (r *Registry) readDeletions(ctx context.Context, keys []string) ([]*pb.Deletion, error) {
	dels := make([]*pb.Deletion, len(keys))
	err := parallel(ctx, len(keys), func(ctx context.Context, i int) error {
		if _, ok := revisionOfDeletionKey(keys[i]); !ok {
			return nil
		}
		data, _, err := r.store.Get(ctx, keys[i])
		if errors.Is(err, faceauth.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", keys[i], err)
		}
		d := new(pb.Deletion)
		if err := proto.Unmarshal(data, d); err != nil {
			return fmt.Errorf("decode %s: %w", keys[i], err)
		}
		dels[i] = d
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dels, nil
}

// DeletionRecords returns up to limit deletion records with a revision
// above after, in ascending revision, and the cursor of the next page (0
// on the last). Like Snapshot it leaves out a deletion superseded before
// it completed (the user is live at a lower revision).
func (r *Registry) DeletionRecords(ctx context.Context, after uint64, limit int) ([]*pb.Deletion, uint64, error) {
	start := ""
	if after > 0 {
		start = deletionKey(after)
	}
	keys, err := r.store.List(ctx, deletionsPrefix, start, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("list deletions: %w", err)
	}
	dels, err := r.readDeletions(ctx, keys)
	if err != nil {
		return nil, 0, err
	}
	// Leave out deletions superseded before they completed.
	err = parallel(ctx, len(dels), func(ctx context.Context, i int) error {
		if dels[i] == nil {
			return nil
		}
		rec, _, _, err := r.read(ctx, dels[i].UserId)
		if err != nil {
			return err
		}
		if rec != nil && rec.Revision < dels[i].Revision {
			dels[i] = nil
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	out := dels[:0]
	for _, d := range dels {
		if d != nil {
			out = append(out, d)
		}
	}
	var next uint64
	if len(keys) == limit {
		next, _ = revisionOfDeletionKey(keys[len(keys)-1])
	}
	return out, next, nil
}
