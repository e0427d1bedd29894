// Package publish puts central's user changes on the users stream for the
// edges (Publisher), keeps the config stream (feed key, token key, token
// revocations) current, and reconciles the stream with the registry after
// any outage. docs/sync.md describes the protocol.
package publish

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/internal/natsconn"
	pb "github.com/xplore/faceauth/proto"
)

// Source is the full state the publisher reconciles the users stream with:
// central's user registry.
type Source interface {
	// Snapshot calls fn with every user as an upsert and every deletion
	// record as a delete, in ascending revision. It reads the current
	// state: a change committed before the call is in it (or a newer one
	// of the same user). known, when not nil, tells whether the stream
	// already holds the change of revision rev (revisions are global, so
	// a message carrying rev is that change); Snapshot may then skip
	// reading that change and leave it out of fn. known is called from
	// one goroutine at a time.
	Snapshot(ctx context.Context, known func(rev uint64) bool, fn func(*pb.UserChange) error) error
	// Revision returns the registry's current global revision.
	Revision(ctx context.Context) (uint64, error)
}

// Options adjust a Publisher. The zero value is usable.
type Options struct {
	// Log receives what the publisher does; nil discards it.
	Log *slog.Logger
	// Signer signs every message the publisher writes (required): edges
	// apply only what the feed key they trust has signed.
	Signer *pb.Signer
	// PreviousSigner, when set, is the feed key being rotated away from:
	// it signs the announcement of Signer's key on pb.FeedKeySubject, so
	// edges that trust it move to the new key (docs/sync.md, "Rotating
	// the feed key").
	PreviousSigner *pb.Signer
	// TokenKey, when set, is kept on pb.TokenKeySubject for edges.
	TokenKey *pb.TokenKey
	// Streams configure the streams the publisher creates.
	Streams pb.StreamOptions
	// QueueSize is how many changes wait for NATS before Publish starts
	// dropping them (a dropped change is published by the next
	// reconciliation). 0 means 1024.
	QueueSize int
	// CheckEvery is how often the publisher checks that the stream still
	// holds what it published (a purge, a re-created stream) and that the
	// registry is not ahead of it (a change written by another process).
	// 0 means 30s.
	CheckEvery time.Duration
	// Timeout bounds each NATS request. 0 means 10s.
	Timeout time.Duration
}

// Publisher puts central's user changes on the users stream. Publish only
// queues, so an HTTP request never waits for NATS; a goroutine (Run)
// publishes with JetStream acknowledgements. Whenever the publisher may
// have missed something (start-up, a reconnect, an error, a dropped change,
// a stream changed behind its back) it reconciles: it reads the revision of
// every user in the stream (headers only) and republishes each user whose
// registry state is missing or newer. The stream therefore converges on the
// registry after any outage, with no change log kept by central.
type Publisher struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	o     Options
	log   *slog.Logger
	queue chan *pb.UserChange
	kick  chan struct{}

	revsMu   sync.Mutex
	revs     *pb.TokenRevocations // the newest list given; nil: none
	revsKick chan struct{}

	// mu serialises everything that writes the users stream, so that an
	// older state of a user is never published after a newer one.
	mu      sync.Mutex
	last    map[string]uint64 // user id -> the revision the stream holds
	seqs    map[string]uint64 // user id -> the stream sequence of that revision's message
	covered uint64            // the registry revision the stream is known to include
	created time.Time         // creation time of the users stream last seen
	lastSeq uint64            // highest stream sequence acknowledged
	suspect bool              // the registry was ahead at the previous check
	erase   []replaced        // replaced messages still to erase

	published, dropped, reconciles atomic.Uint64
	erased                         atomic.Uint64 // replaced messages erased
	statusMu                       sync.Mutex
	lastErr                        string
	lastReconcile                  time.Time
}

