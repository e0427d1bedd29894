package edged

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xplore/faceauth/internal/auth"
	pb "github.com/xplore/faceauth/proto"
)

// feedTrust is the edge's trust root: the one feed key every message of
// the feed must be signed by. It is provisioned (Config.FeedPublicKey),
// or pinned from central's announcement on first contact, and afterwards
// moves only to a key announced with a signature by the key it holds (a
// rotation). It implements pb.Keys.
type feedTrust struct {
	cur atomic.Pointer[trustedKey]
}

// trustedKey is a trusted feed key and the revision of the announcement it
// came from (0: provisioned).
type trustedKey struct {
	id  string
	pub ed25519.PublicKey
	rev uint64
}

// FeedKey implements pb.Keys.
func (t *feedTrust) FeedKey(keyID string) (ed25519.PublicKey, error) {
	k := t.cur.Load()
	if k == nil {
		return nil, fmt.Errorf("%w (key %q; this edge trusts none yet)", pb.ErrUnknownKey, keyID)
	}
	if keyID != k.id {
		return nil, fmt.Errorf("%w (key %q, trusted %q)", pb.ErrUnknownKey, keyID, k.id)
	}
	return k.pub, nil
}

func (t *feedTrust) keyID() string {
	if k := t.cur.Load(); k != nil {
		return k.id
	}
	return ""
}

func (t *feedTrust) set(pub ed25519.PublicKey, rev uint64) {
	t.cur.Store(&trustedKey{id: auth.KeyIDOf(pub), pub: pub, rev: rev})
}

// initTrust sets the trust root at start-up from what was provisioned and
// what the file holds. A provisioned key that differs from the one
// provisioned before is the operator's decision and replaces whatever the
// file trusted; otherwise the file's key (perhaps rotated since) is used.
func (e *Edge) initTrust() error {
	stored, rev, root, err := e.db.feedKey()
	if err != nil {
		return err
	}
	prov := e.cfg.FeedPublicKey
	switch {
	case prov != nil && !bytes.Equal(prov, root):
		if len(prov) != ed25519.PublicKeySize {
			return fmt.Errorf("edged: the feed public key has %d bytes, not %d", len(prov), ed25519.PublicKeySize)
		}
		if stored != nil && !bytes.Equal(stored.GetPublicKey(), prov) {
			e.log.Warn("the provisioned feed key replaces the one this edge trusted", "was", stored.GetKeyId(), "now", auth.KeyIDOf(prov))
		}
		if err := e.db.setFeedKey(prov, 0, prov); err != nil {
			return err
		}
		e.trust.set(prov, 0)
	case stored != nil:
		if len(stored.GetPublicKey()) != ed25519.PublicKeySize {
			return fmt.Errorf("edged: the stored feed key has %d bytes, not %d", len(stored.GetPublicKey()), ed25519.PublicKeySize)
		}
		e.trust.set(ed25519.PublicKey(stored.GetPublicKey()), rev)
	}
	return nil
}

// ensureTrust pins central's announced feed key when the edge has no trust
// root yet (none provisioned, nothing stored): trust on first use. The
// announcement is only checked to be signed by the key it names; the
// provisioned root (FEED_PUBLIC_KEY) is what makes the first contact safe.
func (e *Edge) ensureTrust(ctx context.Context, js jetstream.JetStream) error {
	if e.trust.keyID() != "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := pb.FetchFeedKey(ctx, js, nil)
	if err != nil {
		if errors.Is(err, pb.ErrRejected) {
			e.noteRejectMsg(pb.FeedKeySubject, seqOf(m), err)
		}
		return err
	}
	pub := ed25519.PublicKey(m.Value.GetPublicKey())
	if err := e.db.setFeedKey(pub, m.Revision, nil); err != nil {
		return err
	}
	e.trust.set(pub, m.Revision)
	e.log.Warn("no feed key was provisioned: trusting the one central announces (pinned on first use); "+
		"provision it with --feed-public-key (`central feed-key` prints it)", "feed_key", m.Value.GetKeyId())
	return nil
}

// refreshFeedKey reads central's feed key announcement and moves to the
// announced key when the key the edge trusts signed it (a rotation). It
// reports whether the trusted key changed.
func (e *Edge) refreshFeedKey(ctx context.Context, js jetstream.JetStream) bool {
	cur := e.trust.cur.Load()
	if cur == nil {
		return false
	}
	m, err := pb.FetchFeedKey(ctx, js, &e.trust)
	switch {
	case errors.Is(err, pb.ErrRejected):
		e.noteRejectMsg(pb.FeedKeySubject, seqOf(m), err)
		return false
	case err != nil:
		e.log.Debug("feed key announcement not read", "err", err)
		return false
	case m.Value.GetKeyId() == cur.id:
		return false
	case m.Revision <= cur.rev:
		e.noteRejectMsg(pb.FeedKeySubject, seqOf(m), fmt.Errorf("%w: a feed key announcement older than the one trusted (replayed)", pb.ErrRejected))
		return false
	}
	pub := ed25519.PublicKey(m.Value.GetPublicKey())
	if err := e.db.setFeedKey(pub, m.Revision, nil); err != nil {
		e.log.Error("the rotated feed key could not be stored", "err", err)
		e.setError(err)
		return false
	}
	e.trust.set(pub, m.Revision)
	e.log.Info("feed key rotated", "was", cur.id, "now", m.Value.GetKeyId())
	notify(e.changed)
	return true
}

// rejects are the feed messages the edge refused to apply, for the
// heartbeat and /metrics.
type rejects struct {
	n      uint64
	lastAt time.Time
	last   string
	// seen holds the config stream sequence last counted per subject: a
	// forged config message stays on its subject and is read every poll,
	// but is one reject.
	seen map[string]uint64
}

// noteRejectMsg counts a config message that failed verification once.
func (e *Edge) noteRejectMsg(subject string, seq uint64, err error) {
	e.mu.Lock()
	if seq != 0 && e.rejected.seen[subject] == seq {
		e.mu.Unlock()
		return
	}
	if e.rejected.seen == nil {
		e.rejected.seen = map[string]uint64{}
	}
	e.rejected.seen[subject] = seq
	e.mu.Unlock()
	e.noteReject(err)
}

// noteReject counts a rejected feed message.
func (e *Edge) noteReject(err error) {
	e.log.Warn("feed message rejected: not applied", "err", err)
	e.mu.Lock()
	e.rejected.n++
	e.rejected.lastAt = time.Now()
	e.rejected.last = err.Error()
	e.mu.Unlock()
	notify(e.changed)
}

// seqOf returns the config stream sequence of m (0 when there is none).
func seqOf[T any](m *pb.ConfigMsg[T]) uint64 {
	if m == nil {
		return 0
	}
	return m.Seq
}

var _ pb.Keys = (*feedTrust)(nil)
