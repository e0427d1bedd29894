// Package uplink is the edge's side of the change feed: it reads the
// users stream (ReadStreamState, Plan, Consume) and reports back to
// central (PublishStatus, PublishReceipt). The wire contract it shares
// with central is in package pb.
package uplink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xplore/faceauth"
	pb "github.com/xplore/faceauth/proto"
)

// This file is the edge's side of the users stream. How an edge uses it:
//
//  1. It keeps a Position (the stream sequence of the last message it
//     applied and the stream's creation time) next to its cache, written
//     in the same transaction as the changes.
//  2. On start-up it reads the stream's state (ReadStreamState) and asks
//     Plan where to go on from.
//  3. Plan.Full: it builds a fresh cache by consuming from Plan.From until
//     a batch ends with Pending == 0, then swaps the fresh cache in
//     atomically and goes on consuming into it. Otherwise it consumes into
//     its cache from Plan.From.
//  4. For each change it compares revisions per user: apply only when the
//     change's revision is higher than what it holds for that user, and
//     keep a tombstone's revision after deleting, so a re-delivered older
//     upsert cannot bring an erased user back.
//  5. When Consume returns ErrStreamReset, it goes back to step 2.

// StreamState is what an edge needs to know about the users stream to
// decide where to resume.
type StreamState struct {
	// FirstSeq and LastSeq are the first and last sequence in the stream.
	// An empty stream has FirstSeq == LastSeq+1.
	FirstSeq, LastSeq uint64
	// Msgs is the number of messages (users and tombstones) held.
	Msgs uint64
	// Created is when the stream was created; a different time means the
	// stream was deleted and created again and its sequences start anew.
	Created time.Time
}

// ReadStreamState returns the users stream's state.
func ReadStreamState(ctx context.Context, js jetstream.JetStream) (StreamState, error) {
	s, err := js.Stream(ctx, pb.UsersStream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return StreamState{}, faceauth.Wrap(err, faceauth.KindUnavailable, "feed_missing", "The users stream does not exist yet; central creates it when it starts.")
		}
		return StreamState{}, fmt.Errorf("feed: users stream: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return StreamState{}, fmt.Errorf("feed: users stream: %w", err)
	}
	return StreamState{
		FirstSeq: info.State.FirstSeq,
		LastSeq:  info.State.LastSeq,
		Msgs:     info.State.Msgs,
		Created:  info.Created,
	}, nil
}

// Position is how far an edge has applied the users stream.
type Position struct {
	// Seq is the stream sequence of the last message applied; 0 for none.
	Seq uint64
	// StreamCreated is the Created time of the stream Seq belongs to.
	StreamCreated time.Time
}

// Resume says where an edge goes on from.
type Resume struct {
	// Full means the edge's cache cannot be trusted to match the stream:
	// build a fresh one from From and swap it in once caught up.
	Full bool
	// From is the first sequence to consume.
	From uint64
	// Reason says why, for the logs.
	Reason string
}

// Plan applies the gap rule. An edge that saved position pos resumes from
// pos.Seq+1 unless messages it never saw may be gone from the stream:
//
//   - the stream is not the one pos belongs to (created at another time),
//   - the stream ends before pos.Seq (it was reset), or
//   - the stream starts after pos.Seq+1 (messages the edge never read were
//     removed: a purge, or every one of them superseded while the edge was
//     away),
//
// in which case it rebuilds its cache from the stream's first message.
// Central's erasure of replaced messages removes only messages superseded
// by a newer one of the same user, which the edge reads later, so resuming
// past a removed message is safe as long as the stream still starts at or
// before pos.Seq+1; the rule is cautious in the last case, where it cannot
// tell a purge from compaction.
func Plan(pos Position, st StreamState) Resume {
	first := max(st.FirstSeq, 1)
	switch {
	case pos.Seq == 0:
		return Resume{Full: true, From: first, Reason: "no saved position"}
	case !pos.StreamCreated.IsZero() && !pos.StreamCreated.Equal(st.Created):
		return Resume{Full: true, From: first, Reason: "the users stream was re-created"}
	case st.LastSeq < pos.Seq:
		return Resume{Full: true, From: first, Reason: fmt.Sprintf("the users stream ends at %d, before the saved position %d (reset)", st.LastSeq, pos.Seq)}
	case st.FirstSeq > pos.Seq+1:
		return Resume{Full: true, From: first, Reason: fmt.Sprintf("the users stream starts at %d, after the saved position %d (messages removed)", st.FirstSeq, pos.Seq)}
	}
	return Resume{From: pos.Seq + 1, Reason: "resuming"}
}

