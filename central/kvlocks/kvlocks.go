// Package kvlocks keeps central's verify lockout states in a JetStream
// key-value bucket (pb.LockoutBucket) that central's replicas share and
// that survives restarts.
package kvlocks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xplore/faceauth/internal/api"
	pb "github.com/xplore/faceauth/proto"
)

// Store is an api.LockStore in pb.LockoutBucket. The bucket is created on
// first use, so central starts while NATS is away; until it is reachable
// the limiter cannot read states and verification is refused (503).
type Store struct {
	js  jetstream.JetStream
	cfg jetstream.KeyValueConfig

	mu sync.Mutex
	kv jetstream.KeyValue
}

// New returns the store over nc; ttl is how long a state is kept
// after its last change (api.LimitConfig.StateTTL).
func New(nc *nats.Conn, o pb.StreamOptions, ttl time.Duration) (*Store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("feed: %w", err)
	}
	return &Store{js: js, cfg: jetstream.KeyValueConfig{
		Bucket:      pb.LockoutBucket,
		Description: "Xplore Face Auth: verify lockout states by hashed user and client",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    max(o.Replicas, 1),
	}}, nil
}

// bucket returns the bucket, creating or updating it the first time.
func (k *Store) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kv != nil {
		return k.kv, nil
	}
	kv, err := k.js.CreateOrUpdateKeyValue(ctx, k.cfg)
	if err != nil {
		return nil, fmt.Errorf("feed: the lockout bucket %s: %w", pb.LockoutBucket, err)
	}
	k.kv = kv
	return kv, nil
}

// Load implements api.LockStore.
func (k *Store) Load(ctx context.Context, key string) (api.LockState, uint64, error) {
	kv, err := k.bucket(ctx)
	if err != nil {
		return api.LockState{}, 0, err
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return api.LockState{}, 0, nil
	}
	if err != nil {
		return api.LockState{}, 0, fmt.Errorf("feed: read lockout state: %w", err)
	}
	var st api.LockState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return api.LockState{}, 0, fmt.Errorf("feed: lockout state %s: %w", key, err)
	}
	return st, e.Revision(), nil
}

// Save implements api.LockStore.
func (k *Store) Save(ctx context.Context, key string, st api.LockState, rev uint64) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	kv, err := k.bucket(ctx)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = kv.Create(ctx, key, data)
	} else {
		_, err = kv.Update(ctx, key, data, rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return api.ErrLockConflict
	case err != nil:
		return fmt.Errorf("feed: write lockout state: %w", err)
	}
	return nil
}
