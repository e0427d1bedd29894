package edged

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/auth"
	"github.com/xplore/faceauth/feed"
	pb "github.com/xplore/faceauth/proto"
	"google.golang.org/protobuf/proto"
)

// The bbolt layout.
//
//	meta              edge-wide settings (keys below)
//	pending           delete receipts to send once the data is gone:
//	                  8-byte big-endian revision + user id -> empty
//	gen-<16 hex>      one generation of the user set; meta "active" names
//	                  the one served. A full resync builds the next
//	                  generation beside it and swaps in one transaction.
//	    seq, created, revision   the feed position the set reflects
//	    users         user id -> record (see record.go)
//	    tombs         keyed hash of a deleted user's id -> revision, so an
//	                  older upsert arriving late cannot resurrect the user
//	    receipts      (only while resyncing) deletes seen, moved to
//	                  pending at the swap
var (
	bucketMeta     = []byte("meta")
	bucketPending  = []byte("pending")
	bucketUsers    = []byte("users")
	bucketTombs    = []byte("tombs")
	bucketReceipts = []byte("receipts")

	keyActive   = []byte("active")
	keyNextGen  = []byte("next_gen")
	keyModel    = []byte("model")
	keyTombKey  = []byte("tomb_key")
	keyDirty    = []byte("dirty")
	keyEdgeID   = []byte("edge_id")
	keySites    = []byte("sites")
	keyTokenKey = []byte("token_key")
	keyRevoked  = []byte("token_revocations")
	keyFeedKey  = []byte("feed_key")      // the trusted feed key (pb.TokenKey)
	keyFeedRoot = []byte("feed_key_root") // the feed key last provisioned
	keySeq      = []byte("seq")
	keyCreated  = []byte("created")
	keyRevision = []byte("revision")
)

// genName is the bucket name of generation g.
func genName(g uint64) []byte { return fmt.Appendf(nil, "gen-%016x", g) }

// db is the edge's bbolt file: the user set it serves offline, the feed
// position, the cached token key and the receipts it still owes.
//
// Erasure is the delicate part: bbolt never overwrites a freed page, so a
// deleted value's bytes stay in the file until the page is reused. After a
// delete the file is marked dirty and compact rewrites only the live data
// into a new file that replaces the old one.
type db struct {
	path  string
	model string
	opts  *bbolt.Options

	// wmu serialises writers, compaction included, so that no write can
	// land in the old file while compact copies it. Readers do not take it:
	// verification reads on during a compaction.
	wmu sync.Mutex
	// mu is held for reading by every transaction and for writing only
	// while compact swaps the file under bolt.
	mu   sync.RWMutex
	bolt *bbolt.DB
	// lock is held for as long as the file is open. bbolt's own lock
	// lives on the file's inode, which compact replaces, so it alone
	// would leave a moment in which another process could open the file.
	lock *os.File
	// tombKey keys the hashes of deleted ids, so the file does not hold
	// an unsalted hash that a dictionary of ids would reverse.
	tombKey []byte
}

// syncState is the feed position a generation reflects.
type syncState struct {
	Seq      uint64    // last applied stream sequence
	Created  time.Time // creation time of the stream it came from
	Revision uint64    // highest change revision applied
}

// openDB opens or creates the bbolt file at path for an edge that runs
// model. Data of another model and half-built generations left by a crash
// are dropped, and the file is marked dirty so compact scrubs them.
func openDB(path, model string) (*db, error) {
	if model == "" {
		return nil, errors.New("open edge database: no model id")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open edge database: %w", err)
	}
	lock, err := lockFile(path+".lock", true)
	if err != nil {
		return nil, err
	}
	d := &db{path: path, model: model, lock: lock, opts: &bbolt.Options{
		Timeout:        time.Second,
		FreelistType:   bbolt.FreelistMapType,
		NoFreelistSync: true,
		// Reserve address space so that growing the file during a
		// bootstrap does not remap (and block readers) every few MB.
		InitialMmapSize: 1 << 30,
	}}
	b, err := bbolt.Open(path, 0o600, d.opts)
	if err != nil {
		lock.Close()
		if errors.Is(err, bberrors.ErrTimeout) {
			return nil, fmt.Errorf("open edge database %s: another process holds it (is an edged already running on this data folder?)", path)
		}
		return nil, fmt.Errorf("open edge database %s: %w", path, err)
	}
	d.bolt = b
	if err := b.Update(d.init); err != nil {
		b.Close()
		lock.Close()
		return nil, fmt.Errorf("open edge database %s: %w", path, err)
	}
	return d, nil
}

