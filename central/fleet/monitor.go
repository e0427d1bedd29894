// Package fleet is central's view of its edges: it follows their
// heartbeats and delete receipts on NATS and classifies each edge (in
// sync, behind, offline, rejecting, model mismatch).
package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/internal/natsconn"
	pb "github.com/xplore/faceauth/proto"
)

// Edge states, from worst to best. An edge has exactly one.
const (
	// StateOffline: no heartbeat for MissedHeartbeats intervals.
	StateOffline = "offline"
	// StateRejecting: within RejectWindow before its last heartbeat the
	// edge refused feed messages (unsigned, not signed by the feed key it
	// trusts, badly signed, or replayed older ones). Someone with publish
	// rights on NATS is sending forged changes, or the edge was left
	// behind by a feed key rotation. The edge applied none of them, but
	// it may lack the genuine changes they displaced: see docs/sync.md.
	StateRejecting = "rejecting"
	// StateModelMismatch: the edge runs another verification model than
	// central, or refused embeddings of a model it does not run. Its
	// verifications disagree with central's or fail.
	StateModelMismatch = "model_mismatch"
	// StateBehind: at its last heartbeat the edge had not applied a change
	// that had been on the users stream for a while (see Monitor), held an
	// older token revocation list than the one on the config stream a
	// heartbeat before, or was rebuilding its cache.
	StateBehind = "behind"
	// StateInSync: the edge has applied every change published before its
	// last heartbeat.
	StateInSync = "in_sync"
)

// HeartbeatInterval is how often an edge publishes its status. Central
// marks an edge offline after MissedHeartbeats intervals without one.
const HeartbeatInterval = 10 * time.Second

// MissedHeartbeats is how many heartbeats an edge may miss before central
// shows it offline.
const MissedHeartbeats = 3

// RejectWindow is how long an edge shows StateRejecting after it refused
// a feed message.
const RejectWindow = time.Hour

// EdgeState is what central knows about one edge, from its last heartbeat.
type EdgeState struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Lag is CentralRevision - AppliedRevision, 0 when the edge has
	// applied the latest published change. Revisions also count changes
	// that never reach an edge (a write that lost a race), so Lag is a
	// measure, and State, not Lag > 0, says whether the edge is behind.
	Lag uint64 `json:"lag"`
	// AppliedRevision is the highest revision the edge has applied.
	AppliedRevision uint64 `json:"applied_revision"`
	// CentralRevision is the highest revision published on the users
	// stream.
	CentralRevision uint64 `json:"central_revision"`
	// AppliedSequence is the stream sequence the edge has applied up to;
	// PendingMessages is how many stream messages follow it.
	AppliedSequence uint64 `json:"applied_sequence"`
	PendingMessages uint64 `json:"pending_messages"`
	UserCount       int64  `json:"user_count"`
	Version         string `json:"version"`
	Model           string `json:"model"`
	// LastSeen is when the last heartbeat reached NATS.
	LastSeen time.Time `json:"last_seen"`
	// LastSync is when the edge last applied a change or confirmed it was
	// up to date.
	LastSync      time.Time `json:"last_sync,omitzero"`
	StartedAt     time.Time `json:"started_at,omitzero"`
	Resyncing     bool      `json:"resyncing,omitempty"`
	RefusedModels []string  `json:"refused_models,omitempty"`
	// TokenRevocations is the version of the token revocation list the
	// edge holds; GET /api/revocations has the current one.
	TokenRevocations uint64 `json:"token_revocations"`
	// Sites are the sites the edge serves; empty: only users of no site.
	Sites     []string `json:"sites,omitempty"`
	LastError string   `json:"last_error,omitempty"`
	// FeedKeyID is the feed key the edge verifies messages with.
	FeedKeyID string `json:"feed_key_id,omitempty"`
	// FeedRejected counts the feed messages the edge refused since it
	// started; LastReject says when the last was, and why.
	FeedRejected   uint64    `json:"feed_rejected"`
	LastRejectAt   time.Time `json:"last_reject_at,omitzero"`
	LastReject     string    `json:"last_reject,omitempty"`
	VerifyTotal    uint64    `json:"verify_total"`
	VerifyAccepted uint64    `json:"verify_accepted"`
	VerifyRejected uint64    `json:"verify_rejected"`
	// LockoutKeys and LockoutLocked are the edge's own lockout counts
	// (it counts locally): keys with recent failures, and of them those
	// locked now.
	LockoutKeys   uint32 `json:"lockout_keys"`
	LockoutLocked uint32 `json:"lockout_locked"`
}

