// Package uplink is the edge's side of the change feed: it reads the
// users stream (ReadStreamState, Plan, Consume) and reports back to
// central (PublishStatus, PublishReceipt). The wire contract it shares
// with central is in package pb.
package uplink

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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

// Scope is one scope of the users stream an edge reads (pb.EdgeScopes)
// and where to read it from.
type Scope struct {
	// Name is the scope token: a site, or pb.NoSite.
	Name string
	// From is the first stream sequence to deliver; 0 or 1 start at the
	// beginning.
	From uint64
}

// ScopedResume says where an edge reading several scopes goes on from.
type ScopedResume struct {
	// Full means the edge's cache cannot be trusted to match the stream:
	// build a fresh one, reading every scope from the stream's first
	// message, and swap it in once caught up.
	Full bool
	// Scopes are the scopes to read and where from.
	Scopes []Scope
	// Reason says why, for the logs.
	Reason string
}

// PlanScopes applies Plan's gap rule to each scope, from its own saved
// position (pos: scope -> sequence of the last message of that scope
// applied) in the stream created at created. Any scope that needs a full
// rebuild makes it full for all, since the cache is one set. A scope with
// no position while others have one (a scope that has been empty so far)
// is read from the stream's start without a rebuild: the edge holds nothing
// that only its messages could have changed.
func PlanScopes(pos map[string]uint64, created time.Time, st StreamState, scopes []string) ScopedResume {
	first := max(st.FirstSeq, 1)
	saved := false
	for _, s := range scopes {
		saved = saved || pos[s] != 0
	}
	out := ScopedResume{Reason: "resuming"}
	for _, s := range scopes {
		r := Plan(Position{Seq: pos[s], StreamCreated: created}, st)
		if r.Full && pos[s] == 0 && saved {
			r = Resume{From: first}
		}
		if r.Full {
			out = ScopedResume{Full: true, Reason: fmt.Sprintf("scope %s: %s", s, r.Reason)}
			for _, s := range scopes {
				out.Scopes = append(out.Scopes, Scope{Name: s, From: first})
			}
			return out
		}
		out.Scopes = append(out.Scopes, Scope{Name: s, From: r.From})
	}
	return out
}

// Delivery is one users-stream message.
type Delivery struct {
	// Scope is the scope whose consumer delivered it ("" when reading the
	// whole stream unfiltered). Deliveries of one scope come in stream
	// order; those of different scopes interleave.
	Scope string
	// Seq is the message's stream sequence: save it as the position of
	// Scope once the change is applied.
	Seq uint64
	// Pending is the number of messages still to deliver, over every
	// scope, when it was delivered (a scope not heard from yet counts as
	// pending, one that was empty at the start as caught up); 0 means the
	// edge has caught up with every scope.
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

// ScopeRefusedError is returned by Consume when the NATS server refused
// to create the consumer of a scope: the edge's credentials do not name
// that site (pb.EdgePermissions).
type ScopeRefusedError struct {
	// Scope is the scope token refused.
	Scope string
	// Err is the server's permissions violation.
	Err error
}

func (e *ScopeRefusedError) Error() string {
	return fmt.Sprintf("feed: the NATS server refused this edge a consumer of scope %s: %v", e.Scope, e.Err)
}

func (e *ScopeRefusedError) Unwrap() error { return e.Err }

// ConsumeOptions adjust Consume.
type ConsumeOptions struct {
	// Scopes are the scopes to read, each from its own sequence, with one
	// single-filter ordered consumer per scope (the form an edge's NATS
	// permissions allow). Nil reads the whole stream, unfiltered, from
	// From: for central's tools and tests, which an edge may not do.
	Scopes []Scope
	// From is the first stream sequence to deliver without Scopes; 0 or 1
	// start at the beginning.
	From uint64
	// StreamCreated is the Created time of the stream the sequences refer
	// to. When set, Consume stops with ErrStreamReset if the stream is
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
}

// Consume delivers the users stream to fn, in batches of whatever has
// arrived (large batches while catching up, single messages once live),
// until ctx ends (it returns ctx.Err()), fn fails (that error), or the
// stream is reset (ErrStreamReset). Each scope is read by its own ordered
// consumer (ephemeral, no acks, recreated by the client after a reconnect
// or a missed message), filtered on pb.ScopeFilter by the server, so what
// is filtered out never reaches the client; their deliveries are merged,
// each in its scope's stream order. A NATS outage only pauses it.
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
	scopes := o.Scopes
	if scopes == nil {
		scopes = []Scope{{From: o.From}}
	}
	ch := make(chan Delivery, 4*o.MaxBatch)
	done := make(chan struct{})
	defer close(done) // first (deferred last): unblocks handlers waiting on ch
	if o.Scopes != nil {
		if err := probeScopes(ctx, js, scopes); err != nil {
			return err
		}
	}
	// pending is each scope's count of messages still to deliver, as its
	// consumer last said; a scope not heard from counts as one.
	pending := make(map[string]uint64, len(scopes))
	applied := uint64(0)
	for _, sc := range scopes {
		cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
		if o.Scopes != nil {
			cfg.FilterSubjects = []string{pb.ScopeFilter(sc.Name)}
		}
		if sc.From > 1 {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = sc.From
		}
		applied = max(applied, max(sc.From, 1)-1)
		cons, err := js.OrderedConsumer(ctx, pb.UsersStream, cfg)
		if err != nil {
			return fmt.Errorf("feed: consume the users stream: %w", err)
		}
		scope := sc.Name
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			d := Delivery{Scope: scope}
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
			return fmt.Errorf("feed: consume the users stream (scope %s): %w", scope, err)
		}
		defer cc.Stop()
		pending[scope] = 1
		// The server counted the scope's messages when it created the
		// consumer, before delivering any: an empty scope is caught up.
		if info := cons.CachedInfo(); info != nil {
			pending[scope] = info.NumPending
		}
	}

	check := time.NewTicker(o.CheckEvery)
	defer check.Stop()
	batch := make([]Delivery, 0, o.MaxBatch)
	// add records d in its scope's pending count and sets its Pending to
	// what is pending over every scope.
	add := func(d Delivery) {
		if d.Err == nil || d.Seq != 0 {
			pending[d.Scope] = d.Pending
		}
		d.Pending = 0
		for _, n := range pending {
			d.Pending += n
		}
		batch = append(batch, d)
	}
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
			batch = batch[:0]
			add(d)
		fill:
			for len(batch) < o.MaxBatch {
				select {
				case d := <-ch:
					add(d)
				default:
					break fill
				}
			}
			if err := fn(batch); err != nil {
				return err
			}
			for _, d := range batch {
				applied = max(applied, d.Seq)
			}
		}
	}
}

