// Package feed is the change feed between central and the edges over NATS
// JetStream: the subjects and streams, central's Publisher (user changes)
// and Monitor (edge heartbeats and delete receipts), and the edge's side
// (Plan, Consume, PublishStatus, PublishReceipt, FetchTokenKey).
//
// The users stream holds only the latest message of each user: an upsert
// with the user's embeddings, or a tombstone. It is therefore both the live
// feed and a complete snapshot: a new edge bootstraps from it alone, and an
// edge that was away resumes from its saved sequence. Central never keeps
// a change log: after any outage its Publisher compares the stream with the
// registry and republishes what the stream lacks.
//
// Edges apply a change only if its revision is higher than the one they
// hold for that user, which makes every re-delivery and republication
// harmless. docs/sync.md describes the protocol for operators.
package feed
