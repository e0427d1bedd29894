package edged

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/xplore/faceauth/internal/auth"
	pb "github.com/xplore/faceauth/proto"
	"google.golang.org/protobuf/proto"
)

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
	if err == nil {
		d.sites = slices.Clone(sites)
	}
	return dropped, err
}

// setEdgeID records the edge id.
func (d *db) setEdgeID(id string) error {
	return d.update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyEdgeID, []byte(id)) })
}