// New returns a publisher on nc. Start its loop with Run; until
// then Publish queues.
func New(nc *nats.Conn, o Options) (*Publisher, error) {
	if o.Signer == nil {
		return nil, errors.New("feed: a publisher needs the feed signing key")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(o.Timeout))
	if err != nil {
		return nil, fmt.Errorf("feed: %w", err)
	}
	return &Publisher{
		nc:    nc,
		js:    js,
		o:     o,
		log:   log,
		queue: make(chan *pb.UserChange, o.QueueSize),
		kick:  make(chan struct{}, 1),
		last:  make(map[string]uint64),
		seqs:  make(map[string]uint64),

		revsKick: make(chan struct{}, 1),
	}, nil
}

// Publish queues a committed change for the edges. It never blocks: when
// the queue is full the change is dropped and the next reconciliation
// publishes the user's state from the registry instead.
func (p *Publisher) Publish(c *pb.UserChange) {
	if _, _, _, _, err := pb.ChangeInfo(c); err != nil {
		p.log.Error("not publishing a malformed change", "err", err)
		return
	}
	select {
	case p.queue <- c:
	default:
		p.dropped.Add(1)
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// PublishRevocations gives the publisher central's token revocation list
// to keep on pb.RevocationsSubject. It never blocks; a list with a version
// not above the one given before is ignored.
func (p *Publisher) PublishRevocations(list *pb.TokenRevocations) {
	p.revsMu.Lock()
	if p.revs != nil && list.GetVersion() <= p.revs.GetVersion() {
		p.revsMu.Unlock()
		return
	}
	p.revs = list
	p.revsMu.Unlock()
	select {
	case p.revsKick <- struct{}{}:
	default:
	}
}

// Run publishes queued changes, and reconciles the stream with src, until
// ctx ends. It returns nil when ctx ends; NATS being unreachable is not an
// error, it only delays publishing. src is a parameter rather than an
// option because the registry itself takes the publisher when it is made.
func (p *Publisher) Run(ctx context.Context, src Source) error {
	status := p.nc.StatusChanged(nats.CONNECTED)
	defer p.nc.RemoveStatusListener(status)
	tick := time.NewTicker(p.o.CheckEvery)
	defer tick.Stop()

	dirty := true // reconcile first: the stream may lack anything
	var retry <-chan time.Time
	backoff := natsconn.NewBackoff(100*time.Millisecond, 15*time.Second)
	fail := func(what string, err error) {
		dirty = true // the stream may lack what failed
		if ctx.Err() != nil {
			return // stopping: the next start reconciles
		}
		d := backoff.Next()
		retry = time.After(d)
		p.setErr(fmt.Sprintf("%s: %v", what, err))
		p.log.Warn("feed: "+what+" failed; reconciling later", "err", err, "retry_in", d)
	}
	for {
		if dirty && retry == nil && p.nc.IsConnected() {
			if err := p.reconcile(ctx, src); err != nil {
				fail("reconcile", err)
			} else {
				dirty = false
				backoff.Reset()
			}
		}
		select {
		case <-ctx.Done():
			p.flush(dirty)
			return nil
		case <-status:
			// (Re)connected: the server may have lost or missed anything.
			dirty, retry = true, nil
		case <-retry:
			retry = nil
		case <-p.kick:
			dirty = true
		case <-p.revsKick:
			if !dirty && p.nc.IsConnected() {
				rctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
				err := p.publishRevocations(rctx)
				cancel()
				if err != nil {
					fail("publish the token revocations", err)
				}
			}
		case <-tick.C:
			if !dirty && p.nc.IsConnected() {
				if reason, err := p.check(ctx, src); err != nil {
					fail("stream check", err)
				} else if reason != "" {
					p.log.Info("feed: reconciling the users stream", "reason", reason)
					dirty = true
				}
			}
		case c := <-p.queue:
			batch := p.drain(c)
			if dirty || !p.nc.IsConnected() {
				// The reconciliation to come publishes these users' states.
				dirty = true
				continue
			}
			// A stop while the acks are awaited must not abandon the batch
			// half-sent: Run would return with it still on the wire.
			if err := p.publishLive(context.WithoutCancel(ctx), batch); err != nil {
				fail("publish", err)
			}
		}
	}
}

// flushTimeout bounds how long Run, once stopped, spends publishing what
// is still queued.
const flushTimeout = 5 * time.Second

// flush publishes what is queued when Run stops, so that a clean shutdown
// loses nothing; whatever it cannot publish the next start reconciles.
func (p *Publisher) flush(dirty bool) {
	if dirty || !p.nc.IsConnected() || len(p.queue) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	for len(p.queue) > 0 && ctx.Err() == nil {
		if err := p.publishLive(ctx, p.drain(<-p.queue)); err != nil {
			p.log.Warn("feed: publishing the queue at shutdown failed; the next start reconciles", "err", err)
			return
		}
	}
}

// drain returns c and whatever else is queued, up to a batch.
func (p *Publisher) drain(c *pb.UserChange) []*pb.UserChange {
	batch := []*pb.UserChange{c}
	for len(batch) < 256 {
		select {
		case c := <-p.queue:
			batch = append(batch, c)
		default:
			return batch
		}
	}
	return batch
}

// publishLive publishes queued changes, skipping any the stream already
// holds a newer state for.
func (p *Publisher) publishLive(ctx context.Context, batch []*pb.UserChange) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	ap := p.newAsync()
	for _, c := range batch {
		id, rev, _, _ := p.o.Signer.ChangeKey(c)
		if p.last[id] >= rev {
			continue
		}
		m, err := pb.ChangeMsg(p.o.Signer, c, true)
		if err != nil {
			return err
		}
		if err := ap.add(ctx, m, id, rev); err != nil {
			return err
		}
	}
	if err := ap.wait(ctx); err != nil {
		return err
	}
	return p.eraseSuperseded(ctx)
}

// acked records that the stream holds revision rev of user id at stream
// sequence seq. The message of the revision it replaces is queued for
// erasure: the stream keeps every message of a user until central erases
// it (see streamConfigs). p.mu must be held.
func (p *Publisher) acked(id string, rev, seq uint64) {
	old, oldSeq := p.last[id], p.seqs[id]
	switch {
	case rev > old:
		p.last[id], p.seqs[id] = rev, seq
		if oldSeq != 0 && oldSeq != seq {
			p.erase = append(p.erase, replaced{seq: oldSeq, id: id, rev: old})
		}
	case rev < old && seq != oldSeq:
		// Another writer got a newer state there first: this message is
		// the superseded one.
		p.erase = append(p.erase, replaced{seq: seq, id: id, rev: rev})
	}
}

// eraseSuperseded erases, with JetStream's secure delete (the message's
// bytes are overwritten in the stream's block file), every message of the
// users stream that a newer revision of the same user replaced. Without it
// the file store would keep a replaced message's bytes (a deleted user's
// name and embeddings) until it happens to compact the block. A message
// that is gone already is fine. p.mu must be held.
func (p *Publisher) eraseSuperseded(ctx context.Context) error {
	if len(p.erase) == 0 {
		return nil
	}
	s, err := p.js.Stream(ctx, pb.UsersStream)
	if err != nil {
		return fmt.Errorf("erase replaced messages: %w", err)
	}
	slices.SortFunc(p.erase, func(a, b replaced) int { return cmp.Compare(a.seq, b.seq) })
	for len(p.erase) > 0 {
		e := p.erase[0]
		// The sequence is checked to still hold that user's replaced
		// revision: a stream re-created behind the publisher's back
		// numbers other messages with it.
		m, err := s.GetMsg(ctx, e.seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// Erased already (by another replica) or never there.
		case err != nil:
			return fmt.Errorf("erase replaced message %d: %w", e.seq, err)
		case m.Subject != e.id:
		default:
			// (A message without a revision is one the current key did
			// not sign, recorded with revision 0.)
			if rev, _ := pb.HeaderRevision(m.Header); rev != e.rev {
				break
			}
			// A tombstone holds no name and no embedding: removing it
			// from the index is enough, and spares rewriting the block.
			del := s.SecureDeleteMsg
			if m.Header.Get(pb.OpHeader) == pb.OpDelete {
				del = s.DeleteMsg
			}
			// Gone meanwhile answers with the store's "no message found".
			if err := del(ctx, e.seq); err != nil && !strings.Contains(err.Error(), "no message found") {
				return fmt.Errorf("erase replaced message %d: %w", e.seq, err)
			}
			p.erased.Add(1)
		}
		p.erase = p.erase[1:]
	}
	return nil
}

// replaced is a users-stream message that a newer revision of its user
// replaced: sequence seq should hold revision rev on subject id (the
// publisher's key, see pb.Signer.ChangeKey).
type replaced struct {
	seq uint64
	id  string
	rev uint64
}

// asyncPub publishes a run of messages with pipelined acks and records
// each acknowledged user's revision in the publisher.
type asyncPub struct {
	p       *Publisher
	pending []pendingAck
}

type pendingAck struct {
	f   jetstream.PubAckFuture
	id  string
	rev uint64
}

func (p *Publisher) newAsync() *asyncPub { return &asyncPub{p: p} }

// ackWindow is how many publishes may wait for their acks at once.
const ackWindow = 1024

func (a *asyncPub) add(ctx context.Context, m *nats.Msg, id string, rev uint64) error {
	f, err := a.p.js.PublishMsgAsync(m)
	if err != nil {
		return fmt.Errorf("publish %s: %w", m.Subject, err)
	}
	a.pending = append(a.pending, pendingAck{f, id, rev})
	if len(a.pending) >= ackWindow {
		return a.wait(ctx)
	}
	return nil
}

// wait waits for every pending ack. p.mu must be held.
func (a *asyncPub) wait(ctx context.Context) error {
	defer func() { a.pending = a.pending[:0] }()
	for _, pa := range a.pending {
		select {
		case ack := <-pa.f.Ok():
			a.p.acked(pa.id, pa.rev, ack.Sequence)
			a.p.covered = max(a.p.covered, pa.rev)
			a.p.lastSeq = max(a.p.lastSeq, ack.Sequence)
			if !ack.Duplicate {
				a.p.published.Add(1)
			}
		case err := <-pa.f.Err():
			return fmt.Errorf("publish %s: %w", pa.f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// scanUsers returns the revision of every user the users stream holds,
// reading headers only, and the stream's info from before the scan. With
// keyID set, a message that does not name that feed key counts as missing
// (see scanStream).
func scanUsers(ctx context.Context, js jetstream.JetStream, signer *pb.Signer, keyID string) (map[string]uint64, *jetstream.StreamInfo, error) {
	sc, err := scanStream(ctx, js, signer, keyID)
	if err != nil {
		return nil, nil, err
	}
	// The scan is keyed by subject; this is by user, "<id> <site>" for a
	// user's message of a site (a space is in no user id).
	revs := make(map[string]uint64, len(sc.revs))
	for subj, rev := range sc.revs {
		id, site := sc.users[subj], ""
		if _, s, err := pb.ParseUserSubject(subj); err == nil {
			site = s
		}
		if site != "" {
			id += " " + site
		}
		revs[id] = rev
	}
	return revs, sc.info, nil
}

// streamScan is what the users stream holds, read from headers only.
type streamScan struct {
	revs       map[string]uint64 // user id -> the newest revision held
	seqs       map[string]uint64 // user id -> the sequence of that message
	parts      map[string]int    // user id -> the parts of that message's revision (pb.PartsHeader)
	users      map[string]string // subject -> the user id its messages carry (pb.UserHeader)
	superseded []replaced        // messages a newer revision of their user replaced
	scopeless  int               // of them, messages on a subject without a scope (the old form)
	renamed    int               // of them, messages on a subject not of their user's token (pb.UserToken)
	info       *jetstream.StreamInfo
}

// scanStream reads the headers of every message of the users stream. A
// message counts as superseded when its subject is not the one signer's
// subject key gives its user (pb.UserHeader) in its scope: one from before
// user tokens were keyed hashes (the base64 id, no header), or under a
// rotated-away key. With keyID set, so does a message that does not name
// that feed key (one signed before a key rotation, or not by central at
// all: a forgery edges refuse). Reconciliation erases such messages and
// publishes their users again on their current subjects.
func scanStream(ctx context.Context, js jetstream.JetStream, signer *pb.Signer, keyID string) (*streamScan, error) {
	s, err := js.Stream(ctx, pb.UsersStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	sc := &streamScan{revs: make(map[string]uint64, info.State.Msgs), seqs: make(map[string]uint64, info.State.Msgs), parts: make(map[string]int), users: make(map[string]string), info: info}
	if info.State.Msgs == 0 {
		return sc, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("read the users stream: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		// Keyed by subject, as pb.Signer.ChangeKey keys changes.
		user := msg.Headers().Get(pb.UserHeader)
		if pb.IsScopelessUserSubject(msg.Subject()) {
			// A user's message from before subjects ended with a scope:
			// no edge reads it any more. It is erased, and the user is
			// missing from revs, so reconciliation republishes them on
			// their scoped subject (docs/sync.md, "Sites").
			rev, _ := pb.HeaderRevision(msg.Headers())
			sc.superseded = append(sc.superseded, replaced{seq: meta.Sequence.Stream, id: msg.Subject(), rev: rev})
			sc.scopeless++
		} else if _, site, err := pb.ParseUserSubject(msg.Subject()); err != nil || user == "" || msg.Subject() != signer.UserSubject(user, site) {
			// A user's message on a subject that is not their token under
			// the current subject key: written before user tokens were
			// keyed hashes (the base64 id, no user header) or under
			// another key. Erased like a scopeless one; the user is
			// missing from revs and republished on their subject.
			rev, _ := pb.HeaderRevision(msg.Headers())
			sc.superseded = append(sc.superseded, replaced{seq: meta.Sequence.Stream, id: msg.Subject(), rev: rev})
			sc.renamed++
		} else if keyID != "" && msg.Headers().Get(pb.KeyIDHeader) != keyID {
			rev, _ := pb.HeaderRevision(msg.Headers()) // 0 when missing: so the erasure checks it
			sc.superseded = append(sc.superseded, replaced{seq: meta.Sequence.Stream, id: msg.Subject(), rev: rev})
		} else {
			id := msg.Subject()
			sc.users[id] = user
			if rev, err := pb.HeaderRevision(msg.Headers()); err == nil {
				seq := meta.Sequence.Stream
				parts := pb.HeaderParts(msg.Headers())
				switch old, ok := sc.revs[id]; {
				case !ok:
					sc.revs[id], sc.seqs[id], sc.parts[id] = rev, seq, parts
				case rev >= old:
					sc.superseded = append(sc.superseded, replaced{seq: sc.seqs[id], id: id, rev: old})
					sc.revs[id], sc.seqs[id], sc.parts[id] = rev, seq, parts
				default:
					sc.superseded = append(sc.superseded, replaced{seq: seq, id: id, rev: rev})
				}
			}
		}
		if meta.NumPending == 0 || meta.Sequence.Stream >= info.State.LastSeq {
			return sc, nil
		}
	}
}

// reconcile brings the users stream up to the registry: every user whose
// state the stream lacks, or holds an older revision of, is published.
func (p *Publisher) reconcile(ctx context.Context, src Source) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	err := pb.EnsureStreams(tctx, p.js, p.o.Streams)
	if err == nil {
		err = p.publishConfig(tctx)
	}
	cancel()
	if err != nil {
		return err
	}
	rev, err := src.Revision(ctx)
	if err != nil {
		return fmt.Errorf("registry revision: %w", err)
	}
	// A scan of 100k users' headers takes about a second; allow plenty.
	sctx, cancel := context.WithTimeout(ctx, 10*p.o.Timeout)
	sc, err := scanStream(sctx, p.js, p.o.Signer, p.o.Signer.KeyID())
	cancel()
	if err != nil {
		return fmt.Errorf("scan the users stream: %w", err)
	}
	have, info := sc.revs, sc.info
	if sc.scopeless > 0 {
		p.log.Info("feed: moving users to subjects with a scope; edges rebuild their sets", "messages", sc.scopeless)
	}
	if sc.renamed > 0 {
		p.log.Info("feed: moving users to subjects of hashed user tokens; edges rebuild their sets", "messages", sc.renamed)
	}
	// Replaced messages a crash or another replica left are erased first.
	p.erase = append(p.erase, sc.superseded...)
	if err := p.eraseSuperseded(ctx); err != nil {
		return err
	}
	last := make(map[string]uint64, len(have))
	p.last = last // acks of the publishes below land here
	p.seqs = maps.Clone(sc.seqs)
	// A revision is one message per subject it touched (a user of several
	// sites, or a tombstone per site left); each carries how many.
	byRev := make(map[uint64][]string, len(have))
	for id, rev := range have {
		byRev[rev] = append(byRev[rev], id)
	}
	// What the stream holds already need not be read from the registry:
	// on a restart with nothing missed that is every user. A revision held
	// in part (a crash or a dropped change between its messages) is read
	// and published again, the messages held skipped below.
	known := func(rev uint64) bool {
		ids := byRev[rev]
		parts := 0
		for _, id := range ids {
			parts = max(parts, sc.parts[id])
		}
		if len(ids) == 0 || len(ids) < parts {
			return false
		}
		for _, id := range ids {
			last[id] = max(last[id], rev)
		}
		return true
	}
	sent := 0
	ap := p.newAsync()
	err = src.Snapshot(ctx, known, func(c *pb.UserChange) error {
		id, crev, _, err := p.o.Signer.ChangeKey(c)
		if err != nil {
			p.log.Error("feed: skipping a malformed change from the registry", "err", err)
			return nil
		}
		// A user deleted and registered again comes twice (the deletion
		// record, then the live user); the stream holds only the latter.
		if hrev, ok := have[id]; ok && hrev >= crev {
			last[id] = max(last[id], hrev)
			return nil
		}
		m, err := pb.ChangeMsg(p.o.Signer, c, false)
		if err != nil {
			return err
		}
		sent++
		return ap.add(ctx, m, id, crev)
	})
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
		err = ap.wait(wctx)
		cancel()
	}
	if err == nil {
		err = p.eraseSuperseded(ctx)
	}
	if err != nil {
		return fmt.Errorf("republish: %w", err)
	}
	orphans := 0
	for id, hrev := range have {
		if _, ok := last[id]; !ok {
			orphans++
		}
		last[id] = max(last[id], hrev)
	}
	if orphans > 0 {
		p.log.Warn("feed: the users stream holds users the registry does not know; "+
			"`central resync --recreate` rebuilds the stream and every edge from the registry", "users", orphans)
	}
	p.covered = max(p.covered, rev)
	p.created = info.Created
	p.lastSeq = max(p.lastSeq, info.State.LastSeq)
	p.suspect = false
	p.reconciles.Add(1)
	p.statusMu.Lock()
	p.lastErr, p.lastReconcile = "", time.Now()
	p.statusMu.Unlock()
	p.log.Info("feed: users stream reconciled", "republished", sent, "users", len(last), "revision", rev, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// check looks for reasons to reconcile: the stream lost messages or was
// re-created, or the registry stayed ahead of what was published for two
// checks in a row (a change written by another process or lost in a
// crash). It returns the reason, or "".
func (p *Publisher) check(ctx context.Context, src Source) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	s, err := p.js.Stream(ctx, pb.UsersStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return "the users stream is missing", nil
	}
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	switch {
	case !info.Created.Equal(p.created):
		return "the users stream was re-created", nil
	case info.State.LastSeq < p.lastSeq:
		return "the users stream was reset", nil
	case info.State.Msgs < uint64(len(p.last)):
		return fmt.Sprintf("the users stream lost messages (%d held, %d expected)", info.State.Msgs, len(p.last)), nil
	case info.State.Msgs > info.State.NumSubjects:
		// Another replica, or a crash, left replaced messages unerased.
		return fmt.Sprintf("the users stream holds %d replaced messages to erase", info.State.Msgs-info.State.NumSubjects), nil
	}
	if err := p.publishConfig(ctx); err != nil {
		return "", err
	}
	rev, err := src.Revision(ctx)
	if err != nil {
		return "", fmt.Errorf("registry revision: %w", err)
	}
	if rev > p.covered && len(p.queue) == 0 {
		if p.suspect {
			return fmt.Sprintf("the registry is at revision %d, the stream at %d", rev, p.covered), nil
		}
		p.suspect = true
	} else {
		p.suspect = false
	}
	return "", nil
}

// publishConfig keeps what edges need on the config stream: the feed key
// announcement, the token key and the revocations.
func (p *Publisher) publishConfig(ctx context.Context) error {
	if err := p.publishFeedKey(ctx); err != nil {
		return err
	}
	if err := p.publishTokenKey(ctx); err != nil {
		return err
	}
	return p.publishRevocations(ctx)
}

// publishRevocations puts the revocation list on its subject unless the
// subject holds the same version or a newer one (from another central
// replica), signed by this publisher's key: a list that does not verify
// (forged, or signed by a rotated-away key) is replaced.
func (p *Publisher) publishRevocations(ctx context.Context) error {
	p.revsMu.Lock()
	list := p.revs
	p.revsMu.Unlock()
	if list == nil || list.GetVersion() == 0 {
		return nil
	}
	held, err := pb.FetchRevocations(ctx, p.js, pb.TrustKey(p.o.Signer.PublicKey()))
	if err != nil && !errors.Is(err, pb.ErrRejected) {
		return err
	}
	if err == nil && held.GetVersion() >= list.GetVersion() {
		return nil
	}
	data, err := proto.Marshal(list)
	if err != nil {
		return fmt.Errorf("token revocations: %w", err)
	}
	m := nats.NewMsg(pb.RevocationsSubject)
	m.Data = data
	p.o.Signer.Sign(m, pb.KindRevocations, "", list.GetVersion())
	if _, err := p.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("token revocations: %w", err)
	}
	p.log.Info("feed: token revocations published", "version", list.GetVersion(), "subjects", len(list.GetRevocations()))
	return nil
}

// publishTokenKey puts the token key on its subject unless it is there,
// signed by this publisher's key. Its revision is the time of publication
// in microseconds, so that an edge never goes back to an older token key.
func (p *Publisher) publishTokenKey(ctx context.Context) error {
	if p.o.TokenKey == nil {
		return nil
	}
	return p.publishSigned(ctx, pb.TokenKeySubject, pb.KindTokenKey, p.o.TokenKey, p.o.Signer)
}

// publishFeedKey announces the feed key on pb.FeedKeySubject: signed by the
// previous key during a rotation, else by itself (what an edge pins on
// first use when no trust root was provisioned).
func (p *Publisher) publishFeedKey(ctx context.Context) error {
	by := p.o.Signer
	if p.o.PreviousSigner != nil {
		by = p.o.PreviousSigner
	}
	k := &pb.TokenKey{KeyId: p.o.Signer.KeyID(), PublicKey: p.o.Signer.PublicKey()}
	return p.publishSigned(ctx, pb.FeedKeySubject, pb.KindFeedKey, k, by)
}

// publishSigned puts msg on a config subject, signed by s with the current
// time as its revision, unless the subject already holds the same payload
// signed by s.
func (p *Publisher) publishSigned(ctx context.Context, subject, kind string, msg proto.Message, s *pb.Signer) error {
	data, err := proto.Marshal(msg)
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	st, err := p.js.Stream(ctx, pb.ConfigStream)
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	held, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("%s: %w", kind, err)
	}
	if err == nil && bytes.Equal(held.Data, data) {
		if _, _, verr := pb.VerifyMsg(pb.TrustKey(s.PublicKey()), subject, held.Header, kind, "", held.Data); verr == nil {
			return nil
		}
	}
	m := nats.NewMsg(subject)
	m.Data = data
	s.Sign(m, kind, "", uint64(time.Now().UnixMicro()))
	if _, err := p.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	p.log.Info("feed: "+kind+" published", "signed_by", s.KeyID())
	return nil
}

// ResyncOptions adjust Resync.
type ResyncOptions struct {
	// Recreate deletes and re-creates the users stream first. Every edge
	// notices the new stream and rebuilds its cache from it, dropping any
	// user the registry no longer knows. Without it, every user is
	// republished into the existing stream and edges apply what is newer.
	Recreate bool
}

// Resync republishes every user and deletion record of src and returns
// how many. It runs with or without Run, so `central resync` can use it
// alone.
func (p *Publisher) Resync(ctx context.Context, src Source, o ResyncOptions) (int, error) {
	if err := natsconn.WaitConnected(ctx, p.nc); err != nil {
		return 0, fmt.Errorf("feed: NATS is unreachable: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if o.Recreate {
		if err := p.js.DeleteStream(ctx, pb.UsersStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, fmt.Errorf("feed: delete the users stream: %w", err)
		}
		p.log.Info("feed: users stream deleted for re-creation")
	}
	if err := pb.EnsureStreams(ctx, p.js, p.o.Streams); err != nil {
		return 0, err
	}
	if err := p.publishConfig(ctx); err != nil {
		return 0, fmt.Errorf("feed: %w", err)
	}
	rev, err := src.Revision(ctx)
	if err != nil {
		return 0, fmt.Errorf("feed: registry revision: %w", err)
	}
	p.last = make(map[string]uint64)
	p.seqs = make(map[string]uint64)
	n := 0
	ap := p.newAsync()
	err = src.Snapshot(ctx, nil, func(c *pb.UserChange) error {
		id, crev, _, err := p.o.Signer.ChangeKey(c)
		if err != nil {
			p.log.Error("feed: skipping a malformed change from the registry", "err", err)
			return nil
		}
		m, err := pb.ChangeMsg(p.o.Signer, c, false)
		if err != nil {
			return err
		}
		n++
		return ap.add(ctx, m, id, crev)
	})
	if err == nil {
		err = ap.wait(ctx)
	}
	if err != nil {
		return n, fmt.Errorf("feed: resync: %w", err)
	}
	// Every message held before the resync is replaced now: erase them.
	sc, err := scanStream(ctx, p.js, p.o.Signer, p.o.Signer.KeyID())
	if err != nil {
		return n, fmt.Errorf("feed: resync: %w", err)
	}
	p.erase = append(p.erase, sc.superseded...)
	if err := p.eraseSuperseded(ctx); err != nil {
		return n, fmt.Errorf("feed: resync: %w", err)
	}
	for id, rev := range sc.revs {
		if rev >= p.last[id] {
			p.last[id], p.seqs[id] = rev, sc.seqs[id]
		}
	}
	info := sc.info
	p.covered = max(p.covered, rev)
	p.created = info.Created
	p.lastSeq = info.State.LastSeq
	p.log.Info("feed: resync done", "republished", n, "recreated", o.Recreate, "revision", rev)
	return n, nil
}

// Status is a snapshot of the publisher's state for health
// checks and metrics.
type Status struct {
	Connected     bool      `json:"connected"`
	Queued        int       `json:"queued"`
	Published     uint64    `json:"published"`
	Dropped       uint64    `json:"dropped"`
	Reconciles    uint64    `json:"reconciles"`
	Erased        uint64    `json:"erased"`
	LastReconcile time.Time `json:"last_reconcile"`
	LastError     string    `json:"last_error,omitempty"`
}

// Status reports the publisher's state.
func (p *Publisher) Status() Status {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	return Status{
		Connected:     p.nc.IsConnected(),
		Queued:        len(p.queue),
		Published:     p.published.Load(),
		Dropped:       p.dropped.Load(),
		Reconciles:    p.reconciles.Load(),
		Erased:        p.erased.Load(),
		LastReconcile: p.lastReconcile,
		LastError:     p.lastErr,
	}
}

func (p *Publisher) setErr(s string) {
	p.statusMu.Lock()
	p.lastErr = s
	p.statusMu.Unlock()
}
