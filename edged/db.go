package edged

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
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
//	    scopes        scope (pb.Scope) -> 8-byte stream sequence of the
//	                  scope's last message applied: each scope is read by
//	                  its own consumer and resumes from there
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
	bucketScopes   = []byte("scopes")

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
// delete, or an update that dropped a stored vector, the file is marked
// dirty and compact rewrites only the live data into a new file that
// replaces the old one.
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
	// sites are the sites the edge serves (setSites): a tombstone of a
	// user moved to one of them is not applied.
	sites []string
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
		return eachUser(g, c.Refused, func(id []byte, h *recordHeader) error {
			c.Users++
			rows = h.vectorsInto(&flat, rows)
			return add(string(id), rows)
		})
	})
	if err != nil {
		return loadCounts{}, fmt.Errorf("load edge database: %w", err)
	}
	return c, nil
}

// eachUser calls fn for every user of generation g that has vectors of the
// edge's model, and counts in refused, by model, the users that carried only
// models the edge does not run.
func eachUser(g *bbolt.Bucket, refused map[string]int, fn func(id []byte, h *recordHeader) error) error {
	return g.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
		h, err := decodeHeader(v)
		if err != nil {
			return fmt.Errorf("user %q: %w", k, err)
		}
		if h.Count == 0 {
			for _, m := range h.Refused {
				refused[m]++
			}
			return nil
		}
		return fn(k, &h)
	})
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

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
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