func (d *db) init(tx *bbolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketPending); err != nil {
		return err
	}
	if k := meta.Get(keyTombKey); len(k) == 32 {
		d.tombKey = bytes.Clone(k)
	} else {
		d.tombKey = make([]byte, 32)
		rand.Read(d.tombKey)
		if err := meta.Put(keyTombKey, d.tombKey); err != nil {
			return err
		}
	}
	active := getUint(meta, keyActive)
	if active != 0 && string(meta.Get(keyModel)) != d.model {
		// The vectors are of a model this edge no longer runs: start over.
		if err := tx.DeleteBucket(genName(active)); err != nil {
			return err
		}
		active = 0
		if err := meta.Put(keyDirty, []byte{1}); err != nil {
			return err
		}
	}
	if err := meta.Put(keyModel, []byte(d.model)); err != nil {
		return err
	}
	// Drop generations that are not served: a resync that did not finish.
	var stale [][]byte
	if err := tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		if bytes.HasPrefix(name, []byte("gen-")) && (active == 0 || !bytes.Equal(name, genName(active))) {
			stale = append(stale, bytes.Clone(name))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, name := range stale {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
		if err := meta.Put(keyDirty, []byte{1}); err != nil {
			return err
		}
	}
	if active == 0 {
		g, err := newGen(tx, meta)
		if err != nil {
			return err
		}
		return putUint(meta, keyActive, g)
	}
	return nil
}

// newGen creates an empty generation and returns its number.
func newGen(tx *bbolt.Tx, meta *bbolt.Bucket) (uint64, error) {
	g := getUint(meta, keyNextGen) + 1
	if err := putUint(meta, keyNextGen, g); err != nil {
		return 0, err
	}
	b, err := tx.CreateBucket(genName(g))
	if err != nil {
		return 0, err
	}
	if _, err := b.CreateBucket(bucketUsers); err != nil {
		return 0, err
	}
	if _, err := b.CreateBucket(bucketTombs); err != nil {
		return 0, err
	}
	if _, err := b.CreateBucket(bucketReceipts); err != nil {
		return 0, err
	}
	return g, nil
}

func isEmpty(b *bbolt.Bucket) bool {
	k, _ := b.Cursor().First()
	return k == nil
}

func getUint(b *bbolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func putUint(b *bbolt.Bucket, k []byte, v uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, v))
}

// close closes the file.
func (d *db) close() error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.bolt.Close()
	if d.lock != nil {
		d.lock.Close() // releases the lock
	}
	return err
}

// view runs fn in a read transaction. Never nest views: a compaction
// waiting for the swap would block the inner one for good.
func (d *db) view(fn func(*bbolt.Tx) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.bolt.View(fn)
}

func (d *db) update(fn func(*bbolt.Tx) error) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.bolt.Update(fn)
}

// activeGen returns the served generation's bucket.
func activeGen(tx *bbolt.Tx) (*bbolt.Bucket, error) {
	g := getUint(tx.Bucket(bucketMeta), keyActive)
	b := tx.Bucket(genName(g))
	if b == nil {
		return nil, fmt.Errorf("edge database: active generation %d is missing", g)
	}
	return b, nil
}