// Delivery is one users-stream message.
type Delivery struct {
	// Seq is the message's stream sequence: save it as Position.Seq once
	// the change is applied.
	Seq uint64
	// Pending is the number of messages after this one in the stream when
	// it was delivered; 0 means the edge has caught up.
	Pending uint64
	// Time is when the message was stored.
	Time time.Time
	// Change is the decoded change; nil when Err is set.
	Change *pb.UserChange
	// Err is set for a message that could not be decoded. Skip it (and
	// log it) but still advance past its Seq.
	Err error
}

// ErrStreamReset is returned by Consume when the users stream it reads was
// deleted and re-created or reset under it. Plan again from the new state.
var ErrStreamReset = errors.New("feed: the users stream was re-created or reset")

// ConsumeOptions adjust Consume.
type ConsumeOptions struct {
	// From is the first stream sequence to deliver (Resume.From); 0 or 1
	// start at the beginning.
	From uint64
	// StreamCreated is the Created time of the stream From refers to.
	// When set, Consume stops with ErrStreamReset if the stream is
	// replaced by another.
	StreamCreated time.Time
	// MaxBatch is the most deliveries fn receives at once. 0 means 1000.
	MaxBatch int
	// CheckEvery is how often the stream is checked for a reset. 0 means
	// 10s.
	CheckEvery time.Duration
	// Keys are the feed keys the edge trusts (required). A message that
	// is unsigned or not signed by one of them is delivered with an Err
	// wrapping pb.ErrRejected, never with a Change.
	Keys pb.Keys
	// FilterSubjects restrict the delivery to these subjects (an edge's
	// pb.EdgeFilterSubjects); nil delivers every message. The server filters,
	// so what is filtered out never reaches the client.
	FilterSubjects []string
}

// Consume delivers the users stream from o.From in stream order to fn, in
// batches of whatever has arrived (large batches while catching up, single
// messages once live), until ctx ends (it returns ctx.Err()), fn fails
// (that error), or the stream is reset (ErrStreamReset). It uses an
// ordered consumer (ephemeral, no acks, recreated by the client after a
// reconnect or a missed message), which also reads at full speed. A
// NATS outage only pauses it.
func Consume(ctx context.Context, js jetstream.JetStream, o ConsumeOptions, fn func([]Delivery) error) error {
	if o.Keys == nil {
		return errors.New("feed: consuming the users stream needs the trusted feed keys")
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = 10 * time.Second
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, FilterSubjects: o.FilterSubjects}
	if o.From > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = o.From
	}
	cons, err := js.OrderedConsumer(ctx, pb.UsersStream, cfg)
	if err != nil {
		return fmt.Errorf("feed: consume the users stream: %w", err)
	}
	ch := make(chan Delivery, 4*o.MaxBatch)
	done := make(chan struct{})
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		d := Delivery{}
		meta, err := msg.Metadata()
		if err != nil {
			d.Err = err
		} else {
			d.Seq, d.Pending, d.Time = meta.Sequence.Stream, meta.NumPending, meta.Timestamp
			d.Change, d.Err = pb.DecodeVerified(o.Keys, msg.Subject(), msg.Headers(), msg.Data())
		}
		select {
		case ch <- d:
		case <-done:
		}
	}, jetstream.PullMaxMessages(2*o.MaxBatch))
	if err != nil {
		return fmt.Errorf("feed: consume the users stream: %w", err)
	}
	defer cc.Stop()
	defer close(done) // first: unblocks a handler waiting on ch

	check := time.NewTicker(o.CheckEvery)
	defer check.Stop()
	applied := max(o.From, 1) - 1
	batch := make([]Delivery, 0, o.MaxBatch)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-check.C:
			st, err := ReadStreamState(ctx, js)
			if err != nil {
				if faceauth.KindOf(err) == faceauth.KindUnavailable {
					return ErrStreamReset
				}
				continue // unreachable now: the consumer waits too
			}
			if (!o.StreamCreated.IsZero() && !st.Created.Equal(o.StreamCreated)) || st.LastSeq < applied {
				return ErrStreamReset
			}
		case d := <-ch:
			batch = append(batch[:0], d)
		fill:
			for len(batch) < o.MaxBatch {
				select {
				case d := <-ch:
					batch = append(batch, d)
				default:
					break fill
				}
			}
			if err := fn(batch); err != nil {
				return err
			}
			applied = batch[len(batch)-1].Seq
		}
	}
}
