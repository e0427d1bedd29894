package pb

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamOptions adjust the streams central creates.
type StreamOptions struct {
	// Replicas is the number of copies a clustered NATS keeps of each
	// stream; 0 means 1 (a single server).
	Replicas int
}

// dupWindow is how long JetStream remembers a Nats-Msg-Id. It only has to
// cover a publish retried after a lost ack.
const dupWindow = 2 * time.Minute

// streamConfigs returns the configuration of every stream of the feed.
func streamConfigs(o StreamOptions) []jetstream.StreamConfig {
	r := o.Replicas
	if r <= 0 {
		r = 1
	}
	return []jetstream.StreamConfig{
		{
			Name:        UsersStream,
			Description: "Xplore Face Auth: the latest state of every user (upsert or tombstone)",
			Subjects:    []string{UsersSubjects},
			// Unlimited: a per-subject limit would remove a replaced
			// message without overwriting its bytes, which the file store
			// keeps until it compacts the block. Central erases each
			// replaced message instead (publish.Publisher.eraseSuperseded), so the
			// stream still holds one message per user.
			MaxMsgsPerSubject: -1,
			Storage:           jetstream.FileStorage,
			Retention:         jetstream.LimitsPolicy,
			Discard:           jetstream.DiscardOld,
			Duplicates:        dupWindow,
			Replicas:          r,
			AllowDirect:       true,
		},
		{
			Name:              ConfigStream,
			Description:       "Xplore Face Auth: configuration edges need offline (token public key)",
			Subjects:          []string{ConfigSubjects},
			MaxMsgsPerSubject: 1,
			Storage:           jetstream.FileStorage,
			Duplicates:        dupWindow,
			Replicas:          r,
			AllowDirect:       true,
		},
		{
			Name:              EdgesStream,
			Description:       "Xplore Face Auth: the last heartbeat of every edge",
			Subjects:          []string{EdgeStatusSubjects},
			MaxMsgsPerSubject: 1,
			Storage:           jetstream.FileStorage,
			Replicas:          r,
		},
		{
			Name:              ReceiptsStream,
			Description:       "Xplore Face Auth: delete receipts, one per edge and erased user",
			Subjects:          []string{ReceiptsSubjects},
			MaxMsgsPerSubject: 1,
			Storage:           jetstream.FileStorage,
			Duplicates:        dupWindow,
			Replicas:          r,
		},
	}
}

// EnsureStreams creates the feed's streams, or updates their configuration
// to the current one. Central calls it; edges never do (their permissions
// do not allow it).
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	for _, cfg := range streamConfigs(o) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("feed: create stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// EnsureStream creates or updates the one stream named name.
func EnsureStream(ctx context.Context, js jetstream.JetStream, o StreamOptions, name string) error {
	for _, cfg := range streamConfigs(o) {
		if cfg.Name == name {
			if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("feed: create stream %s: %w", cfg.Name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("feed: no stream %s", name)
}
