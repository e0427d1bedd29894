package central

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/auth"
	pb "github.com/xplore/faceauth/proto"
)

// revocationsKey is the object holding the pb.TokenRevocations.
const revocationsKey = "meta/revocations.pb"

// Limits of a revocation.
const (
	// MaxSubjectLen is the longest token subject that can be revoked.
	MaxSubjectLen = 256
	// MaxReasonLen is the longest note a revocation keeps.
	MaxReasonLen = 256
)

// RevocationPublisher sends the revocation list to the edges; the change
// feed's publisher implements it. Like Publisher, it must not block.
type RevocationPublisher interface {
	PublishRevocations(list *pb.TokenRevocations)
}

// Revocations is the list of revoked token subjects (auth.Revocations).
// It is one object in the store, written with compare-and-swap, so every
// central replica refuses the same tokens (each re-reads it every few
// seconds, Run), and the change feed carries it to the edges, which
// refuse them offline too. Safe for concurrent use.
type Revocations struct {
	store faceauth.Store
	pub   RevocationPublisher
	log   *slog.Logger
	now   func() time.Time

	mu   sync.Mutex
	list *pb.TokenRevocations // never nil; replaced, never modified
	m    auth.Revocations     // list as a map; replaced with it
}

// RevocationsConfig configures Revocations.
type RevocationsConfig struct {
	Store     faceauth.Store
	Publisher RevocationPublisher // nil: the edges are not told
	Log       *slog.Logger        // nil: slog.Default()
	Now       func() time.Time    // nil: time.Now
}

// NewRevocations returns an empty list over cfg.Store; Load reads the
// stored one.
func NewRevocations(cfg RevocationsConfig) *Revocations {
	r := &Revocations{store: cfg.Store, pub: cfg.Publisher, log: cfg.Log, now: cfg.Now, list: &pb.TokenRevocations{}}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Map returns the current list in the form api.WithRevocations takes.
func (r *Revocations) Map() auth.Revocations {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m
}

// List returns the current list. The caller must not modify it.
func (r *Revocations) List() *pb.TokenRevocations {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.list
}

// Load reads the stored list and uses it when it is newer than the one
// held (another replica revoked a token).
func (r *Revocations) Load(ctx context.Context) error {
	list, _, err := r.read(ctx)
	if err != nil {
		return err
	}
	r.use(list, false)
	return nil
}

// Run re-reads the stored list every interval until ctx ends, so a
// revocation made through another central replica applies here too.
func (r *Revocations) Run(ctx context.Context, every time.Duration) {
	repeat(ctx, every, func() {
		if err := r.Load(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("token revocations not re-read; keeping the list held", "err", err)
		}
	})
}

// repeat calls fn every interval, the first time one interval from now,
// until ctx ends.
func repeat(ctx context.Context, every time.Duration, fn func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// Revoke revokes every token of subject issued up to now. Revoking a
// subject again moves its time forward; tokens issued for it later are
// valid.
func (r *Revocations) Revoke(ctx context.Context, subject, reason string) (*pb.TokenRevocation, error) {
	if err := ValidateSubject(subject); err != nil {
		return nil, err
	}
	if err := validateText("reason", reason, MaxReasonLen, false); err != nil {
		return nil, err
	}
	var rv *pb.TokenRevocation
	var next *pb.TokenRevocations
	_, err := faceauth.Update(ctx, r.store, revocationsKey, maxAttempts, func(old []byte, exists bool) ([]byte, error) {
		cur, err := decodeRevocations(old, exists)
		if err != nil {
			return nil, err
		}
		now := r.now()
		rv = &pb.TokenRevocation{Subject: subject, RevokedAt: timestamppb.New(now), Reason: reason}
		// The version is also a clock, so a list restored from an older
		// backup of the store still gets versions above those the edges
		// hold, and its next change reaches them.
		next = &pb.TokenRevocations{Version: max(cur.Version+1, uint64(now.UnixMicro()))}
		for _, x := range cur.Revocations {
			if x.Subject != subject {
				next.Revocations = append(next.Revocations, x)
			}
		}
		next.Revocations = append(next.Revocations, rv)
		slices.SortFunc(next.Revocations, func(a, b *pb.TokenRevocation) int { return strings.Compare(a.Subject, b.Subject) })
		data, err := proto.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("encode token revocations: %w", err)
		}
		return data, nil
	})
	if errors.Is(err, faceauth.ErrPrecondition) {
		return nil, faceauth.E(faceauth.KindConflict, "contention",
			"The revocation list is being changed by too many requests at once; try again.")
	}
	if err != nil {
		return nil, err
	}
	r.use(next, true)
	r.log.Info("token subject revoked", "subject", subject, "reason", reason, "version", next.Version)
	return rv, nil
}

// read returns the stored list (empty when there is none) and its version
// tag ("" when there is none).
func (r *Revocations) read(ctx context.Context) (*pb.TokenRevocations, string, error) {
	data, ver, err := r.store.Get(ctx, revocationsKey)
	exists := err == nil
	if err != nil && !errors.Is(err, faceauth.ErrNotFound) {
		return nil, "", fmt.Errorf("read token revocations: %w", err)
	}
	list, err := decodeRevocations(data, exists)
	if err != nil {
		return nil, "", err
	}
	return list, ver, nil
}

// decodeRevocations decodes the stored list (empty when there is none).
func decodeRevocations(data []byte, exists bool) (*pb.TokenRevocations, error) {
	list := new(pb.TokenRevocations)
	if !exists {
		return list, nil
	}
	if err := proto.Unmarshal(data, list); err != nil {
		return nil, fmt.Errorf("decode token revocations: %w", err)
	}
	return list, nil
}

// use makes list current unless the one held is as new (a replica's
// re-read may race its own write), or always when it was just written,
// and hands it to the publisher.
func (r *Revocations) use(list *pb.TokenRevocations, written bool) {
	r.mu.Lock()
	if !written && r.m != nil && list.Version <= r.list.Version {
		r.mu.Unlock()
		return
	}
	r.list, r.m = list, list.RevokedAt()
	r.mu.Unlock()
	if r.pub != nil {
		r.pub.PublishRevocations(list)
	}
}

// ValidateSubject checks a token subject, as a revocation and a minted
// token need it: present, at most MaxSubjectLen bytes, text without
// control characters.
func ValidateSubject(subject string) error {
	return validateText("subject", subject, MaxSubjectLen, true)
}

// validateText checks a short free-text field.
func validateText(field, s string, maxLen int, required bool) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return faceauth.E(faceauth.KindInvalid, "missing_"+field, "The %s is required.", field)
	case len(s) > maxLen:
		return faceauth.E(faceauth.KindInvalid, "invalid_"+field, "The %s is longer than %d bytes.", field, maxLen)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, func(c rune) bool { return c < 0x20 || c == 0x7f }):
		return faceauth.E(faceauth.KindInvalid, "invalid_"+field, "The %s must be text without control characters.", field)
	}
	return nil
}
