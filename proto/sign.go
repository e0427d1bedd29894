package pb

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/xplore/faceauth/internal/auth"
)

// Every message central puts on the feed (user upserts and tombstones, the
// token key, the token revocations, the feed key announcement) carries an
// Ed25519 signature by central's feed key in two headers. The signature
// covers a domain tag, the subject, the kind of message, the user id, the
// revision and the payload, each length-prefixed, so that a captured
// message cannot be moved to another subject or user, nor its revision
// changed. Edges verify before they apply (docs/sync.md, "Signed feed").
const (
	// KeyIDHeader names the feed key that signed the message
	// (auth.KeyIDOf of its public key).
	KeyIDHeader = "Faceauth-Key-Id"
	// SignatureHeader holds the Ed25519 signature in unpadded base64url.
	SignatureHeader = "Faceauth-Signature"
)

// Kinds of config messages, signed in place of an op.
const (
	KindTokenKey    = "tokenkey"
	KindRevocations = "revocations"
	KindFeedKey     = "feedkey"
)

// FeedKeySubject carries central's current feed public key (a TokenKey:
// key id and public key). It is signed by the previous feed key while a
// rotation is announced (PREVIOUS_SECRET_KEY), else by the key itself.
const FeedKeySubject = "faceauth.config.feedkey"

// signDomain separates feed signatures from every other use of Ed25519
// keys in the system (tokens use other keys, but a tag costs nothing).
const signDomain = "xplore-faceauth feed message v1"

// KeyInfo is the HKDF label central derives the feed key under, from its
// token signing key (auth.Signer.DeriveSeed), which itself comes from
// SECRET_KEY or the key file: one secret for the replicas to share.
const KeyInfo = "xplore-faceauth feed signing key v1"

// ErrRejected is wrapped by every error about a message that failed
// verification: unsigned, signed by an untrusted key, a bad signature, or
// older than what the edge holds. Edges count these (they mean someone
// with publish rights on NATS sends messages central did not sign, or
// replays old ones) and never apply the message.
var ErrRejected = errors.New("feed message rejected")

// ErrUnknownKey is wrapped when a message names a key the edge does not
// trust; it may be a rotated key the edge has yet to learn.
var ErrUnknownKey = fmt.Errorf("%w: signed by a key this edge does not trust", ErrRejected)

// Signer signs feed messages with central's feed key.
type Signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
	// subjectKey keys the user tokens of users-stream subjects
	// (UserToken). It comes from the same seed, so replicas sharing
	// SECRET_KEY share it, and rotating the feed key changes it: the
	// republication under the new key (see package publish) moves every
	// user to their new subject.
	subjectKey []byte
}

// NewSigner returns a Signer for the Ed25519 key with the 32-byte seed.
func NewSigner(seed []byte) (*Signer, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("feed: key seed has %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	sk, err := hkdf.Key(sha256.New, seed, nil, SubjectKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("feed: derive the subject key: %w", err)
	}
	return &Signer{priv: priv, pub: pub, id: auth.KeyIDOf(pub), subjectKey: sk}, nil
}

// SignerFromSecret derives a feed key from secret with HKDF-SHA256 under
// KeyInfo (tests and tools; central derives from its token key).
func SignerFromSecret(secret []byte) (*Signer, error) {
	if len(secret) < 16 {
		return nil, errors.New("feed: the secret the feed key is derived from is too short")
	}
	seed, err := hkdf.Key(sha256.New, secret, nil, KeyInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("feed: derive the feed key: %w", err)
	}
	return NewSigner(seed)
}

// UserSubject returns the users-stream subject of user id in site under
// the signer's subject key (see UserSubject).
func (s *Signer) UserSubject(id, site string) string {
	return UserSubject(s.subjectKey, id, site)
}

// KeyID returns the id of the feed key.
func (s *Signer) KeyID() string { return s.id }

// PublicKey returns the feed public key that edges trust.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.pub }

// Sign sets the revision and signature headers of m, the message on
// m.Subject of the given kind (an op for a user change, a Kind* for
// config), user id (empty for config) and revision.
func (s *Signer) Sign(m *nats.Msg, kind, userID string, rev uint64) {
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	m.Header.Set(RevisionHeader, strconv.FormatUint(rev, 10))
	m.Header.Set(KeyIDHeader, s.id)
	sig := ed25519.Sign(s.priv, signedBytes(m.Subject, kind, userID, rev, m.Data))
	m.Header.Set(SignatureHeader, base64.RawURLEncoding.EncodeToString(sig))
}

// signedBytes is what a signature covers.
func signedBytes(subject, kind, userID string, rev uint64, payload []byte) []byte {
	b := make([]byte, 0, len(signDomain)+len(subject)+len(kind)+len(userID)+len(payload)+48)
	for _, f := range []string{signDomain, subject, kind, userID} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.BigEndian.AppendUint64(b, rev)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// Keys gives the feed public key trusted for a key id. The edge implements
// it with its trust root; an untrusted id is an error wrapping
// ErrUnknownKey.
type Keys interface {
	FeedKey(keyID string) (ed25519.PublicKey, error)
}

// KeyFunc adapts a function to Keys.
type KeyFunc func(keyID string) (ed25519.PublicKey, error)

// FeedKey implements Keys.
func (f KeyFunc) FeedKey(keyID string) (ed25519.PublicKey, error) { return f(keyID) }

// TrustKey returns Keys that trust only pub.
func TrustKey(pub ed25519.PublicKey) Keys {
	id := auth.KeyIDOf(pub)
	return KeyFunc(func(keyID string) (ed25519.PublicKey, error) {
		if keyID != id {
			return nil, fmt.Errorf("%w (key %q, trusted %q)", ErrUnknownKey, keyID, id)
		}
		return pub, nil
	})
}

// VerifyMsg checks the signature headers of a message against keys. It
// returns the revision the signature covers (the RevisionHeader) and the
// signing key's id.
func VerifyMsg(keys Keys, subject string, h nats.Header, kind, userID string, payload []byte) (rev uint64, keyID string, err error) {
	keyID, sig := h.Get(KeyIDHeader), h.Get(SignatureHeader)
	if keyID == "" || sig == "" {
		return 0, keyID, fmt.Errorf("%w: %s message on %s is not signed", ErrRejected, kind, subject)
	}
	rev, err = HeaderRevision(h)
	if err != nil {
		return 0, keyID, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	pub, err := keys.FeedKey(keyID)
	if err != nil {
		return 0, keyID, fmt.Errorf("%s message on %s: %w", kind, subject, err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize || !ed25519.Verify(pub, signedBytes(subject, kind, userID, rev, payload), raw) {
		return 0, keyID, fmt.Errorf("%w: %s message on %s has a bad signature (key %s)", ErrRejected, kind, subject, keyID)
	}
	return rev, keyID, nil
}

// verifyChange checks that a decoded users-stream change carries central's
// signature over its subject, op, user id, revision and payload.
func verifyChange(keys Keys, subject string, h nats.Header, c *UserChange, data []byte) error {
	id, _, rev, op, err := ChangeInfo(c)
	if err != nil {
		return err
	}
	srev, _, err := VerifyMsg(keys, subject, h, op, id, data)
	if err != nil {
		return err
	}
	if srev != rev {
		return fmt.Errorf("%w: change for user %q carries revision %d but its signature covers %d", ErrRejected, id, rev, srev)
	}
	return nil
}
