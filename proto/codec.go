package feed

import (
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth"
	pb "github.com/xplore/faceauth/proto"
)

// Ops, the values of OpHeader.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// changeKey returns the key (subject), revision and op of a change, or an error
// when the change cannot go on the feed.
//
// The key is the change's subject, which names the user and, for a user of
// a site, the site: the stream holds one state per subject, and a user
// moved between sites has a tombstone on the old subject and its state on
// the new one.
func changeKey(c *pb.UserChange) (key string, rev uint64, op string, err error) {
	var id, site string
	switch {
	case c.GetUpsert() != nil:
		id, rev, op, site = c.GetUpsert().GetUserId(), c.GetUpsert().GetRevision(), OpUpsert, c.GetUpsert().GetSite()
	case c.GetDelete() != nil:
		id, rev, op, site = c.GetDelete().GetUserId(), c.GetDelete().GetRevision(), OpDelete, c.GetDelete().GetSite()
	default:
		return "", 0, "", fmt.Errorf("feed: a change with neither upsert nor delete")
	}
	if err := faceauth.ValidateUserID(id); err != nil {
		return "", 0, "", fmt.Errorf("feed: change for user %q: %w", id, err)
	}
	if site != "" {
		if err := ValidateSite(site); err != nil {
			return "", 0, "", fmt.Errorf("feed: change for user %q: %w", id, err)
		}
	}
	if rev == 0 {
		return "", 0, "", fmt.Errorf("feed: change for user %q has no revision", id)
	}
	return UserSiteSubject(id, site), rev, op, nil
}

// ChangeSubject returns the users-stream subject of a change.
func ChangeSubject(c *pb.UserChange) string {
	key, _, _, _ := changeKey(c)
	return key
}

// ChangeRevision returns the revision of a change (0 for an empty one).
func ChangeRevision(c *pb.UserChange) uint64 {
	if u := c.GetUpsert(); u != nil {
		return u.GetRevision()
	}
	return c.GetDelete().GetRevision()
}

// ChangeUserID returns the user id of a change ("" for an empty one).
func ChangeUserID(c *pb.UserChange) string {
	if u := c.GetUpsert(); u != nil {
		return u.GetUserId()
	}
	return c.GetDelete().GetUserId()
}

// changeMsg encodes a change as a users-stream message signed by s. With dedupe, the
// message carries Nats-Msg-Id "<user>-<revision>" so that JetStream drops
// a copy sent again after a lost ack. The id is unique because a revision
// belongs to a single change.
func changeMsg(s *Signer, c *pb.UserChange, dedupe bool) (*nats.Msg, error) {
	id, rev, op, err := changeKey(c)
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("feed: encode change for %q: %w", id, err)
	}
	m := nats.NewMsg(id) // the key is the subject
	m.Data = data
	m.Header.Set(OpHeader, op)
	s.Sign(m, op, ChangeUserID(c), rev)
	if dedupe {
		m.Header.Set(nats.MsgIdHdr, id+"-"+strconv.FormatUint(rev, 10))
	}
	return m, nil
}

// decodeChange decodes a users-stream message and checks that its payload
// belongs to its subject.
func decodeChange(subject string, data []byte) (*pb.UserChange, error) {
	var c pb.UserChange
	if err := proto.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("feed: decode change on %s: %w", subject, err)
	}
	key, _, _, err := changeKey(&c)
	if err != nil {
		return nil, err
	}
	if key != subject {
		return nil, fmt.Errorf("feed: change for user %q arrived on %s", ChangeUserID(&c), subject)
	}
	return &c, nil
}

// headerRevision returns the revision in a message's RevisionHeader.
func headerRevision(h nats.Header) (uint64, error) {
	v := h.Get(RevisionHeader)
	if v == "" {
		return 0, fmt.Errorf("feed: message without %s header", RevisionHeader)
	}
	rev, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("feed: bad %s header %q", RevisionHeader, v)
	}
	return rev, nil
}
