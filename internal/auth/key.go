package auth

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/xplore/faceauth"
)

// hkdfInfo binds the derived key to its one use, so SECRET_KEY can be shared
// with other derivations without giving them the token key.
const hkdfInfo = "xplore-faceauth token signing key v1"

// MinSecretLen is the shortest SECRET_KEY accepted, in bytes.
const MinSecretLen = 16

// KeyFileName is the name of the key file created in the data folder when
// SECRET_KEY is not set.
const KeyFileName = "token.key"

// SignerFromSecret derives the signing key from a shared secret with
// HKDF-SHA256, so every central replica configured with the same
// SECRET_KEY signs and checks the same tokens.
func SignerFromSecret(secret string) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, faceauth.E(faceauth.KindInvalid, "weak_secret",
			"SECRET_KEY is shorter than %d characters; use a long random value (for example `openssl rand -hex 32`).", MinSecretLen)
	}
	seed, err := hkdf.Key(sha256.New, []byte(secret), nil, hkdfInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("auth: derive key: %w", err)
	}
	return NewSigner(seed)
}

// LoadKeyFile reads a key file: the base64 of a 32-byte Ed25519 seed on
// its first non-comment line.
func LoadKeyFile(path string) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read token key file: %w", err)
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		seed, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("token key file %s does not hold a base64 32-byte key; delete it to create a new one (existing tokens stop working)", path)
		}
		return NewSigner(seed)
	}
	return nil, fmt.Errorf("token key file %s is empty; delete it to create a new one (existing tokens stop working)", path)
}

// LoadOrCreateKeyFile reads the key file at path, or creates it with a new
// random key (mode 0600) when it does not exist. created reports which.
func LoadOrCreateKeyFile(path string) (s *Signer, created bool, err error) {
	s, err = LoadKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, false, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, false, fmt.Errorf("auth: random key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create token key folder: %w", err)
	}
	text := "# Xplore Face Auth token signing key. Keep it secret; anyone holding it can mint admin tokens.\n" +
		base64.StdEncoding.EncodeToString(seed) + "\n"
	// The key is written to a temporary file and hard-linked into place:
	// the link appears complete or not at all, and when two processes start
	// at once only one link succeeds and the other reads that key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".token-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("create token key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(text)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("write token key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		s, err := LoadKeyFile(path)
		return s, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("create token key file: %w", err)
	}
	s, err = NewSigner(seed)
	return s, true, err
}

// KeyConfig says where the signing key comes from.
type KeyConfig struct {
	Secret  string // SECRET_KEY; wins when set
	KeyFile string // used when Secret is empty
	// Create makes a missing KeyFile with a random key instead of failing.
	Create bool
}

// LoadSigner returns the signer cfg describes. created reports that a new
// key file was written.
func LoadSigner(cfg KeyConfig) (s *Signer, created bool, err error) {
	switch {
	case cfg.Secret != "":
		s, err := SignerFromSecret(cfg.Secret)
		return s, false, err
	case cfg.KeyFile == "":
		return nil, false, errors.New("no token key: set SECRET_KEY or a key file")
	case cfg.Create:
		return LoadOrCreateKeyFile(cfg.KeyFile)
	default:
		s, err := LoadKeyFile(cfg.KeyFile)
		return s, false, err
	}
}

// DeriveSeed derives a 32-byte seed for another key from the signing key
// with HKDF-SHA256 under info, a label naming that key's one use. Central
// derives its feed key this way, so replicas that share SECRET_KEY (or the
// key file) share it too, and the derived key reveals nothing about the
// token key.
func (s *Signer) DeriveSeed(info string) ([]byte, error) {
	seed, err := hkdf.Key(sha256.New, s.priv.Seed(), nil, info, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("auth: derive key: %w", err)
	}
	return seed, nil
}