// probeScopes creates and deletes a consumer of each scope, so that a scope
// the edge's credentials do not allow comes back as a ScopeRefusedError.
// The ordered consumers cannot tell: their creation retries for ever, and a
// refused request gets no answer, only an asynchronous error on the
// connection.
func probeScopes(ctx context.Context, js jetstream.JetStream, scopes []Scope) error {
	for _, sc := range scopes {
		if err := probeScope(ctx, js, sc.Name); err != nil {
			return err
		}
	}
	return nil
}

// probeScope is probeScopes for one scope. The connection's errors are
// watched meanwhile, so a refusal is known at once rather than after the
// request's timeout.
func probeScope(ctx context.Context, js jetstream.JetStream, scope string) error {
	before := js.Conn().LastError()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := js.CreateOrUpdateConsumer(pctx, pb.UsersStream, jetstream.ConsumerConfig{
			Name:              "probe_" + rand.Text(),
			FilterSubject:     pb.ScopeFilter(scope),
			DeliverPolicy:     jetstream.DeliverNewPolicy,
			AckPolicy:         jetstream.AckNonePolicy,
			InactiveThreshold: 10 * time.Second, // removed by the server if the delete below is lost
			Replicas:          1,
			MemoryStorage:     true,
		})
		if err == nil {
			err = js.DeleteConsumer(pctx, pb.UsersStream, c.CachedInfo().Name)
		}
		done <- err
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			switch {
			case err == nil:
				return nil
			case refused(js, scope, before):
				return &ScopeRefusedError{Scope: scope, Err: js.Conn().LastError()}
			case errors.Is(err, jetstream.ErrStreamNotFound):
				return faceauth.Wrap(err, faceauth.KindUnavailable, "feed_missing", "The users stream does not exist yet; central creates it when it starts.")
			default:
				return fmt.Errorf("feed: consume the users stream (scope %s): %w", scope, err)
			}
		case <-tick.C:
			if refused(js, scope, before) {
				cancel()
				<-done
				return &ScopeRefusedError{Scope: scope, Err: js.Conn().LastError()}
			}
		}
	}
}

// refused reports whether the connection's last error, when it is not
// before, is the server refusing, for lack of permission, a consumer create
// request of scope.
func refused(js jetstream.JetStream, scope string, before error) bool {
	err := js.Conn().LastError()
	return err != nil && err != before && errors.Is(err, nats.ErrPermissionViolation) &&
		strings.Contains(err.Error(), "$JS.API.CONSUMER.CREATE.") && strings.Contains(err.Error(), pb.ScopeFilter(scope))
}
