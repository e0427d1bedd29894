package central

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xplore/faceauth"
	pb "github.com/xplore/faceauth/proto"
)

// The revision index: which users exist at which revision, without
// reading every record. It is two parts in the store:
//
//	meta/index                   the compacted index: one line per live user,
//	                             "<id> <revision> <images fingerprint> <model>"
//	changes/<rev>.<time>.<id>    one empty object per revision allocated to a
//	                             user (20-digit revision, 12-digit Unix time)
//
// A writer puts the change object after allocating the revision and before
// writing the record or deletion, so every change since the compacted
// index was written is named by a change object (or by a newer one of the
// same user). Reading the index is one GET, a listing of changes/ and one
// record GET per user named there: O(changes), not O(users). Folding the
// changes into meta/index is a compare-and-swap (If-Match on the version
// read), so replicas sharing a bucket never lose each other's folds; a
// change object is deleted only once an index reflecting it was written
// (the record read showed its revision or a newer one) or it is older than
// changeGrace (its writer died, or lost a race, before the record).
const (
	indexKey      = "meta/index"
	changesPrefix = "changes/"
	indexHeader   = "faceauth-revision-index 1"
	// changeGrace is how old an unreflected change object must be before
	// a fold drops it: far longer than a write between its change object
	// and its record takes.
	changeGrace = 10 * time.Minute
)

// changeKey names the change object of revision rev of user id.
func changeKey(rev uint64, at time.Time, id string) string {
	return fmt.Sprintf("%s%020d.%012d.%s", changesPrefix, rev, max(at.Unix(), 0), id)
}

// parseChangeKey parses a change object's key.
func parseChangeKey(key string) (rev uint64, at time.Time, id string, ok bool) {
	s, ok := strings.CutPrefix(key, changesPrefix)
	if !ok || len(s) < 35 || s[20] != '.' || s[33] != '.' {
		return 0, time.Time{}, "", false
	}
	rev, err1 := strconv.ParseUint(s[:20], 10, 64)
	sec, err2 := strconv.ParseInt(s[21:33], 10, 64)
	id = s[34:]
	if err1 != nil || err2 != nil || faceauth.ValidateUserID(id) != nil {
		return 0, time.Time{}, "", false
	}
	return rev, time.Unix(sec, 0), id, true
}

// userEntry is what the index knows of a live user.
type userEntry struct {
	Rev uint64
	// Images fingerprints the set of the record's image ids, so a sweep
	// can tell that a user's stored images are exactly the named ones
	// without reading the record.
	Images string
	// Model is the embedding model of every reference, "" when mixed: a
	// re-embedding pass reads only users of another model.
	Model string
}

// imagesFingerprint is a short hash of a set of image ids.
func imagesFingerprint(ids []string) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	h := sha256.Sum256([]byte(strings.Join(ids, ",")))
	return hex.EncodeToString(h[:8])
}

func entryOf(rec *pb.UserRecord) userEntry {
	e := userEntry{Rev: rec.Revision}
	var ids []string
	for i, ref := range rec.References {
		ids = append(ids, ref.ImageId)
		m := ref.Embedding.GetModel()
		if i == 0 {
			e.Model = m
		} else if m != e.Model {
			e.Model = ""
		}
	}
	e.Images = imagesFingerprint(ids)
	return e
}

func encodeIndex(users map[string]userEntry) []byte {
	var b bytes.Buffer
	b.WriteString(indexHeader + "\n")
	for _, id := range slices.Sorted(maps.Keys(users)) {
		e := users[id]
		fmt.Fprintf(&b, "%s %d %s %s\n", id, e.Rev, e.Images, strconv.Quote(e.Model))
	}
	return b.Bytes()
}

func decodeIndex(data []byte) (map[string]userEntry, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() || sc.Text() != indexHeader {
		return nil, fmt.Errorf("%s: not a revision index", indexKey)
	}
	users := map[string]userEntry{}
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("%s: bad line %q", indexKey, sc.Text())
		}
		rev, err := strconv.ParseUint(f[1], 10, 64)
		model, qerr := strconv.Unquote(f[3])
		if err != nil || qerr != nil || faceauth.ValidateUserID(f[0]) != nil {
			return nil, fmt.Errorf("%s: bad line %q", indexKey, sc.Text())
		}
		users[f[0]] = userEntry{Rev: rev, Images: f[2], Model: model}
	}
	return users, sc.Err()
}

// noteChange writes the change object of revision rev of user id. It is
// called before the record or deletion that the revision is for.
func (r *Registry) noteChange(ctx context.Context, rev uint64, id string) error {
	if _, err := r.store.Put(ctx, changeKey(rev, r.now(), id), nil, faceauth.Cond{}); err != nil {
		return fmt.Errorf("write the change object of %s: %w", id, err)
	}
	return nil
}

