package faceauth

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Update is the one compare-and-swap update of an object in s. It reads
// key, calls change with its bytes (exists false and old nil when there is
// no object), and writes what change returns only if key is still as read:
// replaced only if its version is unchanged, created only if still absent.
// When another writer got there first it pauses a random, growing while
// and starts again with a fresh read, at most attempts times in all. So no
// concurrent update is ever lost, and change must be safe to call again.
//
// A nil result from change means "no change": nothing is written and
// Update returns the version read ("" when absent). An error from change
// aborts without writing and is returned as it is. Store errors come back
// wrapped with the key. When every attempt lost its race the error matches
// ErrPrecondition; callers turn it into their own contention message.
func Update(ctx context.Context, s Store, key string, attempts int, change func(old []byte, exists bool) ([]byte, error)) (version string, err error) {
	for attempt := 0; ; attempt++ {
		old, ver, err := s.Get(ctx, key)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", fmt.Errorf("read %s: %w", key, err)
		}
		next, err := change(old, exists)
		if err != nil {
			return "", err
		}
		if next == nil {
			return ver, nil
		}
		cond := Cond{IfNoneMatch: !exists, IfMatch: ver}
		v, err := s.Put(ctx, key, next, cond)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, ErrPrecondition) {
			return "", fmt.Errorf("write %s: %w", key, err)
		}
		if attempt+1 >= attempts {
			return "", fmt.Errorf("%s changed concurrently %d times: %w", key, attempts, err)
		}
		if err := Backoff(ctx, attempt); err != nil {
			return "", err
		}
	}
}

// Backoff sleeps a random, growing while before retrying a lost race, so
// contending writers spread out instead of colliding again. It returns
// early with ctx's error when ctx ends.
func Backoff(ctx context.Context, attempt int) error {
	ceiling := time.Millisecond << min(attempt, 6) // 1 ms .. 64 ms
	t := time.NewTimer(rand.N(ceiling) + time.Millisecond/4)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
