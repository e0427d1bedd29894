package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xplore/faceauth/edged/uplink"
	pb "github.com/xplore/faceauth/proto"
)

// With -verify once, the simulated edges check each message's Ed25519
// signature once in this process instead of once per edge. A real edge
// checks every message on its own CPU; here hundreds of edges share two
// cores, and their checks (about 60 of the 69 µs each edge spends per
// message, docs/benchmarks.md) set the pace of the whole run, not the
// cluster. The NATS side
// stays what edged does: the same consumers, filters, pull size and
// stream checks as uplink.Consume, which cannot skip the check (and must
// not be able to), so consumeOnce below repeats its loop with a decoder
// that shares the check. Every edge still decodes every message.

// sharedChecks is the process-wide record of checked messages, by stream
// sequence.
type sharedChecks struct {
	keys    pb.Keys
	seed    maphash.Seed
	entries []checkEntry // index: stream sequence
	checks  atomic.Int64 // signatures checked
}

// checkEntry is one message's check: the first edge to receive the
// sequence checks it, the others wait for that result.
type checkEntry struct {
	once sync.Once
	sig  string // the signature header of the message that passed
	sum  uint64 // and a hash of its subject and payload
	ok   bool
}

func newSharedChecks(keys pb.Keys, lastSeq uint64) *sharedChecks {
	return &sharedChecks{keys: keys, seed: maphash.MakeSeed(), entries: make([]checkEntry, lastSeq+1)}
}

// decode decodes a message and checks its signature unless the same
// sequence with the same signature, subject and payload has passed the
// check already.
func (s *sharedChecks) decode(seq uint64, subject string, h nats.Header, data []byte) (*pb.UserChange, error) {
	if seq >= uint64(len(s.entries)) { // published after the run began
		s.checks.Add(1)
		return pb.DecodeVerified(s.keys, subject, h, data)
	}
	e := &s.entries[seq]
	sig := h.Get(pb.SignatureHeader)
	var mh maphash.Hash
	mh.SetSeed(s.seed)
	mh.WriteString(subject)
	mh.Write(data)
	sum := mh.Sum64()
	checked := false
	var c *pb.UserChange
	var err error
	e.once.Do(func() {
		s.checks.Add(1)
		checked = true
		c, err = pb.DecodeVerified(s.keys, subject, h, data)
		e.sig, e.sum, e.ok = sig, sum, err == nil
	})
	switch {
	case checked:
		return c, err
	case e.ok && e.sig == sig && e.sum == sum:
		return pb.DecodeChange(subject, data)
	}
	s.checks.Add(1) // anything else gets a check of its own
	return pb.DecodeVerified(s.keys, subject, h, data)
}

// consumeOnce is uplink.Consume with s.decode in place of
// pb.DecodeVerified, for o.Scopes: what the cluster serves is what it
// serves edged: a probe consumer created and deleted per scope, then one
// single-filter ordered consumer per scope with the same configuration and
// pull size, and a stream check every o.CheckEvery. Stream resets do not
// happen in a run, so the check's answer is not looked at.
func consumeOnce(ctx context.Context, js jetstream.JetStream, s *sharedChecks, o uplink.ConsumeOptions, fn func([]uplink.Delivery) error) error {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = 10 * time.Second
	}
	ch := make(chan uplink.Delivery, 4*o.MaxBatch)
	done := make(chan struct{})
	defer close(done)
	for _, sc := range o.Scopes { // uplink's probeScopes
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := js.CreateOrUpdateConsumer(pctx, pb.UsersStream, jetstream.ConsumerConfig{
			Name: "probe_" + rand.Text(), FilterSubject: pb.ScopeFilter(sc.Name), DeliverPolicy: jetstream.DeliverNewPolicy,
			AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: 10 * time.Second, Replicas: 1, MemoryStorage: true,
		})
		if err == nil {
			err = js.DeleteConsumer(pctx, pb.UsersStream, c.CachedInfo().Name)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("feed: consume the users stream (scope %s): %w", sc.Name, err)
		}
	}
	pending := make(map[string]uint64, len(o.Scopes))
	for _, sc := range o.Scopes {
		cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, FilterSubjects: []string{pb.ScopeFilter(sc.Name)}}
		if sc.From > 1 {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = sc.From
		}
		cons, err := js.OrderedConsumer(ctx, pb.UsersStream, cfg)
		if err != nil {
			return fmt.Errorf("feed: consume the users stream: %w", err)
		}
		scope := sc.Name
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			d := uplink.Delivery{Scope: scope}
			meta, err := msg.Metadata()
			if err != nil {
				d.Err = err
			} else {
				d.Seq, d.Pending, d.Time = meta.Sequence.Stream, meta.NumPending, meta.Timestamp
				d.Change, d.Err = s.decode(d.Seq, msg.Subject(), msg.Headers(), msg.Data())
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
		if info := cons.CachedInfo(); info != nil {
			pending[scope] = info.NumPending
		}
	}

	check := time.NewTicker(o.CheckEvery)
	defer check.Stop()
	batch := make([]uplink.Delivery, 0, o.MaxBatch)
	add := func(d uplink.Delivery) { // Pending over every scope, as uplink's
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
			uplink.ReadStreamState(ctx, js)
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
		}
	}
}
