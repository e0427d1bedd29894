package central

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/xplore/faceauth"
	pb "github.com/xplore/faceauth/proto"
)

// Sweeper removes what interrupted writes leave in the store: images that
// no record names (a register that stopped between its images and its
// record, an image removal that stopped before deleting the bytes) and
// the images of a delete that stopped half-way, which would otherwise keep
// a deleted person's photos until someone deletes the id again.
//
// A register writes its images before its record, so an unreferenced
// image may belong to a register still in flight, here or in another
// central process. A Sweeper therefore removes an image only once it is
// older than MinAge: written longer ago than that, by the store's own
// modification time where the store reports one (modTimer; both stores
// do), or else seen unreferenced pass after pass for that long (it
// remembers the images each pass found unreferenced, so a restart starts
// that wait again). A register takes seconds; MinAge is minutes or hours.
type Sweeper struct {
	r *Registry
	// MinAge is how old an unreferenced image must be, by its stored
	// modification time or as seen by successive passes, before it is
	// deleted. 0 deletes on the first pass: only safe when no central
	// process is writing to the store.
	MinAge time.Duration
	// DryRun reports what a pass would delete without deleting it.
	DryRun bool

	// Debris names the temporary files the last pass removed (or, in a
	// dry run, would remove).
	Debris []string

	seen  map[string]time.Time // image key -> the pass that first found it unreferenced
	users map[string]userEntry // the revision index as the pass began
	page  int                  // keys per List call; tests make it small
}

// NewSweeper returns a sweeper of r's store.
func (r *Registry) NewSweeper(minAge time.Duration) *Sweeper {
	return &Sweeper{r: r, MinAge: minAge, seen: map[string]time.Time{}, page: 1000}
}

// SweepStats says what one pass found and did.
type SweepStats struct {
	Users      int // users with at least one stored image
	Images     int // stored images looked at
	Waiting    int // unreferenced images not yet old enough to delete
	Deleted    int // unreferenced images deleted (or, in a dry run, deletable)
	Finished   int // half-way deletes finished (images, record and deletion published)
	Unfinished int // half-way deletes too recent to finish: a delete may still be running
	Debris     int // temporary files dead writers left (file store) removed (or, in a dry run, removable); Sweeper.Debris names them
}

// Pass lists every stored image once, reads the record of each user that
// has images, and deletes the unreferenced images older than MinAge (by
// the store's modification time, or as seen by earlier passes). It finishes the deletes that stopped half-way more than
// deleteGrace ago, as deleting the user again would. A pass that fails
// leaves the sweeper as it was; the next pass starts over.
func (s *Sweeper) Pass(ctx context.Context) (SweepStats, error) {
	now := s.r.now()
	var st SweepStats
	debris, err := s.r.RemoveDebris(ctx, "", s.DryRun)
	if err != nil {
		return st, fmt.Errorf("sweep: %w", err)
	}
	s.Debris, st.Debris = debris, len(debris)
	// A user whose stored images are exactly those the index names needs
	// no record read: a pass reads only users changed since the index
	// was folded and users with leftovers.
	if s.users, err = s.r.revisions(ctx); err != nil {
		return st, fmt.Errorf("sweep: %w", err)
	}
	if len(debris) > 0 && !s.DryRun {
		s.r.log.Info("sweep: removed temporary files of writes that died", "files", debris)
	}
	unref := map[string]time.Time{}
	var (
		user string
		keys []string
	)
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		err := s.sweepUser(ctx, now, user, keys, unref, &st)
		keys = keys[:0]
		return err
	}
	after := ""
	for {
		page, err := s.r.store.List(ctx, imagesPrefix, after, s.page)
		if err != nil {
			return st, fmt.Errorf("sweep: list images: %w", err)
		}
		for _, key := range page {
			// A user's keys are contiguous in byte order: every key
			// between two keys starting with images/<id>/ starts with it.
			id, _, ok := strings.Cut(strings.TrimPrefix(key, imagesPrefix), "/")
			if !ok || faceauth.ValidateUserID(id) != nil {
				continue // not written by this package: left alone
			}
			if id != user {
				if err := flush(); err != nil {
					return st, err
				}
				user = id
			}
			keys = append(keys, key)
		}
		if len(page) < s.page {
			break
		}
		after = page[len(page)-1]
	}
	if err := flush(); err != nil {
		return st, err
	}
	// Images referenced again, or gone, since the last pass are forgotten.
	s.seen = unref
	return st, nil
}

