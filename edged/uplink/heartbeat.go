package feed

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/xplore/faceauth/proto"
)

// HeartbeatInterval is how often an edge publishes its status. Central
// marks an edge offline after MissedHeartbeats intervals without one.
const HeartbeatInterval = 10 * time.Second

// MissedHeartbeats is how many heartbeats an edge may miss before central
// shows it offline.
const MissedHeartbeats = 3

// statusJSON encodes heartbeats. protojson with the proto field names, so
// that `nats sub 'faceauth.edges.>'` shows readable JSON.
var statusJSON = protojson.MarshalOptions{UseProtoNames: true}

// PublishStatus publishes an edge's heartbeat on EdgeStatusSubject with
// core NATS, as protojson. It does not wait for the server: a heartbeat
// lost in an outage is superseded by the next one.
func PublishStatus(nc *nats.Conn, st *pb.EdgeStatus) error {
	if err := ValidateEdgeID(st.GetEdgeId()); err != nil {
		return err
	}
	data, err := statusJSON.Marshal(st)
	if err != nil {
		return fmt.Errorf("feed: encode status: %w", err)
	}
	if err := nc.Publish(EdgeStatusSubject(st.GetEdgeId()), data); err != nil {
		return fmt.Errorf("feed: publish status: %w", err)
	}
	return nil
}

// decodeStatus decodes a heartbeat and checks that it came on the edge's
// own subject, so that an edge cannot report for another (permissions
// restrict each edge to its own subject).
func decodeStatus(subject string, data []byte) (*pb.EdgeStatus, error) {
	id, ok := edgeIDFromStatusSubject(subject)
	if !ok {
		return nil, fmt.Errorf("feed: %q is not a heartbeat subject", subject)
	}
	var st pb.EdgeStatus
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("feed: decode heartbeat on %s: %w", subject, err)
	}
	if st.GetEdgeId() != id {
		return nil, fmt.Errorf("feed: heartbeat of edge %q arrived on %s", st.GetEdgeId(), subject)
	}
	return &st, nil
}

// PublishReceipt tells central that the edge has purged an erased user.
// It waits for JetStream's ack, so a nil error means central will see the
// receipt even if it is down now. Send one for every tombstone applied,
// whether or not the edge held the user, so that edges that joined after
// the deletion also confirm it. Sending the same receipt again is harmless.
func PublishReceipt(ctx context.Context, js jetstream.JetStream, r *pb.DeleteReceipt) error {
	if err := ValidateEdgeID(r.GetEdgeId()); err != nil {
		return err
	}
	if r.GetUserId() == "" || r.GetRevision() == 0 {
		return fmt.Errorf("feed: a receipt needs a user id and a revision")
	}
	data, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("feed: encode receipt: %w", err)
	}
	m := nats.NewMsg(ReceiptSubject(r.GetEdgeId(), r.GetUserId()))
	m.Data = data
	m.Header.Set(nats.MsgIdHdr, m.Subject+"-"+strconv.FormatUint(r.GetRevision(), 10))
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("feed: publish receipt for %q: %w", r.GetUserId(), err)
	}
	return nil
}