func readState(gen *bbolt.Bucket) syncState {
	s := syncState{Seq: getUint(gen, keySeq), Revision: getUint(gen, keyRevision)}
	if c := getUint(gen, keyCreated); c != 0 {
		s.Created = time.Unix(0, int64(c)).UTC()
	}
	return s
}

// state returns the feed position of the served set.
func (d *db) state() (syncState, error) {
	var s syncState
	err := d.view(func(tx *bbolt.Tx) error {
		g, err := activeGen(tx)
		if err != nil {
			return err
		}
		s = readState(g)
		return nil
	})
	return s, err
}

// loadCounts summarises a loaded set.
type loadCounts struct {
	Users   int            // users with vectors of the edge's model
	Refused map[string]int // users refused, by the models they carried
}

// load calls add for every user of the served set that has vectors. It
// copies the vectors straight from the stored bytes into one buffer that it
// reuses for every user: add must copy what it keeps (the gallery does).
func (d *db) load(add func(id string, vecs [][]float32) error) (loadCounts, error) {
	c := loadCounts{Refused: map[string]int{}}
	var flat []float32
	var rows [][]float32
	err := d.view(func(tx *bbolt.Tx) error {
		g, err := activeGen(tx)
		if err != nil {
			return err
		}
		return g.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			h, err := decodeHeader(v)
			if err != nil {
				return fmt.Errorf("user %q: %w", k, err)
			}
			if h.Count == 0 {
				for _, m := range h.Refused {
					c.Refused[m]++
				}
				return nil
			}
			c.Users++
			rows = h.vectorsInto(&flat, rows)
			return add(string(k), rows)
		})
	})
	if err != nil {
		return loadCounts{}, fmt.Errorf("load edge database: %w", err)
	}
	return c, nil
}

// lookup returns one stored user of the served set, or nil.
func (d *db) lookup(id string) (*record, error) {
	var r *record
	err := d.view(func(tx *bbolt.Tx) error {
		g, err := activeGen(tx)
		if err != nil {
			return err
		}
		v := g.Bucket(bucketUsers).Get([]byte(id))
		if v == nil {
			return nil
		}
		r, err = decodeRecord(v)
		return err
	})
	return r, err
}

// entry is one message of the users stream.
type entry struct {
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
	State        syncState      // the position after the batch
}

