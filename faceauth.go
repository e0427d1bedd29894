// Package faceauth holds the core types shared by the central service, the
// edge daemon, the storage backends and the face pipeline: user ids, the
// error kinds every layer speaks, the small object-store interface that
// the local directory and S3 both implement, and the face vocabulary (Box,
// Face, Analysis, Match) with the one-method Engine interface that the
// services call the face pipeline through.
//
// Implementations live in their own packages (central/store/filestore,
// central/store/s3store, models/face, ...); this package imports none of them.
package faceauth

import (
	"context"
	"errors"
	"fmt"
)

// Kind classifies an error so that each layer can react to it (an HTTP
// status, a retry, a log level) without matching strings.
type Kind uint8

// The error kinds. Their order is not part of any contract.
const (
	KindInternal        Kind = iota // a bug or an unexpected failure: 500
	KindInvalid                     // a malformed request field: 400
	KindBadImage                    // undecodable, corrupt or unsupported image: 422
	KindNoFace                      // no usable face, several faces, or a refused face: 422
	KindTooLarge                    // body or pixel count over a limit: 413
	KindNotFound                    // no such user, image or object: 404
	KindConflict                    // a conditional write lost a race: 409/412
	KindUnauthenticated             // no or bad credentials: 401
	KindForbidden                   // authenticated but not allowed: 403
	KindRateLimited                 // too many attempts: 429
	KindUnavailable                 // a dependency (store, NATS, models) is down: 503
)

var kindNames = [...]string{
	KindInternal:        "internal",
	KindInvalid:         "invalid",
	KindBadImage:        "bad_image",
	KindNoFace:          "no_face",
	KindTooLarge:        "too_large",
	KindNotFound:        "not_found",
	KindConflict:        "conflict",
	KindUnauthenticated: "unauthenticated",
	KindForbidden:       "forbidden",
	KindRateLimited:     "rate_limited",
	KindUnavailable:     "unavailable",
}

// String returns the kind's stable lower-case name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is an error with a kind, a stable machine-readable code and a
// sentence fit to show a user. Err, when set, is the underlying cause; it is
// kept for logs and errors.Is/As but not shown to API clients.
type Error struct {
	Kind Kind
	Code string // stable, snake_case, e.g. "no_face", "several_faces", "truncated_image"
	Msg  string // one human sentence, e.g. "No face was found in the image."
	Err  error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// E builds an *Error. The message is formatted with fmt.Sprintf.
func E(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error around a cause.
func Wrap(err error, kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the kind of the first *Error in err's chain, or
// KindInternal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ErrNotFound is returned by stores for a missing key. Match it with
// errors.Is.
var ErrNotFound = &Error{Kind: KindNotFound, Code: "not_found", Msg: "not found"}

// ErrPrecondition is returned by stores when a conditional write's
// condition does not hold (the object changed or already exists).
var ErrPrecondition = &Error{Kind: KindConflict, Code: "precondition_failed", Msg: "the object changed concurrently"}

// Is lets errors.Is match by kind and code, so wrapped copies of the
// sentinels above still match.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Code == e.Code
}

// Cond is the condition of a conditional write. The zero Cond writes
// unconditionally.
type Cond struct {
	// IfMatch, when set, makes the write succeed only if the object's current
	// version tag equals it.
	IfMatch string
	// IfNoneMatch makes the write succeed only if the object does not exist.
	IfNoneMatch bool
}

// Store is a flat object store with conditional writes: the reference set's
// source of truth. Keys are slash-separated relative paths such as
// "records/alice.pb"; see docs/storage.md for the layout. Implementations:
// central/store/filestore (a local directory) and central/store/s3store (S3 and
// S3-compatible servers). All methods are safe for concurrent use, also by
// several processes sharing the same backing store.
type Store interface {
	// Get returns the object's bytes and its version tag. A missing key
	// gives an error matching ErrNotFound.
	Get(ctx context.Context, key string) (data []byte, version string, err error)
	// Put writes the object if cond holds and returns its new version tag.
	// A failed condition gives an error matching ErrPrecondition.
	Put(ctx context.Context, key string, data []byte, cond Cond) (version string, err error)
	// Delete removes the object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns up to limit keys that start with prefix and sort after
	// startAfter, in ascending byte order. Fewer than limit keys means the
	// listing is complete.
	List(ctx context.Context, prefix, startAfter string, limit int) ([]string, error)
	// Ping checks that the store is reachable and usable, returning an
	// error that says how to fix it when it is not.
	Ping(ctx context.Context) error
}
