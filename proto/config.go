package pb

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/auth"
)

// This file reads the config stream: verified, as edges and central's
// publisher read it, and unverified for central's monitor.

// errNoConfig is the Unavailable error of a config subject central has
// not written yet.
func errNoConfig(err error, kind string) error {
	return faceauth.Wrap(err, faceauth.KindUnavailable, kind+"_missing", "Central has not published its %s yet.", kind)
}

// lastConfig returns the message on a config subject.
func lastConfig(ctx context.Context, js jetstream.JetStream, subject, kind string) (*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, ConfigStream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, errNoConfig(err, kind)
		}
		return nil, fmt.Errorf("feed: %s: %w", kind, err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, errNoConfig(err, kind)
		}
		return nil, fmt.Errorf("feed: %s: %w", kind, err)
	}
	return m, nil
}

// ConfigMsg is a verified message of the config stream.
type ConfigMsg[T any] struct {
	// Value is the decoded payload.
	Value T
	// Revision is the revision the signature covers: the time of
	// publication in microseconds for keys, the version for revocations.
	Revision uint64
	// Seq is the config stream sequence, to tell one message from another.
	Seq uint64
	// KeyID names the feed key that signed it.
	KeyID string
}

// fetchConfig reads, verifies and decodes the message on a config subject.
// A message that fails verification comes back as an error wrapping
// ErrRejected, together with its Seq, so that a caller can count it once.
func fetchConfig[T proto.Message](ctx context.Context, js jetstream.JetStream, keys Keys, subject, kind string, v T) (*ConfigMsg[T], error) {
	m, err := lastConfig(ctx, js, subject, kind)
	if err != nil {
		return nil, err
	}
	out := &ConfigMsg[T]{Value: v, Seq: m.Sequence}
	out.Revision, out.KeyID, err = VerifyMsg(keys, subject, m.Header, kind, "", m.Data)
	if err != nil {
		return out, err
	}
	if err := proto.Unmarshal(m.Data, v); err != nil {
		return out, fmt.Errorf("%w: decode %s: %v", ErrRejected, kind, err)
	}
	return out, nil
}

// FetchTokenKey returns the token public key central published, verified
// with keys. A message that fails verification is an error wrapping
// ErrRejected (the returned ConfigMsg still has its Seq).
func FetchTokenKey(ctx context.Context, js jetstream.JetStream, keys Keys) (*ConfigMsg[*TokenKey], error) {
	return fetchConfig(ctx, js, keys, TokenKeySubject, KindTokenKey, &TokenKey{})
}

// FetchRevocations returns the token revocation list on the config stream,
// verified with keys, or nil when central has published none.
func FetchRevocations(ctx context.Context, js jetstream.JetStream, keys Keys) (*TokenRevocations, error) {
	m, err := FetchRevocationsMsg(ctx, js, keys)
	if faceauth.KindOf(err) == faceauth.KindUnavailable {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return m.Value, nil
}

// FetchRevocationsMsg is FetchRevocations with the message's details; an
// absent list is an Unavailable error.
func FetchRevocationsMsg(ctx context.Context, js jetstream.JetStream, keys Keys) (*ConfigMsg[*TokenRevocations], error) {
	m, err := fetchConfig(ctx, js, keys, RevocationsSubject, KindRevocations, &TokenRevocations{})
	if err == nil && m.Revision != m.Value.GetVersion() {
		return m, fmt.Errorf("%w: the revocation list has version %d but its signature covers %d", ErrRejected, m.Value.GetVersion(), m.Revision)
	}
	return m, err
}

// FetchFeedKey returns central's feed key announcement, verified with
// keys, or, when keys is nil (an edge pinning its trust root on first
// use), checked only to be signed by the key it announces.
func FetchFeedKey(ctx context.Context, js jetstream.JetStream, keys Keys) (*ConfigMsg[*TokenKey], error) {
	if keys == nil {
		m, err := lastConfig(ctx, js, FeedKeySubject, KindFeedKey)
		if err != nil {
			return nil, err
		}
		var k TokenKey
		if err := proto.Unmarshal(m.Data, &k); err != nil || len(k.GetPublicKey()) != ed25519.PublicKeySize {
			return &ConfigMsg[*TokenKey]{Seq: m.Sequence}, fmt.Errorf("%w: the feed key announcement is malformed", ErrRejected)
		}
		keys = TrustKey(ed25519.PublicKey(k.GetPublicKey()))
	}
	m, err := fetchConfig(ctx, js, keys, FeedKeySubject, KindFeedKey, &TokenKey{})
	if err != nil {
		return m, err
	}
	k := m.Value
	if len(k.GetPublicKey()) != ed25519.PublicKeySize || k.GetKeyId() != auth.KeyIDOf(ed25519.PublicKey(k.GetPublicKey())) {
		return m, fmt.Errorf("%w: the feed key announcement names key %q for a key whose id differs", ErrRejected, k.GetKeyId())
	}
	return m, nil
}

// ReadRevocations returns the list on the config stream without
// verification (nil when there is none): the monitor only compares
// versions with what edges report.
func ReadRevocations(ctx context.Context, js jetstream.JetStream) (*TokenRevocations, error) {
	m, err := lastConfig(ctx, js, RevocationsSubject, KindRevocations)
	if faceauth.KindOf(err) == faceauth.KindUnavailable {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	list := new(TokenRevocations)
	if err := proto.Unmarshal(m.Data, list); err != nil {
		return nil, fmt.Errorf("feed: decode token revocations: %w", err)
	}
	return list, nil
}
