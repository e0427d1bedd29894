// Package auth issues and checks the bearer tokens of the HTTP APIs.
//
// A token is signed with Ed25519, so checking it needs only the public key
// and no database: the central service holds the private key (derived from
// SECRET_KEY, or a random key file), and each edge receives only the public
// key, so an edge can check tokens but never mint one.
//
// A token has the compact form
//
//	fa1.<base64url(JSON payload)>.<base64url(signature)>
//
// where "fa1" is the format version and the signature covers the bytes
// "fa1.<payload>". The payload names the subject, the role, the issue and
// expiry times (Unix seconds) and the id of the key that signed it.
package auth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/xplore/faceauth"
)

// Role is what a token allows.
type Role string

// The roles. Admin may do everything, verify may only verify and identify.
const (
	RoleAdmin  Role = "admin"
	RoleVerify Role = "verify"
)

// ParseRole returns the role named s, or an error listing the roles.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleVerify:
		return r, nil
	}
	return "", faceauth.E(faceauth.KindInvalid, "invalid_role", "Unknown role %q: choose admin or verify.", s)
}

// Allows reports whether a token of role r may use an endpoint that
// requires role need. Admin tokens may also verify.
func (r Role) Allows(need Role) bool {
	return r == need || r == RoleAdmin
}

// version is the token format prefix.
const version = "fa1"

// MaxTokenLen bounds the token size accepted, so a huge header costs
// nothing to refuse.
const MaxTokenLen = 2048

// Claims is the checked content of a token.
type Claims struct {
	Subject   string    // who the token was issued to, e.g. "door-3" or "alice"
	Role      Role      // what it allows
	IssuedAt  time.Time // when it was signed
	ExpiresAt time.Time // when it stops being valid; zero means never
	KeyID     string    // the id of the key that signed it
}

// wirePayload is the signed JSON form of Claims.
type wirePayload struct {
	Sub  string `json:"sub"`
	Role Role   `json:"role"`
	Iat  int64  `json:"iat"`
	Exp  int64  `json:"exp,omitempty"`
	Kid  string `json:"kid"`
}

// b64 decodes strictly: a non-canonical encoding (other unused bits in the
// last character) would give a second spelling of the same signed token.
var b64 = base64.RawURLEncoding.Strict()

// KeyIDOf returns the id of a public key: the first 8 bytes of its SHA-256
// in base64url. Tokens name the key that signed them, so a verifier holding
// another key answers "signed by another key" rather than "bad signature".
func KeyIDOf(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return b64.EncodeToString(sum[:8])
}

// Verifier checks tokens with a public key. It is safe for concurrent use.
type Verifier struct {
	pub ed25519.PublicKey
	kid string
}

// NewVerifier returns a Verifier for tokens signed by the private key of
// pub. It panics if pub is not an Ed25519 public key, which is a bug.
func NewVerifier(pub ed25519.PublicKey) *Verifier {
	if len(pub) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("auth: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize))
	}
	return &Verifier{pub: append(ed25519.PublicKey(nil), pub...), kid: KeyIDOf(pub)}
}

// PublicKey returns the key tokens are checked with.
func (v *Verifier) PublicKey() ed25519.PublicKey { return v.pub }

// KeyID returns the id of the public key.
func (v *Verifier) KeyID() string { return v.kid }

// Errors a client can cause. Each is one sentence for the API response.
func errMissing() error {
	return faceauth.E(faceauth.KindUnauthenticated, "missing_token",
		"An Authorization: Bearer token is required.")
}

func errMalformed() error {
	return faceauth.E(faceauth.KindUnauthenticated, "invalid_token",
		"The bearer token is malformed.")
}

func errSignature() error {
	return faceauth.E(faceauth.KindUnauthenticated, "invalid_token",
		"The bearer token's signature is not valid.")
}

// Check verifies token's signature and expiry at time now and returns its
// claims. Every failure is a *faceauth.Error of kind KindUnauthenticated.
func (v *Verifier) Check(token string, now time.Time) (*Claims, error) {
	if token == "" {
		return nil, errMissing()
	}
	if len(token) > MaxTokenLen {
		return nil, errMalformed()
	}
	ver, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, errMalformed()
	}
	if ver != version {
		return nil, faceauth.E(faceauth.KindUnauthenticated, "invalid_token",
			"The bearer token has an unknown format; create a new one with `central token create`.")
	}
	body, sig64, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig64, ".") {
		return nil, errMalformed()
	}
	sig, err := b64.DecodeString(sig64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, errMalformed()
	}
	// The signature is checked before the payload is parsed, so forged
	// payloads never reach the JSON decoder.
	if !ed25519.Verify(v.pub, []byte(token[:len(ver)+1+len(body)]), sig) {
		return nil, errSignature()
	}
	raw, err := b64.DecodeString(body)
	if err != nil {
		return nil, errMalformed()
	}
	var p wirePayload
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, errMalformed()
	}
	if subtle.ConstantTimeCompare([]byte(p.Kid), []byte(v.kid)) != 1 {
		// A valid signature with another kid cannot happen with honest
		// signers; treat it as a bad token.
		return nil, errSignature()
	}
	role, err := ParseRole(string(p.Role))
	if err != nil {
		return nil, errMalformed()
	}
	c := &Claims{Subject: p.Sub, Role: role, IssuedAt: time.Unix(p.Iat, 0), KeyID: p.Kid}
	if p.Exp != 0 {
		c.ExpiresAt = time.Unix(p.Exp, 0)
		if !now.Before(c.ExpiresAt) {
			return nil, faceauth.E(faceauth.KindUnauthenticated, "token_expired",
				"The bearer token expired at %s.", c.ExpiresAt.UTC().Format(time.RFC3339))
		}
	}
	return c, nil
}

// Signer mints tokens. It holds the private key and is safe for concurrent
// use.
type Signer struct {
	priv ed25519.PrivateKey
	*Verifier
}

// NewSigner returns a Signer for the Ed25519 key with the given 32-byte
// seed.
func NewSigner(seed []byte) (*Signer, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("auth: key seed has %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &Signer{priv: priv, Verifier: NewVerifier(priv.Public().(ed25519.PublicKey))}, nil
}

// Issue signs a token for subject with role, issued at now and valid for
// ttl; ttl <= 0 makes a token that never expires.
func (s *Signer) Issue(subject string, role Role, ttl time.Duration, now time.Time) (string, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", err
	}
	if subject == "" {
		return "", faceauth.E(faceauth.KindInvalid, "invalid_subject", "A token needs a subject.")
	}
	p := wirePayload{Sub: subject, Role: role, Iat: now.Unix(), Kid: s.kid}
	if ttl > 0 {
		// Whole seconds after iat, rounded up.
		p.Exp = p.Iat + int64((ttl+time.Second-1)/time.Second)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("auth: encode token: %w", err)
	}
	signed := version + "." + b64.EncodeToString(raw)
	sig := ed25519.Sign(s.priv, []byte(signed))
	return signed + "." + b64.EncodeToString(sig), nil
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header value, or "" when there is none.
func BearerToken(header string) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
