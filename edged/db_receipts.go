package edged

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

func receiptKey(rev uint64, id string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, rev), id...)
}

// receipt is a delete the edge owes a receipt for.
type receipt struct {
	UserID   string
	Revision uint64
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
