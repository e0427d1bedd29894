// Package pb is what central and the edges exchange: the protobuf messages
// (faceauth.proto: stored user records and everything that crosses NATS)
// and the wire contract of the change feed over NATS JetStream beside
// them: the streams and subjects, the message encoding, the permissions
// each side needs, and the signing and verification of feed messages.
// Central's side of the feed is in central/publish (user changes) and
// central/fleet (edge heartbeats and delete receipts), the edge's in
// edged/uplink.
//
// The users stream holds only the latest message of each user: an upsert
// with the user's embeddings, or a tombstone. It is therefore both the live
// feed and a complete snapshot: a new edge bootstraps from it alone, and an
// edge that was away resumes from its saved sequence. Central never keeps
// a change log: after any outage its publisher compares the stream with the
// registry and republishes what the stream lacks.
//
// Edges apply a change only if its revision is higher than the one they
// hold for that user, which makes every re-delivery and republication
// harmless. docs/sync.md describes the protocol for operators.
package pb