// apply applies entries, in stream order, to generation gen (0: the served
// one) and records the last sequence, all in one transaction. dims is the
// length of the edge model's vectors.
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
		for _, e := range entries {
			if e.Seq <= st.Seq {
				out.Ignored++ // redelivered
				continue
			}
			st.Seq = e.Seq
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
		if err := putUint(g, keySeq, st.Seq); err != nil {
			return err
		}
		if err := putUint(g, keyRevision, st.Revision); err != nil {
			return err
		}
		if out.Deletes > 0 && served {
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
	cur, old, err := a.current(d.UserId)
	if err != nil {
		return 0, err
	}
	if d.Revision < cur {
		a.out.Invalid = append(a.out.Invalid, staleChange(d.UserId, d.Revision, cur))
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

// staleChange is the error of a change older than what the edge holds for
// its user. Central publishes a user's revisions in order and the stream
// keeps only the latest, so this is a genuine old message replayed by
// someone with publish rights on NATS: a reject, never applied.
func staleChange(id string, rev, held uint64) error {
	return fmt.Errorf("%w: change for user %q has revision %d, older than the %d held (replayed)", feed.ErrRejected, id, rev, held)
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

func receiptKey(rev uint64, id string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, rev), id...)
}

// beginResync creates an empty generation to build a full resync into.
func (d *db) beginResync() (uint64, error) {
	var g uint64
	err := d.update(func(tx *bbolt.Tx) error {
		var err error
		g, err = newGen(tx, tx.Bucket(bucketMeta))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("begin resync: %w", err)
	}
	return g, nil
}

// finishResync makes generation g the served set, recording the stream
// it was built from, and drops the old set in the same transaction. The old
// set's bytes are still in freed pages, so the file is marked dirty when it
// held anything.
func (d *db) finishResync(g uint64, created time.Time) error {
	err := d.update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		nb := tx.Bucket(genName(g))
		if nb == nil {
			return fmt.Errorf("generation %d is missing", g)
		}
		if err := putUint(nb, keyCreated, uint64(created.UnixNano())); err != nil {
			return err
		}
		// The deletes seen while building become owed receipts now that
		// the old set, which may still hold those users, goes away.
		pending := tx.Bucket(bucketPending)
		rb := nb.Bucket(bucketReceipts)
		if err := rb.ForEach(func(k, _ []byte) error { return pending.Put(bytes.Clone(k), nil) }); err != nil {
			return err
		}
		if err := nb.DeleteBucket(bucketReceipts); err != nil {
			return err
		}
		if _, err := nb.CreateBucket(bucketReceipts); err != nil {
			return err
		}
		old, err := activeGen(tx)
		if err != nil {
			return err
		}
		oldEmpty := isEmpty(old.Bucket(bucketUsers)) && isEmpty(old.Bucket(bucketTombs))
		if err := tx.DeleteBucket(genName(getUint(meta, keyActive))); err != nil {
			return err
		}
		if err := putUint(meta, keyActive, g); err != nil {
			return err
		}
		if !oldEmpty || !isEmpty(pending) {
			return meta.Put(keyDirty, []byte{1})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish resync: %w", err)
	}
	return nil
}

// abortResync drops a generation that will not be finished.
func (d *db) abortResync(g uint64) error {
	err := d.update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(genName(g)); err != nil && !errors.Is(err, bberrors.ErrBucketNotFound) {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyDirty, []byte{1})
	})
	if err != nil {
		return fmt.Errorf("abort resync: %w", err)
	}
	return nil
}

// receipt is a delete the edge owes a receipt for.
type receipt struct {
	UserID   string
	Revision uint64
}

// dirty reports whether freed pages may hold erased data.
func (d *db) dirty() (bool, error) {
	var dirty bool
	err := d.view(func(tx *bbolt.Tx) error {
		dirty = len(tx.Bucket(bucketMeta).Get(keyDirty)) > 0
		return nil
	})
	return dirty, err
}

// compact rewrites the live data into a new file that replaces the old
// one, so that no freed page with erased bytes survives, and clears the
// dirty mark. It returns the receipts owed at that point: their data is now
// gone from the file.
func (d *db) compact() ([]receipt, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	tmp := d.path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("compact: %w", err)
	}
	dst, err := bbolt.Open(tmp, 0o600, d.opts)
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	fail := func(err error) ([]receipt, error) {
		dst.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("compact %s: %w", d.path, err)
	}
	d.mu.RLock()
	err = bbolt.Compact(dst, d.bolt, 64<<20)
	d.mu.RUnlock()
	if err != nil {
		return fail(err)
	}
	var owed []receipt
	err = dst.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			owed = append(owed, receipt{Revision: binary.BigEndian.Uint64(k), UserID: string(k[8:])})
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(keyDirty)
	})
	if err != nil {
		return fail(err)
	}
	// bbolt fsyncs each commit; closing releases the lock before the rename.
	if err := dst.Close(); err != nil {
		return fail(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Rename(tmp, d.path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("compact %s: %w", d.path, err)
	}
	if err := syncDir(filepath.Dir(d.path)); err != nil {
		return nil, fmt.Errorf("compact %s: %w", d.path, err)
	}
	d.bolt.Close()
	if d.bolt, err = bbolt.Open(d.path, 0o600, d.opts); err != nil {
		// Every later transaction fails on the closed handle, which
		// surfaces in the heartbeat and the logs.
		return nil, fmt.Errorf("compact %s: reopen: %w", d.path, err)
	}
	return owed, nil
}

// receiptsSent forgets receipts that reached the feed. The ids now sit in
// freed pages, so the file is marked dirty for another compaction.
func (d *db) receiptsSent(rs []receipt) error {
	if len(rs) == 0 {
		return nil
	}
	err := d.update(func(tx *bbolt.Tx) error {
		p := tx.Bucket(bucketPending)
		for _, r := range rs {
			if err := p.Delete(receiptKey(r.Revision, r.UserID)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyDirty, []byte{1})
	})
	if err != nil {
		return fmt.Errorf("forget sent receipts: %w", err)
	}
	return nil
}

// tokenKey returns the cached token public key and the revision of the
// message it came in (0: unknown), or nil.
func (d *db) tokenKey() (*pb.TokenKey, uint64, error) {
	k := &pb.TokenKey{}
	ok, rev, err := d.getMetaRev(keyTokenKey, k)
	if err != nil || !ok {
		return nil, 0, err
	}
	return k, rev, nil
}

// setTokenKey caches the token public key and its message's revision.
func (d *db) setTokenKey(k *pb.TokenKey, rev uint64) error {
	return d.putMetaRev(keyTokenKey, k, rev, nil)
}

// feedKey returns the trusted feed key, the revision of the announcement
// it came from, and the key last provisioned (nil: none).
func (d *db) feedKey() (k *pb.TokenKey, rev uint64, root []byte, err error) {
	k = &pb.TokenKey{}
	ok, rev, err := d.getMetaRev(keyFeedKey, k)
	if err != nil {
		return nil, 0, nil, err
	}
	if !ok {
		k = nil
	}
	err = d.view(func(tx *bbolt.Tx) error {
		root = bytes.Clone(tx.Bucket(bucketMeta).Get(keyFeedRoot))
		return nil
	})
	return k, rev, root, err
}

// setFeedKey stores the trusted feed key; root, when set, records it as
// the key provisioned.
func (d *db) setFeedKey(pub []byte, rev uint64, root []byte) error {
	k := &pb.TokenKey{KeyId: auth.KeyIDOf(pub), PublicKey: pub}
	return d.putMetaRev(keyFeedKey, k, rev, func(meta *bbolt.Bucket) error {
		if root == nil {
			return nil
		}
		return meta.Put(keyFeedRoot, bytes.Clone(root))
	})
}

// revKey is the meta key of the revision stored beside key.
func revKey(key []byte) []byte { return append(bytes.Clone(key), "_rev"...) }

// getMetaRev is getMeta with the revision stored beside the value.
func (d *db) getMetaRev(key []byte, m proto.Message) (bool, uint64, error) {
	found, rev := false, uint64(0)
	err := d.view(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(key)
		if v == nil {
			return nil
		}
		found, rev = true, getUint(meta, revKey(key))
		return proto.Unmarshal(v, m)
	})
	if err != nil {
		return false, 0, fmt.Errorf("read cached %s: %w", key, err)
	}
	return found, rev, nil
}

// putMetaRev stores m and its revision under key in one transaction, with
// more done in the same transaction when it is set.
func (d *db) putMetaRev(key []byte, m proto.Message, rev uint64, more func(*bbolt.Bucket) error) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	err = d.update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(key, b); err != nil {
			return err
		}
		if err := putUint(meta, revKey(key), rev); err != nil {
			return err
		}
		if more != nil {
			return more(meta)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache %s: %w", key, err)
	}
	return nil
}