// DeletionState says which edges have confirmed purging an erased user.
type DeletionState struct {
	UserID    string    `json:"user_id"`
	Revision  uint64    `json:"revision"`
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	// Sites are the sites the user left (none: it was at every edge);
	// Moved says it was not erased but remains in RemainingSites (none:
	// every edge).
	Sites          []string `json:"sites,omitempty"`
	Moved          bool     `json:"moved,omitempty"`
	RemainingSites []string `json:"remaining_sites,omitempty"`
	// Purged and Pending partition the known edges (every edge central has
	// ever had a heartbeat or a receipt from) that owe a receipt: those
	// serving a site the user left and none where it remains.
	Purged  []string `json:"purged"`
	Pending []string `json:"pending"`
}

// Options adjust a Monitor.
type Options struct {
	// Log receives what the monitor does; nil discards it.
	Log *slog.Logger
	// Model is central's verification model; an edge reporting another is
	// in StateModelMismatch.
	Model string
	// HeartbeatInterval is the edges' heartbeat period; 0 means
	// HeartbeatInterval.
	HeartbeatInterval time.Duration
	// Streams configure the streams the monitor creates if missing.
	Streams pb.StreamOptions
}

// Monitor follows the edges: their heartbeats (the edges stream keeps the
// last one of every edge, so a restarted central still knows every edge
// ever seen) and their delete receipts (read from the receipts stream's
// start). Its state is all in NATS; it writes nothing.
//
// To tell a lagging edge from one whose heartbeat merely predates the
// latest change, it samples the users stream's head (sequence and
// revision of the last message) about every second and judges each edge
// against the head as it was shortly before that edge's last heartbeat:
// a change published a second before a heartbeat must be applied by then,
// one published after it cannot be.
type Monitor struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	o   Options
	log *slog.Logger

	ready     chan struct{}
	readyOnce sync.Once

	mu       sync.Mutex
	edges    map[string]*edgeEntry
	receipts map[string]map[string]uint64 // user id -> edge id -> revision purged
	heads    []head                       // the users stream's head over time, oldest first
	base     uint64                       // highest revision of heads dropped from the list
	revs     []revSample                  // the revocation list's version over time, oldest first
	cfgSeq   uint64                       // the config stream's last sequence at the last sample
}

// revSample is the version of the token revocation list on the config
// stream, as first observed at a time.
type revSample struct {
	version uint64
	at      time.Time
}

// head is the users stream's last message as observed at a time.
type head struct {
	seq, rev uint64
	at       time.Time
}

// maxHeads bounds the head history: with a sample per second, several
// minutes, far more than any heartbeat interval.
const maxHeads = 512

type edgeEntry struct {
	status   *pb.EdgeStatus // nil for an edge known only from receipts
	lastSeen time.Time
}

// New returns a monitor on nc; start it with Run.
func New(nc *nats.Conn, o Options) (*Monitor, error) {
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = HeartbeatInterval
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("feed: %w", err)
	}
	return &Monitor{
		nc:       nc,
		js:       js,
		o:        o,
		log:      log,
		ready:    make(chan struct{}),
		edges:    make(map[string]*edgeEntry),
		receipts: make(map[string]map[string]uint64),
	}, nil
}

