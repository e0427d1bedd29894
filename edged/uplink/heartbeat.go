package uplink

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	pb "github.com/xplore/faceauth/proto"
)

// PublishStatus publishes an edge's heartbeat on pb.EdgeStatusSubject with
// core NATS, as protojson. It does not wait for the server: a heartbeat
// lost in an outage is superseded by the next one.
func PublishStatus(nc *nats.Conn, st *pb.EdgeStatus) error {
	if err := pb.ValidateEdgeID(st.GetEdgeId()); err != nil {
		return err
	}
	data, err := pb.EncodeStatus(st)
	if err != nil {
		return err
	}
	if err := nc.Publish(pb.EdgeStatusSubject(st.GetEdgeId()), data); err != nil {
		return fmt.Errorf("feed: publish status: %w", err)
	}
	return nil
}

// PublishReceipt tells central that the edge has purged an erased user.
// It waits for JetStream's ack, so a nil error means central will see the
// receipt even if it is down now. Send one for every tombstone applied,
// whether or not the edge held the user, so that edges that joined after
// the deletion also confirm it. Sending the same receipt again is harmless.
func PublishReceipt(ctx context.Context, js jetstream.JetStream, r *pb.DeleteReceipt) error {
	if err := pb.ValidateEdgeID(r.GetEdgeId()); err != nil {
		return err
	}
	if r.GetUserId() == "" || r.GetRevision() == 0 {
		return fmt.Errorf("feed: a receipt needs a user id and a revision")
	}
	data, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("feed: encode receipt: %w", err)
	}
	m := nats.NewMsg(pb.ReceiptSubject(r.GetEdgeId(), r.GetUserId()))
	m.Data = data
	m.Header.Set(nats.MsgIdHdr, m.Subject+"-"+strconv.FormatUint(r.GetRevision(), 10))
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("feed: publish receipt for %q: %w", r.GetUserId(), err)
	}
	return nil
}