// revocations returns the cached token revocation list, or nil.
func (d *db) revocations() (*pb.TokenRevocations, error) {
	l := &pb.TokenRevocations{}
	ok, err := d.getMeta(keyRevoked, l)
	if err != nil || !ok {
		return nil, err
	}
	return l, nil
}

// setRevocations caches the token revocation list.
func (d *db) setRevocations(l *pb.TokenRevocations) error { return d.putMeta(keyRevoked, l) }

// getMeta decodes the meta value of key into m; false when there is none.
func (d *db) getMeta(key []byte, m proto.Message) (bool, error) {
	found := false
	err := d.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(key)
		if v == nil {
			return nil
		}
		found = true
		return proto.Unmarshal(v, m)
	})
	if err != nil {
		return false, fmt.Errorf("read cached %s: %w", key, err)
	}
	return found, nil
}

// putMeta stores m as the meta value of key.
func (d *db) putMeta(key []byte, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if err := d.update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(key, b) }); err != nil {
		return fmt.Errorf("cache %s: %w", key, err)
	}
	return nil
}

// edgeID returns the edge id the file was last used with ("" when new).
func (d *db) edgeID() (string, error) {
	var id string
	err := d.view(func(tx *bbolt.Tx) error {
		id = string(tx.Bucket(bucketMeta).Get(keyEdgeID))
		return nil
	})
	return id, err
}