// sweepUser sweeps the stored image keys of one user.
func (s *Sweeper) sweepUser(ctx context.Context, now time.Time, id string, keys []string, unref map[string]time.Time, st *SweepStats) error {
	st.Users++
	st.Images += len(keys)
	if e, ok := s.users[id]; ok {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = imageIDOfKey(k)
		}
		if e.Images == imagesFingerprint(ids) {
			return nil // every stored image is named; nothing waits
		}
	}
	// The record is read after the listing, so an image written before
	// the listing by a register that has since finished is seen named.
	rec, _, tomb, err := s.r.read(ctx, id)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	if tomb != nil {
		if now.Sub(tomb.UpdatedAt.AsTime()) < deleteGrace {
			st.Unfinished++
			return nil
		}
		st.Finished++
		if s.DryRun {
			s.r.log.Info("sweep: would finish a delete that stopped half-way", "user_id", id, "revision", tomb.Revision)
			return nil
		}
		d := &pb.Deletion{UserId: id, Revision: tomb.Revision, DeletedAt: tomb.UpdatedAt}
		if err := s.r.finishDelete(ctx, d); err != nil {
			return fmt.Errorf("sweep: finish the delete of %s: %w", id, err)
		}
		s.r.log.Info("sweep: finished a delete that had stopped half-way", "user_id", id, "revision", tomb.Revision)
		return nil
	}
	named := map[string]bool{}
	for _, ref := range rec.GetReferences() {
		named[ref.ImageId] = true
	}
	var del []string
	for _, key := range keys {
		if named[strings.TrimSuffix(path.Base(key), path.Ext(key))] {
			continue
		}
		first, ok := s.seen[key]
		if !ok {
			first = now
		}
		if now.Sub(first) < s.MinAge {
			written, err := s.written(ctx, key)
			if err != nil {
				return fmt.Errorf("sweep: %w", err)
			}
			// Every register writes its images anew, so an image
			// written before MinAge is no register's in flight.
			if !written.IsZero() && now.Sub(written) >= s.MinAge {
				first = written
			}
		}
		if now.Sub(first) < s.MinAge {
			unref[key] = first
			st.Waiting++
			continue
		}
		del = append(del, key)
	}
	st.Deleted += len(del)
	if len(del) == 0 {
		return nil
	}
	if s.DryRun {
		for _, key := range del {
			unref[key] = s.seenOr(key, now)
		}
		s.r.log.Info("sweep: would delete images no record names", "user_id", id, "keys", del)
		return nil
	}
	err = parallel(ctx, len(del), func(ctx context.Context, i int) error {
		if err := s.r.store.Delete(ctx, del[i]); err != nil {
			return fmt.Errorf("sweep: delete %s: %w", del[i], err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.r.log.Info("sweep: deleted images no record names", "user_id", id, "images", len(del))
	return nil
}

// modTimer is a store that knows when each object was last written;
// *filestore.Store and *s3store.Store are.
type modTimer interface {
	// ModTime returns when the object at key was last written, or an
	// error matching faceauth.ErrNotFound when there is none.
	ModTime(ctx context.Context, key string) (time.Time, error)
}

// written returns when the image at key was last written, or the zero
// time when the store cannot tell or the image is already gone.
func (s *Sweeper) written(ctx context.Context, key string) (time.Time, error) {
	mt, ok := s.r.store.(modTimer)
	if !ok {
		return time.Time{}, nil
	}
	t, err := mt.ModTime(ctx, key)
	if errors.Is(err, faceauth.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("modification time of %s: %w", key, err)
	}
	return t, nil
}

func (s *Sweeper) seenOr(key string, now time.Time) time.Time {
	if t, ok := s.seen[key]; ok {
		return t
	}
	return now
}

// sweepMinAge is how old an unreferenced image must be before Sweep
// deletes it: far longer than any register takes, and than the clocks of
// central and an S3 server disagree by; short enough that a crash's
// leftovers go the same day.
const sweepMinAge = time.Hour

// SweepFirst is how long after start-up Sweep runs its first pass: long
// enough for a delete that a crash interrupted to be older than the grace
// a running delete gets, short enough that a crash's leftovers (a deleted
// user's photos among them) do not wait for SWEEP_EVERY.
const SweepFirst = 2 * time.Minute

// Sweep runs a sweeper pass first after first, then every interval until
// ctx ends. Each pass is logged; a failed pass is retried at the next
// interval. Every central replica may run it: deleting twice and finishing
// a delete twice are both harmless.
func (r *Registry) Sweep(ctx context.Context, first, every time.Duration) {
	s := r.NewSweeper(sweepMinAge)
	pass := func() {
		start := time.Now()
		st, err := s.Pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("sweep: pass failed; retrying at the next one", "err", err, "every", every)
		case err == nil:
			r.log.Info("sweep: pass done", "users", st.Users, "images", st.Images, "deleted", st.Deleted,
				"waiting", st.Waiting, "finished_deletes", st.Finished, "debris", st.Debris, "took", time.Since(start).Round(time.Millisecond))
		}
	}
	t := time.NewTimer(first)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	pass()
	repeat(ctx, every, pass)
}
