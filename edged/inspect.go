package edged

import (
	"fmt"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
)

// Summary describes a stopped edge's file: what it would serve on start.
type Summary struct {
	EdgeID          string         `json:"edge_id"`
	Model           string         `json:"model"`
	AppliedSequence uint64         `json:"applied_sequence"`
	AppliedRevision uint64         `json:"applied_revision"`
	StreamCreated   time.Time      `json:"stream_created"`
	Users           int            `json:"users"`
	Refused         map[string]int `json:"refused,omitempty"`
	Tombstones      int            `json:"tombstones"`
	TokenKeyID      string         `json:"token_key_id,omitempty"`
	// TokenRevocations is the version of the cached revocation list.
	TokenRevocations uint64 `json:"token_revocations"`
	ReceiptsOwed     int    `json:"receipts_owed"`
	// NeedsCompaction says that erased data may still be in freed pages;
	// the edge compacts the file when it starts.
	NeedsCompaction bool `json:"needs_compaction"`
	// Revisions lists every user with vectors and the revision held, when
	// asked for.
	Revisions map[string]uint64 `json:"revisions,omitempty"`
}

// Inspect reads the file of a stopped edge in dataDir. With users, the
// summary lists every user's revision. It fails while an edge runs on the
// folder.
func Inspect(dataDir string, users bool) (*Summary, error) {
	d, err := openReadOnly(filepath.Join(dataDir, DBFileName))
	if err != nil {
		return nil, err
	}
	defer d.close()
	s := &Summary{Refused: map[string]int{}}
	if users {
		s.Revisions = map[string]uint64{}
	}
	err = d.view(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		s.EdgeID = string(meta.Get(keyEdgeID))
		s.Model = string(meta.Get(keyModel))
		s.NeedsCompaction = len(meta.Get(keyDirty)) > 0
		g, err := activeGen(tx)
		if err != nil {
			return err
		}
		st := readState(g)
		s.AppliedSequence, s.AppliedRevision, s.StreamCreated = st.Seq, st.Revision, st.Created
		s.Tombstones = g.Bucket(bucketTombs).Stats().KeyN
		s.ReceiptsOwed = tx.Bucket(bucketPending).Stats().KeyN
		return eachUser(g, s.Refused, func(id []byte, h *recordHeader) error {
			s.Users++
			if users {
				s.Revisions[string(id)] = h.Revision
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", d.path, err)
	}
	if k, _, err := d.tokenKey(); err == nil && k != nil {
		s.TokenKeyID = k.KeyId
	}
	if l, err := d.revocations(); err == nil && l != nil {
		s.TokenRevocations = l.GetVersion()
	}
	return s, nil
}
