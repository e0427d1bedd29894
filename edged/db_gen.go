package edged

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
)

// syncState is the feed position a generation reflects.
type syncState struct {
	Seq      uint64            // highest applied stream sequence, over every scope
	Scopes   map[string]uint64 // scope -> the stream sequence of its last applied message
	Created  time.Time         // creation time of the stream it came from
	Revision uint64            // highest change revision applied
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
	s := syncState{Seq: getUint(gen, keySeq), Revision: getUint(gen, keyRevision), Scopes: map[string]uint64{}}
	// A generation written before scopes has none: every scope plans a
	// full rebuild (uplink.PlanScopes).
	if b := gen.Bucket(bucketScopes); b != nil {
		b.ForEach(func(k, _ []byte) error {
			s.Scopes[string(k)] = getUint(b, k)
			return nil
		})
	}
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
