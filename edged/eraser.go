package edged

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/edged/uplink"
	pb "github.com/xplore/faceauth/proto"
)

// receiptRetry is how often owed receipts are retried while NATS is
// unreachable, and how long a failed compaction waits before the next try.
const receiptRetry = 5 * time.Second

// eraser makes erasure real: after deletes, updates that dropped stored
// vectors (or a resync that dropped an old set) it waits CompactDelay so that a burst costs one compaction,
// compacts the file so that no freed page keeps the erased bytes, and only
// then sends the receipts. Forgetting a sent receipt leaves its user id in
// a freed page, so that too is followed by a compaction; the file settles
// after two.
func (e *Edge) eraser(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) {
	owed := map[receipt]time.Time{} // purged, not yet acknowledged: when purged
	if dirty, err := e.db.dirty(); err != nil || dirty {
		notify(e.dirtyCh)
	} else if rs, err := e.db.pending(); err == nil {
		// Not dirty: every owed receipt's data went in an earlier compaction.
		for _, r := range rs {
			owed[r] = time.Now()
		}
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	compactAgain := false // the last compaction failed
	for {
		e.setOwed(len(owed))
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
			if compactAgain {
				compactAgain = false
				notify(e.dirtyCh)
			}
		case <-e.dirtyCh:
			if !sleep(ctx, e.cfg.CompactDelay) {
				return
			}
			// Deletes during the wait are in this compaction.
			select {
			case <-e.dirtyCh:
			default:
			}
			if dirty, err := e.db.dirty(); err != nil || !dirty {
				break
			}
			start := time.Now()
			rs, err := e.db.compact()
			if err != nil {
				e.log.Error("compaction after erasing failed; erased data may remain in the file until it succeeds", "err", err)
				e.setError(err)
				compactAgain = true
				retry.Reset(receiptRetry)
				continue
			}
			e.mu.Lock()
			e.compacts++
			e.mu.Unlock()
			e.log.Info("file compacted: erased data is gone", "took", time.Since(start).Round(time.Millisecond), "receipts", len(rs))
			now := time.Now()
			for _, r := range rs {
				if _, ok := owed[r]; !ok {
					owed[r] = now
				}
			}
		}
		if len(owed) == 0 {
			continue
		}
		var sent []receipt
		for r, purged := range owed {
			if !nc.IsConnected() {
				break
			}
			pctx, cancel := context.WithTimeout(ctx, receiptRetry)
			err := uplink.PublishReceipt(pctx, js, &pb.DeleteReceipt{
				EdgeId:   e.cfg.EdgeID,
				UserId:   r.UserID,
				Revision: r.Revision,
				PurgedAt: timestamppb.New(purged),
			})
			cancel()
			if err != nil {
				e.log.Info("delete receipt not sent yet", "err", err)
				break
			}
			sent = append(sent, r)
		}
		if len(sent) > 0 {
			if err := e.db.receiptsSent(sent); err != nil {
				e.log.Error("forgetting sent receipts", "err", err)
			} else {
				for _, r := range sent {
					delete(owed, r)
				}
				e.log.Info("delete receipts sent", "count", len(sent))
				notify(e.dirtyCh)
			}
		}
		if len(owed) > 0 {
			retry.Reset(receiptRetry)
		}
	}
}

func (e *Edge) setOwed(n int) {
	e.mu.Lock()
	e.owed = n
	e.mu.Unlock()
}
