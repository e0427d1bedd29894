package edged

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/edged/uplink"
	pb "github.com/xplore/faceauth/proto"
)

// maxBatch is the most changes applied in one bbolt transaction. Large
// batches make a bootstrap fast (one fsync per batch); once the edge has
// caught up, batches are single changes and apply at once.
const maxBatch = 4096

// Run follows the users stream on nc, sends heartbeats and receipts, and
// compacts the file after deletes, until ctx ends. NATS outages only pause
// it: the edge serves from its file meanwhile and resumes from its saved
// position afterwards. Run returns nil when ctx ends.
func (e *Edge) Run(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("edged: %w", err)
	}
	// Live changes go to the gallery, so they wait until it is built.
	select {
	case <-e.loaded:
	case <-ctx.Done():
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { e.syncLoop(ctx, js) })
	wg.Go(func() { e.heartbeats(ctx, nc, js) })
	wg.Go(func() { e.eraser(ctx, nc, js) })
	wg.Wait()
	return nil
}

// syncLoop runs syncOnce again after each failure, backing off while NATS
// or the stream is unavailable.
func (e *Edge) syncLoop(ctx context.Context, js jetstream.JetStream) {
	const minWait, maxWait = 500 * time.Millisecond, 15 * time.Second
	wait := time.Duration(0)
	for {
		if !sleep(ctx, wait) {
			return
		}
		progressed, err := e.syncOnce(ctx, js)
		if ctx.Err() != nil {
			return
		}
		var refused *uplink.ScopeRefusedError
		if errors.As(err, &refused) {
			// Retrying changes nothing until an operator does: say what
			// to fix, in the log and the heartbeat, and retry slowly.
			err = e.scopeRefused(refused)
			e.log.Error("sync stopped", "err", err, "retry_in", maxWait)
			e.setError(err)
			wait = maxWait
			continue
		}
		switch {
		case errors.Is(err, uplink.ErrStreamReset):
			e.log.Info("the users stream was re-created or reset; planning again")
			wait = 0
			continue
		case errors.Is(err, errKeyRotated):
			wait = 0
			continue
		case progressed:
			wait = minWait
		default:
			wait = min(max(2*wait, minWait), maxWait)
		}
		if faceauth.KindOf(err) == faceauth.KindUnavailable {
			e.log.Info("waiting for the users stream", "err", err, "retry_in", wait)
		} else {
			e.log.Warn("sync stopped; retrying", "err", err, "retry_in", wait)
		}
		e.setError(err)
	}
}

// scopeRefused turns the NATS server's refusal of a scope's consumer into
// one sentence naming the site and what to fix (the server's own words are
// in the log already, as a NATS error).
func (e *Edge) scopeRefused(r *uplink.ScopeRefusedError) error {
	if r.Scope == pb.NoSite {
		return faceauth.E(faceauth.KindForbidden, "feed_not_permitted",
			"The NATS server does not let edge %q read the users of no site (%s): its credentials are not an edge's (pb.EdgePermissions); use the key central made for it or deploy/nats/new-edge.sh.", e.cfg.EdgeID, pb.ScopeFilter(""))
	}
	return faceauth.E(faceauth.KindForbidden, "site_not_permitted",
		"The NATS server does not let edge %q read site %q: add the site to %s.sites beside the edge's key at central (in NATS_EDGE_KEYS, or <data>/nats-auth for an edge of NATS_LOCAL_EDGES; deploy/nats/new-edge.sh %s --sites ... writes it) and restart central, or remove the site from EDGE_SITES.",
		e.cfg.EdgeID, r.Scope, e.cfg.EdgeID, e.cfg.EdgeID)
}

// errKeyRotated stops a consumer whose batch held messages signed by a
// key the edge learnt only then (a rotation): they are read again.
var errKeyRotated = errors.New("edged: the feed key was rotated")

// unknownKey reports whether a batch holds a message signed by a key the
// edge does not trust and, reading central's feed key announcement, the
// edge has now moved to that key.
func (e *Edge) unknownKey(ctx context.Context, js jetstream.JetStream, ds []uplink.Delivery) bool {
	for _, d := range ds {
		if errors.Is(d.Err, pb.ErrUnknownKey) {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return e.refreshFeedKey(rctx, js)
		}
	}
	return false
}

// sleep waits d or until ctx ends, reporting whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// resyncQuiet is how long the stream must have had no new message before
// a resync that has caught up is swapped in. While central republishes
// (after re-creating the stream, say) an edge can catch up with the head
// of the republication; swapping then would serve a partial set for the
// seconds the rest takes. A stable stream's messages are older than this,
// so a plain bootstrap does not wait.
const resyncQuiet = time.Second

// resync is a full resync in progress.
type resync struct {
	gen      uint64
	created  time.Time
	started  time.Time
	changes  int
	caughtUp bool // waiting for the stream to stay quiet
}

// batch is a delivery handed from the consumer to the sync goroutine.
type batch struct {
	ds   []uplink.Delivery
	done chan error
}

