package edged

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/bbolt"
)

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