// Run follows heartbeats and receipts until ctx ends, then returns nil.
// Until NATS is reachable it keeps trying.
func (m *Monitor) Run(ctx context.Context) error {
	backoff := natsconn.NewBackoff(200*time.Millisecond, 15*time.Second)
	for {
		err := m.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		d := backoff.Next()
		m.log.Warn("feed: cannot follow edges yet", "err", err, "retry_in", d)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// follow consumes both streams until ctx ends or setting up fails.
func (m *Monitor) follow(ctx context.Context) error {
	if err := natsconn.WaitConnected(ctx, m.nc); err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, name := range []string{pb.EdgesStream, pb.ReceiptsStream} {
		if err := pb.EnsureStream(tctx, m.js, m.o.Streams, name); err != nil {
			return err
		}
	}
	errh := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		m.log.Debug("feed: monitor consumer", "err", err)
	})
	ec, err := m.js.OrderedConsumer(tctx, pb.EdgesStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	ecc, err := ec.Consume(m.onStatus, errh)
	if err != nil {
		return err
	}
	defer ecc.Stop()
	rc, err := m.js.OrderedConsumer(tctx, pb.ReceiptsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	rcc, err := rc.Consume(m.onReceipt, errh, jetstream.PullMaxMessages(4096))
	if err != nil {
		return err
	}
	defer rcc.Stop()
	m.readyOnce.Do(func() { close(m.ready) })
	every := min(time.Second, m.o.HeartbeatInterval/2)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		m.sampleHead(ctx)
		m.sampleRevocations(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sampleHead records the users stream's head if it moved.
func (m *Monitor) sampleHead(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := m.js.Stream(ctx, pb.UsersStream)
	if err != nil {
		return // not created yet, or NATS is away: judge by older samples
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return
	}
	m.mu.Lock()
	moved := len(m.heads) == 0 || m.heads[len(m.heads)-1].seq != info.State.LastSeq
	m.mu.Unlock()
	if !moved {
		return
	}
	msg, err := s.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		return // superseded in between: the next sample gets it
	}
	rev, err := pb.HeaderRevision(msg.Header)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.heads = append(m.heads, head{seq: info.State.LastSeq, rev: rev, at: time.Now()})
	if len(m.heads) > maxHeads {
		m.base = max(m.base, m.heads[0].rev)
		m.heads = slices.Delete(m.heads, 0, 1)
	}
}

// sampleRevocations records the revocation list's version when the config
// stream moved.
func (m *Monitor) sampleRevocations(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := m.js.Stream(ctx, pb.ConfigStream)
	if err != nil {
		return
	}
	info, err := s.Info(ctx)
	if err != nil {
		return
	}
	m.mu.Lock()
	moved := info.State.LastSeq != m.cfgSeq
	m.mu.Unlock()
	if !moved {
		return
	}
	list, err := pb.ReadRevocations(ctx, m.js)
	if err != nil {
		return // the next sample tries again
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfgSeq = info.State.LastSeq
	if v := list.GetVersion(); len(m.revs) == 0 || v > m.revs[len(m.revs)-1].version {
		m.revs = append(m.revs, revSample{version: v, at: time.Now()})
		if len(m.revs) > maxHeads {
			m.revs = slices.Delete(m.revs, 0, 1)
		}
	}
}

// requiredRevocations returns the highest revocation list version seen
// on the config stream before t. m.mu must be held.
func (m *Monitor) requiredRevocations(t time.Time) uint64 {
	var v uint64
	for _, r := range m.revs {
		if r.at.After(t) {
			break
		}
		v = r.version
	}
	return v
}

// required returns the highest revision published before t: an edge whose
// heartbeat left at t should have applied it. m.mu must be held.
func (m *Monitor) required(t time.Time) uint64 {
	r := m.base
	for _, h := range m.heads {
		if h.at.After(t) {
			break
		}
		r = max(r, h.rev)
	}
	return r
}

func (m *Monitor) onStatus(msg jetstream.Msg) {
	st, err := pb.DecodeStatus(msg.Subject(), msg.Data())
	if err != nil {
		m.log.Warn("feed: ignoring a heartbeat", "err", err)
		return
	}
	seen := time.Now()
	if meta, err := msg.Metadata(); err == nil && meta.Timestamp.Before(seen) {
		// The server's time of storage: right also for heartbeats stored
		// while central was down.
		seen = meta.Timestamp
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.edges[st.GetEdgeId()]
	if e == nil {
		e = &edgeEntry{}
		m.edges[st.GetEdgeId()] = e
		m.log.Info("feed: edge seen", "edge", st.GetEdgeId(), "version", st.GetVersion())
	}
	if seen.After(e.lastSeen) || e.status == nil {
		e.status, e.lastSeen = st, seen
	}
}

func (m *Monitor) onReceipt(msg jetstream.Msg) {
	edgeID, userID, ok := pb.ParseReceiptSubject(msg.Subject())
	if !ok {
		m.log.Warn("feed: ignoring a receipt on a bad subject", "subject", msg.Subject())
		return
	}
	var r pb.DeleteReceipt
	if err := proto.Unmarshal(msg.Data(), &r); err != nil || r.GetEdgeId() != edgeID || r.GetUserId() != userID {
		m.log.Warn("feed: ignoring a malformed receipt", "subject", msg.Subject(), "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	byEdge := m.receipts[userID]
	if byEdge == nil {
		byEdge = make(map[string]uint64)
		m.receipts[userID] = byEdge
	}
	byEdge[edgeID] = max(byEdge[edgeID], r.GetRevision())
	if m.edges[edgeID] == nil {
		m.edges[edgeID] = &edgeEntry{}
	}
}

// Ready is closed once the monitor follows both streams: from then on it
// records every heartbeat and receipt. Until then heartbeats are lost
// (edges send the next one soon) and what Edges returns may be partial.
func (m *Monitor) Ready() <-chan struct{} { return m.ready }

// Edges returns every known edge's state at time now, sorted by id.
func (m *Monitor) Edges(now time.Time) []EdgeState {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cur head
	for _, h := range m.heads {
		cur.rev = max(cur.rev, h.rev)
		cur.seq = h.seq
	}
	cur.rev = max(cur.rev, m.base)
	// Allow for the sampling period and the way to the edge.
	grace := min(time.Second, m.o.HeartbeatInterval/2) + time.Second
	out := make([]EdgeState, 0, len(m.edges))
	for id, e := range m.edges {
		// An edge fetches the revocation list once per heartbeat interval.
		revs := m.requiredRevocations(e.lastSeen.Add(-grace - m.o.HeartbeatInterval))
		out = append(out, m.state(id, e, now, cur, m.required(e.lastSeen.Add(-grace)), revs))
	}
	slices.SortFunc(out, func(a, b EdgeState) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

func (m *Monitor) state(id string, e *edgeEntry, now time.Time, cur head, required, requiredRevs uint64) EdgeState {
	st := e.status
	es := EdgeState{
		ID:              id,
		CentralRevision: cur.rev,
		LastSeen:        e.lastSeen,
		AppliedRevision: st.GetAppliedRevision(),
		AppliedSequence: st.GetAppliedSequence(),
		UserCount:       st.GetUserCount(),
		Version:         st.GetVersion(),
		Model:           st.GetModel(),
		Resyncing:       st.GetResyncing(),
		RefusedModels:   st.GetRefusedModels(),
		LastError:       st.GetLastError(),

		TokenRevocations: st.GetTokenRevocations(),
		Sites:            st.GetSites(),
		VerifyTotal:      st.GetVerifyTotal(),
		VerifyAccepted:   st.GetVerifyAccepted(),
		VerifyRejected:   st.GetVerifyRejected(),
		FeedKeyID:        st.GetFeedKeyId(),
		FeedRejected:     st.GetFeedRejected(),
		LastReject:       st.GetLastReject(),
		LockoutKeys:      st.GetLockoutKeys(),
		LockoutLocked:    st.GetLockoutLocked(),
	}
	if st.GetLastRejectAt() != nil {
		es.LastRejectAt = st.GetLastRejectAt().AsTime()
	}
	if st.GetLastSync() != nil {
		es.LastSync = st.GetLastSync().AsTime()
	}
	if st.GetStartedAt() != nil {
		es.StartedAt = st.GetStartedAt().AsTime()
	}
	if st.GetCaughtUp() {
		// An edge never receives the changes of the sites it does not
		// serve (an edge of no site: of every site), so its applied
		// revision trails the stream's; it reports that every one of its
		// scopes' consumers has caught up instead.
		es.AppliedRevision = max(es.AppliedRevision, required)
	}
	if cur.rev > es.AppliedRevision {
		es.Lag = cur.rev - es.AppliedRevision
	}
	if cur.seq > es.AppliedSequence {
		es.PendingMessages = cur.seq - es.AppliedSequence
	}
	es.State = classify(es, now, MissedHeartbeats*m.o.HeartbeatInterval, m.o.Model, required, requiredRevs)
	return es
}

// classify gives an edge its state; required is the revision it must have
// applied by its last heartbeat, requiredRevs the revocation list version
// it must have held. Offline wins over everything: what an edge reported
// long ago says little about it now.
func classify(es EdgeState, now time.Time, offlineAfter time.Duration, model string, required, requiredRevs uint64) string {
	switch {
	case es.LastSeen.IsZero() || now.Sub(es.LastSeen) > offlineAfter:
		return StateOffline
	case es.FeedRejected > 0 && !es.LastRejectAt.IsZero() && es.LastSeen.Sub(es.LastRejectAt) < RejectWindow:
		return StateRejecting
	case len(es.RefusedModels) > 0 || (model != "" && es.Model != model):
		return StateModelMismatch
	case es.AppliedRevision < required || es.Resyncing || es.TokenRevocations < requiredRevs:
		return StateBehind
	}
	return StateInSync
}

// Deletions returns, for each deletion, the known edges that have and have
// not confirmed purging the user. dels are the registry's deletion
// records; a receipt counts when its revision is at least the deletion's.
func (m *Monitor) Deletions(dels []*pb.Deletion) []DeletionState {
	m.mu.Lock()
	defer m.mu.Unlock()
	known := make([]string, 0, len(m.edges))
	for id := range m.edges {
		known = append(known, id)
	}
	slices.Sort(known)
	out := make([]DeletionState, 0, len(dels))
	for _, d := range dels {
		ds := DeletionState{UserID: d.GetUserId(), Revision: d.GetRevision(), Purged: []string{}, Pending: []string{},
			Sites: d.GetSites(), Moved: d.GetMoved(), RemainingSites: d.GetRemainingSites()}
		if d.GetDeletedAt() != nil {
			ds.DeletedAt = d.GetDeletedAt().AsTime()
		}
		got := m.receipts[d.GetUserId()]
		for _, id := range known {
			// Only the edges that held the user owe a receipt: those of the
			// sites it left, less those that still serve one where it
			// remains.
			if !d.Owed(m.edges[id].status.GetSites()) {
				continue
			}
			if got[id] >= d.GetRevision() && got[id] > 0 {
				ds.Purged = append(ds.Purged, id)
			} else {
				ds.Pending = append(ds.Pending, id)
			}
		}
		out = append(out, ds)
	}
	return out
}

// Forget drops an edge that was taken out of service: its last heartbeat
// and its receipts are purged from NATS, so it no longer shows as offline
// nor holds deletions pending.
func (m *Monitor) Forget(ctx context.Context, edgeID string) error {
	if err := pb.ValidateEdgeID(edgeID); err != nil {
		return err
	}
	for _, p := range []struct{ stream, subject string }{
		{pb.EdgesStream, pb.EdgeStatusSubject(edgeID)},
		{pb.ReceiptsStream, "faceauth.receipts." + edgeID + ".>"},
	} {
		s, err := m.js.Stream(ctx, p.stream)
		if err != nil {
			return fmt.Errorf("feed: forget edge %s: %w", edgeID, err)
		}
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(p.subject)); err != nil {
			return fmt.Errorf("feed: forget edge %s: %w", edgeID, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.edges, edgeID)
	for _, byEdge := range m.receipts {
		delete(byEdge, edgeID)
	}
	return nil
}
