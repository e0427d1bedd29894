package edged

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"go.etcd.io/bbolt"

	"github.com/xplore/faceauth"
	pb "github.com/xplore/faceauth/proto"
)

// entry is one message of the users stream.
type entry struct {
	Scope  string // the scope whose consumer delivered it (uplink.Delivery.Scope)
	Seq    uint64
	Change *pb.UserChange
	Err    error // the message could not be decoded: skip it, but advance
}

// galleryOp is what an applied change does to the in-memory gallery.
type galleryOp struct {
	ID   string
	Vecs [][]float32 // nil: remove the user
}

// outcome is what applying a batch did.
type outcome struct {
	Ops          []galleryOp    // in order; only for the served generation
	UsersDelta   int            // change in users with vectors
	RefusedDelta map[string]int // change in refused users by model
	Applied      int            // changes that changed the set
	Ignored      int            // changes older than what is stored
	Invalid      []error        // changes that could not be used at all
	Deletes      int            // deletes applied: compact, then send receipts
	Dropped      int            // upserts that dropped stored vectors: compact too
	State        syncState      // the position after the batch
}

// erased reports whether the batch left erased vectors (of a delete, or of
// an upsert that replaced or removed them) in freed pages of the file.
func (o *outcome) erased() bool { return o.Deletes > 0 || o.Dropped > 0 }