// revisions returns every live user with what the index knows of it, as
// of the call: the compacted index plus a read of every user named by a
// change object. It folds those changes into meta/index when it can. A
// missing or unreadable index is rebuilt from every record, once.
//
// The change objects are listed once, before meta/index is read: a change
// object listed has its record read, and one deleted since the listing
// was folded into a meta/index written before its deletion, which every
// later read of meta/index reflects (a fold keeps what it read). So an
// index read after the listing needs no re-check when there is nothing to
// fold, and the fold is faceauth.Update's compare-and-swap: a replica that
// folded meanwhile makes it read meta/index again.
func (r *Registry) revisions(ctx context.Context) (map[string]userEntry, error) {
	changes, err := r.listChanges(ctx)
	if err != nil {
		return nil, err
	}
	var users map[string]userEntry
	var folded []string
	_, err = faceauth.Update(ctx, r.store, indexKey, maxAttempts, func(old []byte, exists bool) ([]byte, error) {
		users, folded, err = r.fold(ctx, old, exists, changes)
		if err != nil || len(folded) == 0 {
			return nil, err
		}
		return encodeIndex(users), nil
	})
	if errors.Is(err, faceauth.ErrPrecondition) {
		return nil, faceauth.E(faceauth.KindConflict, "contention", "The revision index is being changed by too many replicas at once; try again.")
	}
	if err != nil {
		return nil, err
	}
	err = parallel(ctx, len(folded), func(ctx context.Context, i int) error {
		return r.store.Delete(ctx, folded[i])
	})
	if err != nil {
		// They stay and are read again next time: harmless.
		r.log.Warn("revision index: deleting folded change objects failed", "err", err)
	}
	return users, nil
}

// fold reads the records of the users named by changes over the stored
// index data (rebuilt from every record when missing or unreadable), and
// returns every live user and the change objects the result reflects.
func (r *Registry) fold(ctx context.Context, data []byte, exists bool, changes []changeObj) (users map[string]userEntry, folded []string, err error) {
	if exists {
		if users, err = decodeIndex(data); err != nil {
			r.log.Warn("revision index unreadable; rebuilding it from every record", "err", err)
			users = nil
		}
	}
	if users == nil {
		// First run (or a damaged index): every record, once.
		users = map[string]userEntry{}
		err := r.eachRecord(ctx, func(rec *pb.UserRecord) error {
			users[rec.Id] = entryOf(rec)
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	// The newest change object of each user says it may differ from the
	// index: read its record.
	newest := map[string]uint64{}
	for _, c := range changes {
		newest[c.id] = max(newest[c.id], c.rev)
	}
	ids := slices.Collect(maps.Keys(newest))
	recs := make([]*pb.UserRecord, len(ids))
	err = parallel(ctx, len(ids), func(ctx context.Context, i int) error {
		rec, _, tomb, err := r.read(ctx, ids[i])
		if tomb != nil {
			rec = tomb
		}
		recs[i] = rec
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	held := map[string]uint64{} // the revision each user's record is at
	for i, id := range ids {
		rec := recs[i]
		switch {
		case rec == nil:
			delete(users, id)
		case isTombstone(rec):
			delete(users, id)
			held[id] = rec.Revision
		default:
			users[id] = entryOf(rec)
			held[id] = rec.Revision
		}
	}
	// Fold: a change is reflected when its user's record is at its
	// revision or newer, or the record is gone (the delete finished).
	now := r.now()
	for _, c := range changes {
		rev, has := held[c.id]
		// A missing record may be one whose writer has not written it
		// yet: only the grace tells that from a finished delete.
		if (has && rev >= c.rev) || now.Sub(c.at) > changeGrace {
			folded = append(folded, c.key)
		}
	}
	return users, folded, nil
}

type changeObj struct {
	key string
	rev uint64
	at  time.Time
	id  string
}

// listChanges lists every change object.
func (r *Registry) listChanges(ctx context.Context) ([]changeObj, error) {
	var out []changeObj
	after := ""
	for {
		keys, err := r.store.List(ctx, changesPrefix, after, 1000)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", changesPrefix, err)
		}
		for _, k := range keys {
			if rev, at, id, ok := parseChangeKey(k); ok {
				out = append(out, changeObj{key: k, rev: rev, at: at, id: id})
			}
		}
		if len(keys) < 1000 {
			return out, nil
		}
		after = keys[len(keys)-1]
	}
}

// imageIDOfKey returns the image id of an images/<id>/<sha256>.<ext> key.
func imageIDOfKey(key string) string {
	return strings.TrimSuffix(path.Base(key), path.Ext(key))
}
