package edged

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/edged/uplink"
	pb "github.com/xplore/faceauth/proto"
)

// minHeartbeatGap spaces heartbeats sent on change, so that a bootstrap of
// many batches does not flood the subject.
const minHeartbeatGap = 250 * time.Millisecond

// heartbeats publishes the edge's status every Heartbeat and soon after a
// change. On each tick it also fetches the token key (so a rotated key
// reaches the edge) and checks whether it is still in step with the
// stream, which keeps last_sync fresh while nothing changes.
func (e *Edge) heartbeats(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) {
	tick := time.NewTicker(e.cfg.Heartbeat)
	defer tick.Stop()
	var last time.Time
	poll := true // at once on start
	for {
		e.setConnected(nc.IsConnected())
		if nc.IsConnected() {
			if poll {
				e.poll(ctx, js)
			}
			if err := uplink.PublishStatus(nc, e.Status()); err != nil {
				e.log.Warn("heartbeat not sent", "err", err)
			}
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			poll = true
		case <-e.changed:
			poll = false
			if !sleep(ctx, minHeartbeatGap-time.Since(last)) {
				return
			}
		}
	}
}

// poll fetches the token key and the token revocations, and compares the
// stream's end with the applied position.
func (e *Edge) poll(ctx context.Context, js jetstream.JetStream) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := e.ensureTrust(ctx, js); err != nil {
		e.log.Debug("no feed key yet", "err", err)
	}
	e.refreshFeedKey(ctx, js)
	k, err := pb.FetchTokenKey(ctx, js, &e.trust)
	switch {
	case err == nil:
		err = e.setTokenKey(k.Value, k.Revision)
		if errors.Is(err, pb.ErrRejected) {
			e.noteRejectMsg(pb.TokenKeySubject, k.Seq, err)
		} else if err != nil {
			e.log.Error("token key from NATS not used", "err", err)
			e.setError(err)
		}
	case errors.Is(err, pb.ErrRejected):
		e.noteRejectMsg(pb.TokenKeySubject, seqOf(k), err)
	case faceauth.KindOf(err) == faceauth.KindUnavailable:
		e.log.Debug("no token key on NATS yet", "err", err)
	default:
		e.log.Info("token key not fetched", "err", err)
	}
	revs, err := pb.FetchRevocationsMsg(ctx, js, &e.trust)
	switch {
	case err == nil:
		err = e.setRevocations(revs.Value)
		if errors.Is(err, pb.ErrRejected) {
			e.noteRejectMsg(pb.RevocationsSubject, revs.Seq, err)
		} else if err != nil {
			e.log.Error("token revocations from NATS not used", "err", err)
			e.setError(err)
		}
	case errors.Is(err, pb.ErrRejected):
		e.noteRejectMsg(pb.RevocationsSubject, seqOf(revs), err)
	case faceauth.KindOf(err) == faceauth.KindUnavailable:
	default:
		e.log.Info("token revocations not fetched", "err", err)
	}
	st, err := uplink.ReadStreamState(ctx, js)
	if err != nil {
		return
	}
	e.mu.Lock()
	if !e.resyncing && st.Created.Equal(e.state.Created) && st.LastSeq <= e.state.Seq {
		e.lastSync = time.Now()
	}
	e.mu.Unlock()
}

func (e *Edge) setConnected(v bool) {
	e.mu.Lock()
	e.connected = v
	e.mu.Unlock()
}