// syncOnce plans from the saved position (uplink.Plan's gap rule) and
// consumes the stream until an error. A full resync is built into a new
// generation that replaces the served set only once it has caught up with
// the stream and the stream has been quiet for resyncQuiet; until then the
// old set is served. progressed reports that something was applied.
func (e *Edge) syncOnce(ctx context.Context, js jetstream.JetStream) (progressed bool, err error) {
	if e.needReload {
		// A resync was swapped in but the gallery could not be rebuilt.
		if err := e.reload(); err != nil {
			return false, err
		}
		e.needReload = false
	}
	if err := e.ensureTrust(ctx, js); err != nil {
		return false, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	st, err := uplink.ReadStreamState(rctx, js)
	cancel()
	if err != nil {
		return false, err
	}
	pos := e.position()
	scopes := pb.EdgeScopes(e.cfg.Sites)
	plan := uplink.PlanScopes(pos.Scopes, pos.Created, st, scopes)
	if e.loadErr != nil && !plan.Full {
		// A saved position of nothing: every scope from the start.
		plan = uplink.PlanScopes(nil, pos.Created, st, scopes)
		plan.Reason = "the stored set could not be loaded"
	}
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()
	var rs *resync
	defer func() {
		if rs != nil {
			if aerr := e.db.abortResync(rs.gen); aerr != nil {
				e.log.Error("dropping an unfinished resync", "err", aerr)
			}
			e.setResyncing(false)
			notify(e.dirtyCh)
		}
	}()
	from := st.LastSeq + 1 // the lowest sequence a scope reads from
	for _, sc := range plan.Scopes {
		from = min(from, max(sc.From, 1))
	}
	if plan.Full {
		e.log.Info("full resync", "reason", plan.Reason, "from", from, "to", st.LastSeq, "messages", st.Msgs)
		gen, err := e.db.beginResync()
		if err != nil {
			return false, err
		}
		rs = &resync{gen: gen, created: st.Created, started: time.Now()}
		e.setResyncing(true)
		if st.Msgs == 0 || st.LastSeq < from {
			// Nothing to read: an empty stream, once it has existed for
			// a moment (a re-created one is refilled right away).
			rs.caughtUp = true
			quiet.Reset(max(resyncQuiet-time.Since(st.Created), 0))
		}
	} else {
		e.log.Info("following the users stream", "from", from, "to", st.LastSeq, "scopes", len(plan.Scopes))
	}

	// The consumer runs in its own goroutine and hands each batch over,
	// so that this one can also act on the quiet timer.
	cctx, cancelConsume := context.WithCancel(ctx)
	defer cancelConsume()
	batches := make(chan batch)
	consumed := make(chan error, 1)
	go func() {
		consumed <- uplink.Consume(cctx, js, uplink.ConsumeOptions{
			// One consumer per scope: the server sends only this edge's
			// sites' users (and those of no site), and its permissions
			// allow no other consumer, so another site's embeddings never
			// reach it.
			Scopes:        plan.Scopes,
			StreamCreated: st.Created,
			MaxBatch:      maxBatch,
			CheckEvery:    e.cfg.Heartbeat,
			Keys:          &e.trust,
		}, func(ds []uplink.Delivery) error {
			b := batch{ds: ds, done: make(chan error, 1)}
			select {
			case batches <- b:
			case <-cctx.Done():
				return cctx.Err()
			}
			return <-b.done
		})
	}()
	stop := func(err error) (bool, error) {
		cancelConsume()
		<-consumed
		return progressed, err
	}
	// The pending count the server sends with a message can be stale: a
	// batch may end at the head of the stream and still report messages
	// after it (seen with superseded messages while the stream is being
	// written). A resync waiting for "0 pending" would then never finish,
	// so when no batch follows one that reported pending messages within
	// resyncQuiet, the stream is asked where its head is.
	stale := time.NewTimer(time.Hour)
	stale.Stop()
	defer stale.Stop()
	var last uplink.Delivery
	for {
		select {
		case err := <-consumed:
			return progressed, err
		case <-quiet.C:
			if rs != nil && rs.caughtUp {
				if err := e.finishResync(rs); err != nil {
					return stop(err)
				}
				rs = nil
				progressed = true
			}
		case <-stale.C:
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			head, err := uplink.ReadStreamState(rctx, js)
			cancel()
			switch {
			case err != nil || head.LastSeq > last.Seq:
				stale.Reset(resyncQuiet) // more to come, or ask again
				continue
			case head.LastSeq < last.Seq || !head.Created.Equal(st.Created):
				continue // reset or re-created: Consume reports it
			}
			if err := e.caughtUp(&rs, last.Time, quiet); err != nil {
				return stop(err)
			}
			progressed = true
		case b := <-batches:
			if e.unknownKey(ctx, js, b.ds) {
				// The feed key was rotated: consume these again with it.
				b.done <- errKeyRotated
				return stop(errKeyRotated)
			}
			err := e.applyBatch(b.ds, &rs, quiet)
			if err == nil {
				progressed = true
				last = b.ds[len(b.ds)-1]
				if last.Pending > 0 {
					stale.Reset(resyncQuiet)
				} else {
					stale.Stop()
				}
			}
			b.done <- err // Consume returns it, and so do we
		}
	}
}

// applyBatch applies deliveries to the resync being built or to the
// served set. A resync is finished here when it has caught up with a
// quiet stream, else the quiet timer is armed.
func (e *Edge) applyBatch(ds []uplink.Delivery, rsp **resync, quiet *time.Timer) error {
	es := make([]entry, len(ds))
	for i, d := range ds {
		es[i] = entry{Scope: d.Scope, Seq: d.Seq, Change: d.Change, Err: d.Err}
	}
	last := ds[len(ds)-1]
	caughtUp := last.Pending == 0
	rs := *rsp
	if rs == nil {
		out, err := e.db.apply(0, es, e.cfg.Info.Dims)
		if err != nil {
			return err
		}
		e.applyOutcome(out, caughtUp)
		return nil
	}
	out, err := e.db.apply(rs.gen, es, e.cfg.Info.Dims)
	if err != nil {
		return err
	}
	rs.changes += len(es)
	e.noteInvalid(out)
	notify(e.changed)
	quiet.Stop()
	rs.caughtUp = false
	if !caughtUp {
		return nil
	}
	return e.caughtUp(rsp, last.Time, quiet)
}

// caughtUp handles reaching the head of the stream, whose last message was
// stored at lastTime: a resync being built is swapped in once the stream
// has been quiet for resyncQuiet (now, or when quiet fires); the served
// set notes the time.
func (e *Edge) caughtUp(rsp **resync, lastTime time.Time, quiet *time.Timer) error {
	rs := *rsp
	if rs == nil {
		e.mu.Lock()
		e.lastSync = time.Now()
		e.atHead = true
		e.mu.Unlock()
		return nil
	}
	rs.caughtUp = true
	if age := time.Since(lastTime); age < resyncQuiet {
		quiet.Reset(resyncQuiet - age)
		return nil
	}
	if err := e.finishResync(rs); err != nil {
		return err
	}
	*rsp = nil
	return nil
}

// finishResync swaps the resync's generation in and rebuilds the gallery
// from it.
func (e *Edge) finishResync(rs *resync) error {
	if err := e.db.finishResync(rs.gen, rs.created); err != nil {
		return err
	}
	if err := e.reload(); err != nil {
		// The gallery still holds the old set: identify must not answer
		// from it until a reload succeeds.
		e.identifyReady.Store(false)
		e.needReload = true
		return err
	}
	e.loadErr = nil
	st, err := e.db.state()
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.state = st
	e.resyncing = false
	e.resyncN++
	e.lastSync = time.Now()
	e.atHead = true // a resync is swapped in once caught up
	e.lastErr = ""
	e.mu.Unlock()
	e.log.Info("full resync done", "users", e.gallery.Len(), "changes", rs.changes, "sequence", st.Seq,
		"revision", st.Revision, "took", time.Since(rs.started).Round(time.Millisecond))
	notify(e.changed)
	notify(e.dirtyCh)
	return nil
}

// applyOutcome brings the gallery and the counters up to a batch applied
// to the served set.
func (e *Edge) applyOutcome(out *outcome, caughtUp bool) {
	for _, op := range out.Ops {
		if op.Vecs == nil {
			e.gallery.Delete(op.ID)
			continue
		}
		if err := e.gallery.Upsert(op.ID, op.Vecs); err != nil {
			// The file checks vectors as the gallery does, so this is a bug.
			e.log.Error("a stored user does not fit the gallery", "user_id", op.ID, "err", err)
			e.setError(err)
		}
	}
	e.noteInvalid(out)
	e.mu.Lock()
	e.state = out.State
	for m, n := range out.RefusedDelta {
		e.refused[m] += n
		if e.refused[m] <= 0 {
			delete(e.refused, m)
		}
	}
	if caughtUp {
		e.lastSync = time.Now()
	}
	e.atHead = caughtUp
	e.mu.Unlock()
	if out.erased() {
		notify(e.dirtyCh)
	}
	if out.Applied > 0 || len(out.RefusedDelta) > 0 {
		notify(e.changed)
	}
}

// noteInvalid logs and counts changes that could not be used, and counts
// those refused by verification (pb.ErrRejected) as rejects.
func (e *Edge) noteInvalid(out *outcome) {
	var invalid []error
	for _, err := range out.Invalid {
		if errors.Is(err, pb.ErrRejected) {
			e.noteReject(err)
		} else {
			invalid = append(invalid, err)
		}
	}
	if len(invalid) == 0 {
		return
	}
	for i, err := range invalid {
		if i == 5 {
			e.log.Warn("more unusable changes", "count", len(invalid)-i)
			break
		}
		e.log.Warn("skipping an unusable change", "err", err)
	}
	e.mu.Lock()
	e.invalid += uint64(len(invalid))
	e.lastErr = invalid[len(invalid)-1].Error()
	e.mu.Unlock()
}

// position returns the saved feed position of the served set.
func (e *Edge) position() syncState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

func (e *Edge) setResyncing(v bool) {
	e.mu.Lock()
	e.resyncing = v
	e.mu.Unlock()
	notify(e.changed)
}