// apply applies entries, in stream order within each scope, to generation
// gen (0: the served one) and records each scope's last sequence, all in one
// transaction. dims is the length of the edge model's vectors.
func (d *db) apply(gen uint64, entries []entry, dims int) (*outcome, error) {
	out := &outcome{RefusedDelta: map[string]int{}}
	if len(entries) == 0 {
		return out, nil
	}
	err := d.update(func(tx *bbolt.Tx) error {
		*out = outcome{RefusedDelta: map[string]int{}}
		meta := tx.Bucket(bucketMeta)
		served := gen == 0
		var g *bbolt.Bucket
		if served {
			var err error
			if g, err = activeGen(tx); err != nil {
				return err
			}
		} else if g = tx.Bucket(genName(gen)); g == nil {
			return fmt.Errorf("edge database: generation %d is missing", gen)
		}
		a := applier{db: d, users: g.Bucket(bucketUsers), tombs: g.Bucket(bucketTombs), out: out, served: served, dims: dims}
		if served {
			a.receipts = tx.Bucket(bucketPending)
		} else {
			a.receipts = g.Bucket(bucketReceipts)
		}
		st := readState(g)
		var buf []byte
		scopes, err := g.CreateBucketIfNotExists(bucketScopes)
		if err != nil {
			return err
		}
		touched := map[string]bool{}
		for _, e := range entries {
			// (Only central's tools read the stream unfiltered, with no scope.)
			scope := cmp.Or(e.Scope, pb.NoSite)
			if e.Seq <= st.Scopes[scope] {
				out.Ignored++ // redelivered
				continue
			}
			st.Scopes[scope], st.Seq = e.Seq, max(st.Seq, e.Seq)
			touched[scope] = true
			if e.Err != nil {
				out.Invalid = append(out.Invalid, fmt.Errorf("message %d: %w", e.Seq, e.Err))
				continue
			}
			rev, err := a.apply(e.Change, &buf)
			if err != nil {
				return err
			}
			st.Revision = max(st.Revision, rev)
		}
		out.State = st
		for scope := range touched {
			if err := putUint(scopes, []byte(scope), st.Scopes[scope]); err != nil {
				return err
			}
		}
		if err := putUint(g, keySeq, st.Seq); err != nil {
			return err
		}
		if err := putUint(g, keyRevision, st.Revision); err != nil {
			return err
		}
		// A set being built marks its deletes at finishResync (as owed
		// receipts), not its dropped vectors: mark those now.
		if (out.Deletes > 0 && served) || out.Dropped > 0 {
			return meta.Put(keyDirty, []byte{1})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply %d changes: %w", len(entries), err)
	}
	return out, nil
}

// applier applies changes inside one transaction.
type applier struct {
	db       *db
	users    *bbolt.Bucket
	tombs    *bbolt.Bucket
	receipts *bbolt.Bucket
	out      *outcome
	served   bool
	dims     int
}

func (a *applier) tombKey(id string) []byte {
	m := hmac.New(sha256.New, a.db.tombKey)
	m.Write([]byte(id))
	return m.Sum(nil)[:16]
}

// current returns the stored revision of id (0: unknown) and the old
// record's header when the user is stored.
func (a *applier) current(id string) (uint64, *recordHeader, error) {
	var rev uint64
	if v := a.tombs.Get(a.tombKey(id)); len(v) == 8 {
		rev = binary.BigEndian.Uint64(v)
	}
	v := a.users.Get([]byte(id))
	if v == nil {
		return rev, nil, nil
	}
	h, err := decodeHeader(v)
	if err != nil {
		return 0, nil, fmt.Errorf("user %q: %w", id, err)
	}
	return max(rev, h.Revision), &h, nil
}

// forget undoes old's contribution to the counts.
func (a *applier) forget(old *recordHeader) {
	if old == nil {
		return
	}
	if old.Count > 0 {
		a.out.UsersDelta--
	}
	for _, m := range old.Refused {
		a.out.RefusedDelta[m]--
	}
}

// apply applies one change and returns its revision. Bad changes are
// counted in out.Invalid, not returned: one bad message must not stop the
// feed.
func (a *applier) apply(c *pb.UserChange, buf *[]byte) (uint64, error) {
	switch {
	case c.GetUpsert() != nil:
		return a.upsert(c.GetUpsert(), buf)
	case c.GetDelete() != nil:
		return a.delete(c.GetDelete())
	}
	a.out.Invalid = append(a.out.Invalid, errors.New("a feed message carried neither an upsert nor a delete"))
	return 0, nil
}

func (a *applier) upsert(u *pb.UserUpsert, buf *[]byte) (uint64, error) {
	if err := faceauth.ValidateUserID(u.UserId); err != nil {
		a.out.Invalid = append(a.out.Invalid, fmt.Errorf("upsert with user id %.40q: %w", u.UserId, err))
		return u.Revision, nil
	}
	cur, old, err := a.current(u.UserId)
	if err != nil {
		return 0, err
	}
	if u.Revision < cur {
		a.out.Invalid = append(a.out.Invalid, staleChange(u.UserId, u.Revision, cur))
		return u.Revision, nil
	}
	if u.Revision == cur {
		a.out.Ignored++ // a redelivery
		return u.Revision, nil
	}
	r := record{Revision: u.Revision, Model: a.db.model}
	seen := map[string]bool{}
	for _, e := range u.Embeddings {
		if e.GetModel() != a.db.model {
			if m := e.GetModel(); !seen[m] {
				seen[m] = true
				r.Refused = append(r.Refused, m)
			}
			continue
		}
		if len(e.Vector) != a.dims || !unit(e.Vector) {
			a.out.Invalid = append(a.out.Invalid, fmt.Errorf("user %q revision %d: an embedding of %s is not %d finite values of norm 1 (it has %d)", u.UserId, u.Revision, a.db.model, a.dims, len(e.Vector)))
			continue
		}
		r.Vecs = append(r.Vecs, e.Vector)
	}
	if len(r.Vecs) > 0 {
		r.Refused = nil
	} else {
		r.Model = ""
	}
	*buf, err = encodeRecord((*buf)[:0], &r)
	if err != nil {
		a.out.Invalid = append(a.out.Invalid, fmt.Errorf("user %q revision %d: %w", u.UserId, u.Revision, err))
		return u.Revision, nil
	}
	// The old value's page is freed, not overwritten, by the Put: a vector
	// the new record does not keep (a photo removed, new photos, a model
	// switch) stays in the file until a compaction. old.vecs aliases the
	// memory map, so compare before the Put.
	if old != nil && dropsVectors(old, *buf, len(r.Vecs), a.dims) {
		a.out.Dropped++
	}
	// bbolt keeps a reference to the value until commit: hand it a copy.
	if err := a.users.Put([]byte(u.UserId), bytes.Clone(*buf)); err != nil {
		return 0, err
	}
	if err := a.tombs.Delete(a.tombKey(u.UserId)); err != nil {
		return 0, err
	}
	a.forget(old)
	for _, m := range r.Refused {
		a.out.RefusedDelta[m]++
	}
	a.out.Applied++
	if len(r.Vecs) > 0 {
		a.out.UsersDelta++
		if a.served {
			a.out.Ops = append(a.out.Ops, galleryOp{ID: u.UserId, Vecs: r.Vecs})
		}
	} else if a.served && old != nil && old.Count > 0 {
		a.out.Ops = append(a.out.Ops, galleryOp{ID: u.UserId})
	}
	return u.Revision, nil
}

func (a *applier) delete(d *pb.UserDelete) (uint64, error) {
	if err := faceauth.ValidateUserID(d.UserId); err != nil {
		a.out.Invalid = append(a.out.Invalid, fmt.Errorf("delete with user id %.40q: %w", d.UserId, err))
		return d.Revision, nil
	}
	if d.KeptBy(a.db.sites) {
		// Moved, not erased, and still in a site this edge serves: the
		// message of that scope carries the user (before or after this
		// one), so this scope's tombstone changes nothing here.
		a.out.Ignored++
		return d.Revision, nil
	}
	cur, old, err := a.current(d.UserId)
	if err != nil {
		return 0, err
	}
	if d.Revision < cur {
		// Not a reject, unlike an older upsert: each scope has its own
		// consumer, and a scope the user left keeps its tombstone, which
		// an edge serving another scope of the user may read after that
		// scope's newer upsert (a user erased from sites A and B and
		// registered again in A). Applying nothing is the answer either way.
		a.out.Ignored++
		return d.Revision, nil
	}
	if old == nil && d.Revision == cur {
		a.out.Ignored++ // a redelivery
		return d.Revision, nil
	}
	if err := a.users.Delete([]byte(d.UserId)); err != nil {
		return 0, err
	}
	if err := a.tombs.Put(a.tombKey(d.UserId), binary.BigEndian.AppendUint64(nil, d.Revision)); err != nil {
		return 0, err
	}
	if err := a.receipts.Put(receiptKey(d.Revision, d.UserId), nil); err != nil {
		return 0, err
	}
	a.forget(old)
	a.out.Applied++
	a.out.Deletes++
	if a.served {
		a.out.Ops = append(a.out.Ops, galleryOp{ID: d.UserId})
	}
	return d.Revision, nil
}

// dropsVectors reports whether some vector of the stored record old is not
// among the vectors of enc, a new encoded record that ends with count
// vectors of dims floats. A change that keeps every old vector (new
// metadata, a photo added) frees only bytes the file still holds, so it
// needs no compaction.
func dropsVectors(old *recordHeader, enc []byte, count, dims int) bool {
	if old.Count == 0 {
		return false
	}
	if count > 0 && dims != old.Dims {
		return true
	}
	kept := enc[len(enc)-4*count*dims:]
	size := 4 * old.Dims
	for i := range old.Count {
		v := old.vecs[i*size : (i+1)*size]
		found := false
		for j := 0; j+size <= len(kept); j += size {
			if bytes.Equal(kept[j:j+size], v) {
				found = true
				break
			}
		}
		if !found {
			return true
		}
	}
	return false
}

// staleChange is the error of a change older than what the edge holds for
// its user. Central publishes a user's revisions in order and the stream
// keeps only the latest, so this is a genuine old message replayed by
// someone with publish rights on NATS: a reject, never applied.
func staleChange(id string, rev, held uint64) error {
	return fmt.Errorf("%w: change for user %q has revision %d, older than the %d held (replayed)", pb.ErrRejected, id, rev, held)
}

// unitTolerance is how far from 1 a stored vector's norm may be: half the
// gallery's tolerance, so that every stored vector also loads.
const unitTolerance = 5e-4

// unit reports whether v is finite and L2-normalised.
func unit(v []float32) bool {
	var n float64
	for _, f := range v {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return false
		}
		n += float64(f) * float64(f)
	}
	return math.Abs(math.Sqrt(n)-1) <= unitTolerance
}
