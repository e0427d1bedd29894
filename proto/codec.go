package pb

import (
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth"
)

// Ops, the values of OpHeader.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// ChangeInfo returns the user id, site, revision and op of a change, or an
// error when the change cannot go on the feed.
func ChangeInfo(c *UserChange) (id, site string, rev uint64, op string, err error) {
	switch {
	case c.GetUpsert() != nil:
		id, rev, op, site = c.GetUpsert().GetUserId(), c.GetUpsert().GetRevision(), OpUpsert, c.GetUpsert().GetSite()
	case c.GetDelete() != nil:
		id, rev, op, site = c.GetDelete().GetUserId(), c.GetDelete().GetRevision(), OpDelete, c.GetDelete().GetSite()
	default:
		return "", "", 0, "", fmt.Errorf("feed: a change with neither upsert nor delete")
	}
	if err := faceauth.ValidateUserID(id); err != nil {
		return "", "", 0, "", fmt.Errorf("feed: change for user %q: %w", id, err)
	}
	if site != "" {
		if err := ValidateSite(site); err != nil {
			return "", "", 0, "", fmt.Errorf("feed: change for user %q: %w", id, err)
		}
	}
	if rev == 0 {
		return "", "", 0, "", fmt.Errorf("feed: change for user %q has no revision", id)
	}
	return id, site, rev, op, nil
}

// ChangeKey returns the key (subject) under s's subject key, revision and
// op of a change, or an error when the change cannot go on the feed.
//
// The key is the change's subject, which names the user (by UserToken)
// and, for a user of a site, the site: the stream holds one state per
// subject, and a user moved between sites has a tombstone on the old
// subject and its state on the new one.
func (s *Signer) ChangeKey(c *UserChange) (key string, rev uint64, op string, err error) {
	id, site, rev, op, err := ChangeInfo(c)
	if err != nil {
		return "", 0, "", err
	}
	return UserSubject(s.subjectKey, id, site), rev, op, nil
}

// ChangeSubject returns the users-stream subject of a change under s's
// subject key.
func (s *Signer) ChangeSubject(c *UserChange) string {
	key, _, _, _ := s.ChangeKey(c)
	return key
}

// ChangeRevision returns the revision of a change (0 for an empty one).
func ChangeRevision(c *UserChange) uint64 {
	if u := c.GetUpsert(); u != nil {
		return u.GetRevision()
	}
	return c.GetDelete().GetRevision()
}

// ChangeUserID returns the user id of a change ("" for an empty one).
func ChangeUserID(c *UserChange) string {
	if u := c.GetUpsert(); u != nil {
		return u.GetUserId()
	}
	return c.GetDelete().GetUserId()
}

// ChangeMsg encodes a change as a users-stream message signed by s. With dedupe, the
// message carries Nats-Msg-Id "<subject>-<revision>" so that JetStream drops
// a copy sent again after a lost ack. The id is unique because a revision
// writes one message per subject (one per site of a multi-site change).
func ChangeMsg(s *Signer, c *UserChange, dedupe bool) (*nats.Msg, error) {
	id, rev, op, err := s.ChangeKey(c)
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
	m.Header.Set(UserHeader, ChangeUserID(c))
	if c.GetParts() > 1 {
		m.Header.Set(PartsHeader, strconv.FormatUint(uint64(c.GetParts()), 10))
	}
	s.Sign(m, op, ChangeUserID(c), rev)
	if dedupe {
		m.Header.Set(nats.MsgIdHdr, id+"-"+strconv.FormatUint(rev, 10))
	}
	return m, nil
}

// DecodeChange decodes a users-stream message and checks that its payload
// may belong to its subject: the subject has UserSubject's form and the
// change's scope. The user token is a keyed hash the edge cannot
// recompute; the signature (DecodeVerified), which covers the subject and
// the user id, binds the two, so a message moved to another user's
// subject is refused there.
func DecodeChange(subject string, data []byte) (*UserChange, error) {
	var c UserChange
	if err := proto.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("feed: decode change on %s: %w", subject, err)
	}
	id, site, _, _, err := ChangeInfo(&c)
	if err != nil {
		return nil, err
	}
	_, ssite, err := ParseUserSubject(subject)
	if err != nil || ssite != site {
		return nil, fmt.Errorf("feed: change for user %q of scope %s arrived on %s", id, Scope(site), subject)
	}
	return &c, nil
}

// HeaderRevision returns the revision in a message's RevisionHeader.
func HeaderRevision(h nats.Header) (uint64, error) {
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

// DecodeVerified decodes a users-stream message and checks its
// signature; a message that fails either comes back as an error only.
func DecodeVerified(keys Keys, subject string, h nats.Header, data []byte) (*UserChange, error) {
	c, err := DecodeChange(subject, data)
	if err != nil {
		return nil, err
	}
	if err := verifyChange(keys, subject, h, c, data); err != nil {
		return nil, err
	}
	return c, nil
}

// EncodeStatus encodes an edge's heartbeat as protojson with the proto
// field names, so that `nats sub 'faceauth.edges.>'` shows readable JSON.
func EncodeStatus(st *EdgeStatus) ([]byte, error) {
	data, err := (protojson.MarshalOptions{UseProtoNames: true}).Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("feed: encode status: %w", err)
	}
	return data, nil
}

// DecodeStatus decodes a heartbeat and checks that it came on the edge's
// own subject, so that an edge cannot report for another (permissions
// restrict each edge to its own subject).
func DecodeStatus(subject string, data []byte) (*EdgeStatus, error) {
	id, ok := edgeIDFromStatusSubject(subject)
	if !ok {
		return nil, fmt.Errorf("feed: %q is not a heartbeat subject", subject)
	}
	var st EdgeStatus
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("feed: decode heartbeat on %s: %w", subject, err)
	}
	if st.GetEdgeId() != id {
		return nil, fmt.Errorf("feed: heartbeat of edge %q arrived on %s", st.GetEdgeId(), subject)
	}
	return &st, nil
}