// setSites records the sites the edge serves. When they differ from the
// recorded ones the served set is dropped (and the file marked for the
// erasing compaction): it may hold users of a site the edge no longer
// serves, and it may lack those of a new one, which the feed will not send
// again from the saved position. The edge then bootstraps anew. It
// reports whether the set was dropped.
func (d *db) setSites(sites []string) (bool, error) {
	want := strings.Join(sites, ",")
	dropped := false
	err := d.update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		old := meta.Get(keySites)
		if old != nil && string(old) == want {
			return nil
		}
		active := getUint(meta, keyActive)
		// A file from before sites existed served the users of no site,
		// which is what an edge of no sites serves.
		if active != 0 && !(old == nil && want == "") {
			if err := tx.DeleteBucket(genName(active)); err != nil {
				return err
			}
			g, err := newGen(tx, meta)
			if err != nil {
				return err
			}
			if err := putUint(meta, keyActive, g); err != nil {
				return err
			}
			if err := meta.Put(keyDirty, []byte{1}); err != nil {
				return err
			}
			dropped = true
		}
		return meta.Put(keySites, []byte(want))
	})
	return dropped, err
}

// setEdgeID records the edge id.
func (d *db) setEdgeID(id string) error {
	return d.update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyEdgeID, []byte(id)) })
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// pending returns every receipt still owed.
func (d *db) pending() ([]receipt, error) {
	var owed []receipt
	err := d.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			owed = append(owed, receipt{Revision: binary.BigEndian.Uint64(k), UserID: string(k[8:])})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read owed receipts: %w", err)
	}
	return owed, nil
}

// openReadOnly opens the file at path for reading only, failing at once
// when a running edge holds it.
func openReadOnly(path string) (*db, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open edge database: %w", err)
	}
	lock, err := lockFile(path+".lock", false)
	if err != nil {
		return nil, err
	}
	opts := &bbolt.Options{ReadOnly: true, Timeout: time.Second}
	b, err := bbolt.Open(path, 0o600, opts)
	if err != nil {
		lock.Close()
		if errors.Is(err, bberrors.ErrTimeout) {
			return nil, fmt.Errorf("open edge database %s: a running edge holds it; ask it with `edged status` instead", path)
		}
		return nil, fmt.Errorf("open edge database %s: %w", path, err)
	}
	d := &db{path: path, opts: opts, bolt: b, lock: lock}
	if err := d.view(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("not an edge database")
		}
		_, err := activeGen(tx)
		return err
	}); err != nil {
		d.close()
		return nil, fmt.Errorf("open edge database %s: %w", path, err)
	}
	return d, nil
}

// lockFile opens path and takes an advisory lock on it, exclusive or
// shared, failing at once when another holder conflicts. Closing the file
// releases the lock.
func lockFile(path string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock edge database: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("edge database %s is in use by a running edge (is an edged already running on this data folder? `edged status` asks a running one)", strings.TrimSuffix(path, ".lock"))
		}
		return nil, fmt.Errorf("lock edge database: %w", err)
	}
	return f, nil
}
