// Package central is the central service's domain: the user registry
// over the object store, the token revocation list and the sweep of what
// interrupted writes leave.
//
// The domain (the Registry, Revocations and the Sweeper: registry.go,
// read.go, index.go, revindex.go, sweep.go, ...) speaks faceauth errors
// and its own types and imports no HTTP package (layout_test.go checks);
// package central/httpapi is the HTTP API over it, every route and every
// handler in one file.
//
// # Registry and the object layout
//
// The Registry keeps the reference set in a faceauth.Store (a local
// directory or S3) with the layout of docs/architecture.md:
//
//	records/<id>.pb            pb.UserRecord, the visibility point of a user
//	images/<id>/<sha256>.<ext> the original uploaded images
//	deletions/<rev>.pb         pb.Deletion, that a user was erased
//	meta/revision              the global revision counter
//
// Every change takes a new global revision, allocated by a conditional
// write of meta/revision, so revisions grow strictly across all writers
// (requests and central replicas alike). A user record is created with
// If-None-Match and replaced with If-Match on the version read; a lost race
// re-reads the record and applies the change again, so two concurrent
// additions never lose a reference.
//
// Images are written before the record that names them. A crash or an
// error in between leaves only images no record references, which are
// invisible (docs/api.md describes sweeping them); it never leaves a user
// that is half there.
//
// Deleting a user first writes its deletion record, then replaces the user
// record, conditionally, with a tombstone (a record without references,
// which readers treat as absent), then deletes the record and every image
// of the user. The conditional tombstone makes a delete that races an
// update retry instead of erasing a user the update just wrote, and a
// delete that stopped half-way is finished by deleting again.
package central

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models/photo"
	pb "github.com/xplore/faceauth/proto"
)

// Publisher receives every change after it is stored, to send it to the
// edges. Publish must neither fail nor block the request: a publisher
// queues and retries on its own, and edges that miss a change catch up
// from a Snapshot.
type Publisher interface {
	Publish(change *pb.UserChange)
}

// Limits of the registry.
const (
	// MaxReferences is the most reference photos one user may have.
	MaxReferences = 100
	// MaxNameLen is the longest display name accepted, in bytes.
	MaxNameLen = 256
	// maxAttempts bounds the retries of a conditional write under
	// contention; with faceauth.Backoff it allows for hundreds of
	// concurrent writers of one object.
	maxAttempts = 400
	// parallelIO is how many store requests one operation has in flight.
	parallelIO = 8
)

// StageTimer records how long a stage of a change took ("face": the
// analysis of its photos, "store": its writes); *api.Metrics is one. The
// registry says what it did, the HTTP layer decides where it is counted.
type StageTimer interface {
	Stage(stage string, start time.Time)
}

// noStages times nothing.
type noStages struct{}

func (noStages) Stage(string, time.Time) {}

// Config configures a Registry.
type Config struct {
	Store faceauth.Store
	// Engine embeds the reference photos, and verify's and identify's
	// probes; Info describes its models.
	Engine    faceauth.Engine
	Info      faceauth.EngineInfo
	Publisher Publisher    // nil: changes are not published
	Log       *slog.Logger // nil: slog.Default()
	Metrics   StageTimer   // nil: no stage timings
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Registry is the set of registered users in the store. It is safe for
// concurrent use, also by several processes sharing one store.
type Registry struct {
	store faceauth.Store
	eng   faceauth.Engine
	info  faceauth.EngineInfo
	pub   Publisher
	log   *slog.Logger
	m     StageTimer
	now   func() time.Time
	index *index
}

// NewRegistry returns a registry over cfg.Store.
func NewRegistry(cfg Config) *Registry {
	r := &Registry{store: cfg.Store, eng: cfg.Engine, info: cfg.Info, pub: cfg.Publisher, log: cfg.Log, m: cfg.Metrics, now: cfg.Now}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.m == nil {
		r.m = noStages{}
	}
	r.index = newIndex(r)
	return r
}

// Engine returns the face engine and its description, which verify and
// identify use over the registry's users.
func (r *Registry) Engine() (faceauth.Engine, faceauth.EngineInfo) { return r.eng, r.info }

// Detect lists the faces in img without judging or embedding any.
func (r *Registry) Detect(ctx context.Context, img []byte) (*faceauth.Analysis, error) {
	return r.eng.Analyze(ctx, img, faceauth.Request{Purpose: faceauth.PurposeDetect})
}

// Model returns the id of the embedding model new references get.
func (r *Registry) Model() string { return r.info.Model }

// Ping checks that the store is reachable.
func (r *Registry) Ping(ctx context.Context) error { return r.store.Ping(ctx) }

// Image is an uploaded photo.
type Image struct {
	Data []byte
	// Label names the image in errors, e.g. `image 2 ("b.jpg")`.
	Label string
}

// errUserNotFound is the answer for an unknown user id.
func errUserNotFound(id string) error {
	return faceauth.E(faceauth.KindNotFound, "user_not_found", "No user %q is registered.", id)
}

// Result is the outcome of a change to a user.
type Result struct {
	Record  *pb.UserRecord
	Created bool // the user did not exist before
	Changed bool // a new revision was written
}

// Register enrolls the images for user id, creating the user or adding to
// an existing one; a non-empty name sets the display name. Every image
// must hold exactly one usable face, else nothing is written and the error
// names the image. An image the user already has is not added twice.
func (r *Registry) Register(ctx context.Context, id, name string, images []Image) (*Result, error) {
	return r.add(ctx, id, name, nil, images, false)
}

// RegisterAt is Register for a user of sites: a new user is created in
// sites (and reaches only their edges from its first revision); an
// existing user of other sites is refused, since changing them is
// SetSites' job. No sites is Register.
func (r *Registry) RegisterAt(ctx context.Context, id, name string, sites []string, images []Image) (*Result, error) {
	return r.add(ctx, id, name, sites, images, false)
}

// AddImages adds reference images to an existing user.
func (r *Registry) AddImages(ctx context.Context, id string, images []Image) (*Result, error) {
	return r.add(ctx, id, "", nil, images, true)
}

// add is the one path of every enrolment, so its checks of the request
// (the id first) hold for every caller, HTTP or not.
func (r *Registry) add(ctx context.Context, id, name string, sites []string, images []Image, mustExist bool) (*Result, error) {
	if err := faceauth.ValidateUserID(id); err != nil {
		return nil, err
	}
	sites, err := pb.CheckSites(sites)
	if err != nil {
		return nil, err
	}
	if err := validateName(name); err != nil {
		return nil, err
	}
	if len(images) == 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "missing_image", "At least one image is required.")
	}
	if len(images) > MaxReferences {
		return nil, faceauth.E(faceauth.KindInvalid, "too_many_images", "Send at most %d images at once.", MaxReferences)
	}
	if mustExist {
		// Checked again when the record is written; this spares the face
		// pipeline and leaves no stray images for an unknown user.
		if _, err := r.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	refs, err := r.enroll(ctx, images)
	r.m.Stage("face", start)
	if err != nil {
		return nil, err
	}
	start = time.Now()
	defer r.m.Stage("store", start)
	// Images first: until the record names them they are invisible.
	if err := r.putImages(ctx, id, refs); err != nil {
		return nil, err
	}
	apply := func(cur *pb.UserRecord) (*pb.UserRecord, error) {
		if cur == nil {
			if mustExist {
				return nil, errUserNotFound(id)
			}
			cur = &pb.UserRecord{Id: id, CreatedAt: timestamppb.New(r.now()), Sites: sites}
		}
		if len(sites) > 0 && !slices.Equal(cur.Sites, sites) {
			return nil, faceauth.E(faceauth.KindConflict, "user_in_other_site",
				"User %q belongs to %s; change them with PUT /api/users/%s/sites first.", id, SitesText(cur.Sites), id)
		}
		changed := false
		if name != "" && name != cur.Name {
			cur.Name, changed = name, true
		}
		for _, p := range refs {
			if slices.ContainsFunc(cur.References, func(x *pb.Reference) bool { return x.ImageId == p.ref.ImageId }) {
				continue
			}
			if len(cur.References) >= MaxReferences {
				return nil, faceauth.E(faceauth.KindConflict, "too_many_references",
					"User %q already has the maximum of %d reference images; delete some first.", id, MaxReferences)
			}
			cur.References = append(cur.References, proto.CloneOf(p.ref))
			changed = true
		}
		if !changed {
			return nil, nil
		}
		return cur, nil
	}
	for {
		res, err := r.update(ctx, id, apply)
		var te *tombstoneError
		if mustExist || !errors.As(err, &te) {
			return res, err
		}
		// The id was deleted and its delete did not finish. Finish it (which
		// also removes the images just written, since they share the
		// folder), write the images again and register anew.
		if r.now().Sub(te.tomb.UpdatedAt.AsTime()) < deleteGrace {
			return nil, faceauth.E(faceauth.KindConflict, "user_being_deleted",
				"User %q is being deleted; try again in a minute.", id)
		}
		d := &pb.Deletion{UserId: id, Revision: te.tomb.Revision, DeletedAt: te.tomb.UpdatedAt, Sites: te.tomb.Sites}
		if err := r.finishDelete(ctx, d); err != nil {
			return nil, err
		}
		if err := r.putImages(ctx, id, refs); err != nil {
			return nil, err
		}
	}
}

func validateName(name string) error {
	if len(name) > MaxNameLen {
		return faceauth.E(faceauth.KindInvalid, "invalid_name", "The name is longer than %d bytes.", MaxNameLen)
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return faceauth.E(faceauth.KindInvalid, "invalid_name", "The name must be UTF-8 text without control characters.")
	}
	return nil
}

// pending is an enrolled image not yet stored.
type pending struct {
	ref  *pb.Reference
	data []byte
	ext  string
}

// enroll analyses every image, in parallel, and fails on the first image
// (in request order) without one usable face.
func (r *Registry) enroll(ctx context.Context, images []Image) ([]pending, error) {
	out := make([]pending, len(images))
	errs := make([]error, len(images))
	var wg sync.WaitGroup
	for i, img := range images {
		wg.Go(func() {
			out[i], errs[i] = r.enrollOne(ctx, img)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, imageError(images[i].Label, err)
		}
	}
	// The same photo twice in one request is one reference.
	seen := map[string]bool{}
	var uniq []pending
	for _, p := range out {
		if !seen[p.ref.ImageId] {
			seen[p.ref.ImageId] = true
			uniq = append(uniq, p)
		}
	}
	return uniq, nil
}

// Analyse runs the enrolment checks on one photo without storing
// anything: the analysis a register of it would store, or the error that
// would refuse it.
func (r *Registry) Analyse(ctx context.Context, img []byte) (*faceauth.Analysis, error) {
	if _, ok := imageFormats[photo.Sniff(img)]; !ok {
		// Let the pipeline say exactly what is wrong with it.
		if _, err := r.eng.Analyze(ctx, img, faceauth.Request{Purpose: faceauth.PurposeEnroll}); err != nil {
			return nil, err
		}
		return nil, faceauth.E(faceauth.KindBadImage, "unsupported_format", "The image format is not supported; please upload a JPEG or PNG.")
	}
	return r.eng.Analyze(ctx, img, faceauth.Request{Purpose: faceauth.PurposeEnroll})
}

func (r *Registry) enrollOne(ctx context.Context, img Image) (pending, error) {
	a, err := r.Analyse(ctx, img.Data)
	if err != nil {
		return pending{}, err
	}
	f := imageFormats[photo.Sniff(img.Data)]
	sum := sha256.Sum256(img.Data)
	ref := &pb.Reference{
		ImageId:     hex.EncodeToString(sum[:]),
		ContentType: f.contentType,
		Size:        int64(len(img.Data)),
		Embedding:   &pb.Embedding{Model: a.Model, Vector: slices.Clone(a.Embedding)},
		AddedAt:     timestamppb.New(r.now()),
	}
	if fc, ok := a.SelectedFace(); ok {
		ref.Box = pb.BoxOf(fc.Box)
		ref.DetectionScore = fc.Score
		ref.Quality = fc.Quality
	}
	return pending{ref: ref, data: img.Data, ext: f.ext}, nil
}

// imageError prefixes a user-facing error with the image it is about,
// keeping its kind and code.
func imageError(label string, err error) error {
	var fe *faceauth.Error
	if label == "" || !errors.As(err, &fe) || fe.Kind == faceauth.KindInternal {
		return err
	}
	return &faceauth.Error{Kind: fe.Kind, Code: fe.Code, Msg: capitalize(label) + ": " + fe.Msg, Err: err}
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// putImages stores the images. They are content-addressed, so writing one
// that exists rewrites the same bytes.
func (r *Registry) putImages(ctx context.Context, id string, refs []pending) error {
	return parallel(ctx, len(refs), func(ctx context.Context, i int) error {
		p := refs[i]
		if _, err := r.store.Put(ctx, imageKey(id, p.ref.ImageId, p.ext), p.data, faceauth.Cond{}); err != nil {
			return fmt.Errorf("store image %s of %s: %w", p.ref.ImageId, id, err)
		}
		return nil
	})
}

// RemoveImage removes one reference image of a user. The last reference
// cannot be removed: delete the user instead.
func (r *Registry) RemoveImage(ctx context.Context, id, imageID string) (*Result, error) {
	if err := faceauth.ValidateUserID(id); err != nil {
		return nil, err
	}
	if !validImageID(imageID) {
		return nil, faceauth.E(faceauth.KindInvalid, "invalid_image_id", "The image id must be the 64 hex digits of the image's SHA-256.")
	}
	var removed *pb.Reference
	res, err := r.update(ctx, id, func(cur *pb.UserRecord) (*pb.UserRecord, error) {
		if cur == nil {
			return nil, errUserNotFound(id)
		}
		i := slices.IndexFunc(cur.References, func(x *pb.Reference) bool { return x.ImageId == imageID })
		if i < 0 {
			return nil, faceauth.E(faceauth.KindNotFound, "image_not_found", "User %q has no image %s.", id, imageID)
		}
		if len(cur.References) == 1 {
			return nil, faceauth.E(faceauth.KindConflict, "last_reference",
				"This is the last reference image of user %q; delete the user instead.", id)
		}
		removed = cur.References[i]
		cur.References = slices.Delete(cur.References, i, i+1)
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	// The record no longer names the image; now the bytes can go.
	if err := r.store.Delete(ctx, imageKey(id, imageID, extOf(removed.ContentType))); err != nil {
		r.log.Warn("delete image object", "user_id", id, "image_id", imageID, "err", err)
	}
	return res, nil
}

// Rename sets the user's display name ("" clears it).
func (r *Registry) Rename(ctx context.Context, id, name string) (*Result, error) {
	if err := faceauth.ValidateUserID(id); err != nil {
		return nil, err
	}
	if err := validateName(name); err != nil {
		return nil, err
	}
	return r.update(ctx, id, func(cur *pb.UserRecord) (*pb.UserRecord, error) {
		if cur == nil {
			return nil, errUserNotFound(id)
		}
		if cur.Name == name {
			return nil, nil
		}
		cur.Name = name
		return cur, nil
	})
}

// Image returns the bytes and content type of one reference image of a
// user.
func (r *Registry) Image(ctx context.Context, id, imageID string) ([]byte, string, error) {
	if !validImageID(imageID) {
		return nil, "", faceauth.E(faceauth.KindInvalid, "invalid_image_id", "The image id must be the 64 hex digits of the image's SHA-256.")
	}
	rec, err := r.Get(ctx, id)
	if err != nil {
		return nil, "", err
	}
	i := slices.IndexFunc(rec.References, func(x *pb.Reference) bool { return x.ImageId == imageID })
	if i < 0 {
		return nil, "", faceauth.E(faceauth.KindNotFound, "image_not_found", "User %q has no image %s.", id, imageID)
	}
	ct := rec.References[i].ContentType
	data, _, err := r.store.Get(ctx, imageKey(id, imageID, extOf(ct)))
	if errors.Is(err, faceauth.ErrNotFound) {
		return nil, "", faceauth.E(faceauth.KindNotFound, "image_not_found", "The stored image %s of user %q is missing.", imageID, id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read image %s of %s: %w", imageID, id, err)
	}
	return data, ct, nil
}

func validImageID(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// Get returns the user's record. An unknown user is KindNotFound.
func (r *Registry) Get(ctx context.Context, id string) (*pb.UserRecord, error) {
	if err := faceauth.ValidateUserID(id); err != nil {
		return nil, err
	}
	rec, _, _, err := r.read(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, errUserNotFound(id)
	}
	return rec, nil
}

// read returns the user's live record and its version tag. rec is nil
// when the user does not exist (version "") or is a tombstone (version is
// the tombstone's, and tomb is set).
func (r *Registry) read(ctx context.Context, id string) (rec *pb.UserRecord, version string, tomb *pb.UserRecord, err error) {
	data, ver, err := r.store.Get(ctx, recordKey(id))
	exists := err == nil
	if err != nil && !errors.Is(err, faceauth.ErrNotFound) {
		return nil, "", nil, fmt.Errorf("read record of %s: %w", id, err)
	}
	rec, tomb, err = decodeRecord(id, data, exists)
	if err != nil {
		return nil, "", nil, err
	}
	return rec, ver, tomb, nil
}

// decodeRecord decodes the stored record of id: rec when it is live, tomb
// when it is a tombstone, neither when it does not exist.
func decodeRecord(id string, data []byte, exists bool) (rec, tomb *pb.UserRecord, err error) {
	if !exists {
		return nil, nil, nil
	}
	rec = new(pb.UserRecord)
	if err := proto.Unmarshal(data, rec); err != nil {
		return nil, nil, fmt.Errorf("decode record of %s: %w", id, err)
	}
	if isTombstone(rec) {
		return nil, rec, nil
	}
	return rec, nil, nil
}

// isTombstone: a live user always has at least one reference.
func isTombstone(rec *pb.UserRecord) bool { return len(rec.References) == 0 }

// tombstoneError says that the user's record is a tombstone: a delete is
// in progress, or stopped half-way. It is a not-found error to every
// caller but a register, which may finish the delete and go on.
type tombstoneError struct {
	tomb *pb.UserRecord
	err  error
}

func (e *tombstoneError) Error() string { return e.err.Error() }
func (e *tombstoneError) Unwrap() error { return e.err }

// deleteGrace is how old a tombstone must be before a register of the same
// id finishes the delete itself: younger ones may belong to a delete still
// running, whose clean-up would remove the new registration's images.
const deleteGrace = time.Minute

// update applies fn to the user's current record (nil when absent) and
// writes the result with a new revision, conditionally on the version read;
// when another writer got there first it reads again and re-applies fn.
// fn may change and return its argument; it returns nil for "no change".
func (r *Registry) update(ctx context.Context, id string, fn func(cur *pb.UserRecord) (*pb.UserRecord, error)) (*Result, error) {
	var res *Result
	_, err := faceauth.Update(ctx, r.store, recordKey(id), maxAttempts, func(old []byte, exists bool) ([]byte, error) {
		cur, tomb, err := decodeRecord(id, old, exists)
		if err != nil {
			return nil, err
		}
		if tomb != nil {
			return nil, &tombstoneError{tomb: tomb, err: errUserNotFound(id)}
		}
		var before *pb.UserRecord
		if cur != nil {
			before = proto.CloneOf(cur)
		}
		next, err := fn(cur)
		if err != nil {
			return nil, err
		}
		if next == nil {
			res = &Result{Record: before}
			return nil, nil
		}
		rev, err := r.nextRevision(ctx, id)
		if err != nil {
			return nil, err
		}
		next.Id = id
		next.Revision = rev
		next.UpdatedAt = timestamppb.New(r.now())
		data, err := proto.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("encode record of %s: %w", id, err)
		}
		res = &Result{Record: next, Created: cur == nil, Changed: true}
		return data, nil
	})
	if err != nil {
		return nil, userContention(id, err)
	}
	if res.Changed {
		r.changed(res.Record)
	}
	return res, nil
}

// userContention turns faceauth.Update's lost-race error for the record
// of id into the user's message.
func userContention(id string, err error) error {
	if errors.Is(err, faceauth.ErrPrecondition) {
		return faceauth.E(faceauth.KindConflict, "contention",
			"User %q is being changed by too many requests at once; try again.", id)
	}
	return err
}

// changed publishes a stored record and updates the identify index.
func (r *Registry) changed(rec *pb.UserRecord) {
	r.index.upsert(rec)
	r.publish(upsertChanges(rec))
}

// publish hands the messages of one revision to the publisher.
func (r *Registry) publish(changes []*pb.UserChange) {
	if r.pub == nil {
		return
	}
	for _, c := range changes {
		r.pub.Publish(c)
	}
}

// upsertChanges are the messages of a stored record: one upsert per
// scope of the user (each of its sites, or the one of no site), so that
// each edge receives it on a subject of its own scopes.
func upsertChanges(rec *pb.UserRecord) []*pb.UserChange {
	var embs []*pb.Embedding
	for _, ref := range rec.References {
		if ref.Embedding != nil {
			embs = append(embs, ref.Embedding)
		}
	}
	scopes := pb.Scopes(rec.Sites)
	out := make([]*pb.UserChange, len(scopes))
	for i, site := range scopes {
		up := &pb.UserUpsert{UserId: rec.Id, Revision: rec.Revision, Name: rec.Name, UpdatedAt: rec.UpdatedAt, Site: site, Embeddings: embs}
		out[i] = &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: up}, Parts: uint32(len(scopes))}
	}
	return out
}

// deleteChanges are the tombstones of a deletion record: one per scope the
// user left, each carrying where it remains when it was moved.
func deleteChanges(d *pb.Deletion) []*pb.UserChange {
	scopes := pb.Scopes(d.Sites)
	out := make([]*pb.UserChange, len(scopes))
	for i, site := range scopes {
		out[i] = &pb.UserChange{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{
			UserId: d.UserId, Revision: d.Revision, DeletedAt: d.DeletedAt, Site: site,
			Moved: d.Moved, RemainingSites: d.RemainingSites,
		}}, Parts: uint32(len(scopes))}
	}
	return out
}

// SitesText names a user's sites in a sentence: `site "A"`, `sites "A",
// "B"`, or `every edge (no site)`.
func SitesText(sites []string) string {
	switch len(sites) {
	case 0:
		return "every edge (no site)"
	case 1:
		return fmt.Sprintf("site %q", sites[0])
	}
	q := make([]string, len(sites))
	for i, s := range sites {
		q[i] = strconv.Quote(s)
	}
	return "sites " + strings.Join(q, ", ")
}

// nextRevision allocates a new global revision for a change of user id,
// with a compare-and-swap of meta/revision, and writes its change object
// (noteChange), before the caller writes the record or deletion record.
func (r *Registry) nextRevision(ctx context.Context, id string) (uint64, error) {
	var next uint64
	_, err := faceauth.Update(ctx, r.store, revisionKey, maxAttempts, func(old []byte, exists bool) ([]byte, error) {
		cur, err := parseRevision(old, exists)
		if err != nil {
			return nil, err
		}
		next = cur + 1
		return []byte(strconv.FormatUint(next, 10) + "\n"), nil
	})
	if errors.Is(err, faceauth.ErrPrecondition) {
		return 0, faceauth.E(faceauth.KindConflict, "contention", "Too many changes at once; try again.")
	}
	if err != nil {
		return 0, err
	}
	r.index.allocated(next)
	if err := r.noteChange(ctx, next, id); err != nil {
		return 0, err
	}
	return next, nil
}

// putDeletion writes the deletion record d, which must be new: its
// revision was just allocated.
func (r *Registry) putDeletion(ctx context.Context, d *pb.Deletion) error {
	data, err := proto.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode deletion of %s: %w", d.UserId, err)
	}
	if _, err := r.store.Put(ctx, deletionKey(d.Revision), data, faceauth.Cond{IfNoneMatch: true}); err != nil {
		return fmt.Errorf("write deletion record of %s: %w", d.UserId, err)
	}
	return nil
}

// readRevision returns the global revision and the version tag of its
// object ("" when it does not exist yet: revision 0).
func (r *Registry) readRevision(ctx context.Context) (uint64, string, error) {
	data, ver, err := r.store.Get(ctx, revisionKey)
	exists := err == nil
	if err != nil && !errors.Is(err, faceauth.ErrNotFound) {
		return 0, "", fmt.Errorf("read %s: %w", revisionKey, err)
	}
	n, err := parseRevision(data, exists)
	return n, ver, err
}

// parseRevision decodes meta/revision (revision 0 when it does not exist).
func parseRevision(data []byte, exists bool) (uint64, error) {
	if !exists {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s holds %q, not a revision number", revisionKey, data)
	}
	return n, nil
}

// Revision returns the current global revision: every change stored so
// far has a revision at most this.
func (r *Registry) Revision(ctx context.Context) (uint64, error) {
	n, _, err := r.readRevision(ctx)
	return n, err
}

// DeleteResult is the outcome of Delete.
type DeleteResult struct {
	UserID   string
	Revision uint64 // of the deletion
}

// Delete erases the user: the record, every image and every embedding.
// Afterwards no object of the user remains in the store except its
// deletion record, which holds no biometric data. Deleting a user whose
// earlier deletion stopped half-way finishes it.
func (r *Registry) Delete(ctx context.Context, id string) (*DeleteResult, error) {
	if err := faceauth.ValidateUserID(id); err != nil {
		return nil, err
	}
	var d *pb.Deletion
	_, err := faceauth.Update(ctx, r.store, recordKey(id), maxAttempts, func(old []byte, exists bool) ([]byte, error) {
		if !exists {
			return nil, errUserNotFound(id)
		}
		rec := new(pb.UserRecord)
		if err := proto.Unmarshal(old, rec); err != nil {
			return nil, fmt.Errorf("decode record of %s: %w", id, err)
		}
		if isTombstone(rec) {
			// An earlier delete wrote the deletion record and the tombstone;
			// finish its clean-up.
			d = &pb.Deletion{UserId: id, Revision: rec.Revision, DeletedAt: rec.UpdatedAt, Sites: rec.Sites}
			return nil, nil
		}
		// When the tombstone's write loses a race, the deletion record
		// written here is superseded by the user's newer revision and by
		// the next attempt's deletion record (Snapshot skips it).
		rev, err := r.nextRevision(ctx, id)
		if err != nil {
			return nil, err
		}
		d = &pb.Deletion{UserId: id, Revision: rev, DeletedAt: timestamppb.New(r.now()), Sites: rec.Sites}
		if err := r.putDeletion(ctx, d); err != nil {
			return nil, err
		}
		tomb, err := proto.Marshal(&pb.UserRecord{Id: id, Revision: rev, CreatedAt: rec.CreatedAt, UpdatedAt: d.DeletedAt, Sites: rec.Sites})
		if err != nil {
			return nil, fmt.Errorf("encode tombstone of %s: %w", id, err)
		}
		return tomb, nil
	})
	if err != nil {
		return nil, userContention(id, err)
	}
	if err := r.finishDelete(ctx, d); err != nil {
		return nil, err
	}
	return &DeleteResult{UserID: id, Revision: d.Revision}, nil
}

// SetSites sets the user's sites (none: every edge). The edges of the
// scopes it leaves that serve none of the new sites erase it and send
// receipts: first a deletion record of the scopes it leaves (moved, with
// the remaining sites; its own revision, so that each revision is all
// upserts or all tombstones, GET /api/deletions tracks the receipts and the
// reconciliation republishes the tombstones), then the record with the
// new sites at the next revision. An edge serving a remaining site ignores
// the tombstone (pb.UserDelete.KeptBy), so it ends with the user whatever
// order it sees the two in.
func (r *Registry) SetSites(ctx context.Context, id string, sites []string) (*Result, error) {
	if err := faceauth.ValidateUserID(id); err != nil {
		return nil, err
	}
	sites, err := pb.CheckSites(sites)
	if err != nil {
		return nil, err
	}
	var d *pb.Deletion
	// dropOrphan removes the deletion record of an attempt whose record
	// write lost a race or failed: it would claim a move that did not
	// happen.
	dropOrphan := func() error {
		if d == nil {
			return nil
		}
		if err := r.store.Delete(ctx, deletionKey(d.Revision)); err != nil && !errors.Is(err, faceauth.ErrNotFound) {
			return fmt.Errorf("remove the deletion record of an interrupted site change of %s: %w", id, err)
		}
		d = nil
		return nil
	}
	res, err := r.update(ctx, id, func(cur *pb.UserRecord) (*pb.UserRecord, error) {
		if err := dropOrphan(); err != nil {
			return nil, err
		}
		if cur == nil {
			return nil, errUserNotFound(id)
		}
		if slices.Equal(cur.Sites, sites) {
			return nil, nil
		}
		var left []string
		for _, s := range pb.Scopes(cur.Sites) {
			if !slices.Contains(pb.Scopes(sites), s) {
				left = append(left, s)
			}
		}
		if len(left) > 0 {
			rev, err := r.nextRevision(ctx, id)
			if err != nil {
				return nil, err
			}
			if left[0] == "" {
				left = nil // the scope of no site: Deletion.sites is empty
			}
			d = &pb.Deletion{UserId: id, Revision: rev, DeletedAt: timestamppb.New(r.now()), Sites: left, Moved: true, RemainingSites: sites}
			if err := r.putDeletion(ctx, d); err != nil {
				return nil, err
			}
		}
		cur.Sites = sites
		return cur, nil
	})
	if err != nil {
		if derr := dropOrphan(); derr != nil {
			r.log.Warn("site change failed and left its deletion record", "user_id", id, "err", derr)
		}
		return nil, err
	}
	if d != nil {
		r.publish(deleteChanges(d))
	}
	return res, nil
}

// finishDelete removes the images and then the tombstone of a user that is
// invisible already, and publishes the deletion. Temporary files that a
// crashed write of the user's images or record left (a whole photo or
// record that no listing shows) go with them.
func (r *Registry) finishDelete(ctx context.Context, d *pb.Deletion) error {
	if err := r.deleteImages(ctx, d.UserId); err != nil {
		return err
	}
	for _, prefix := range []string{imageDir(d.UserId), recordKey(d.UserId)} {
		if _, err := r.RemoveDebris(ctx, prefix, false); err != nil {
			return fmt.Errorf("delete the leftovers of %s: %w", d.UserId, err)
		}
	}
	if err := r.store.Delete(ctx, recordKey(d.UserId)); err != nil {
		return fmt.Errorf("delete record of %s: %w", d.UserId, err)
	}
	r.index.remove(d.UserId, d.Revision)
	r.publish(deleteChanges(d))
	return nil
}

// DebrisRemover is a store whose writers leave temporary files behind when
// they die mid-write; *filestore.Store is one. S3 has no such files.
type DebrisRemover interface {
	// RemoveDebris removes (or, with dryRun, lists) the temporary files
	// that dead writers left under the key prefix and returns them.
	RemoveDebris(ctx context.Context, prefix string, dryRun bool) ([]string, error)
}

// RemoveDebris removes what writers that died mid-write left under prefix
// in the store ("" for all of it), when the store can leave any, and
// returns it; with dryRun it only lists it. Central runs it at start-up and
// in every sweep.
func (r *Registry) RemoveDebris(ctx context.Context, prefix string, dryRun bool) ([]string, error) {
	d, ok := r.store.(DebrisRemover)
	if !ok {
		return nil, nil
	}
	return d.RemoveDebris(ctx, prefix, dryRun)
}

// deleteImages deletes every object under images/<id>/.
func (r *Registry) deleteImages(ctx context.Context, id string) error {
	for {
		keys, err := r.store.List(ctx, imageDir(id), "", 1000)
		if err != nil {
			return fmt.Errorf("list images of %s: %w", id, err)
		}
		if len(keys) == 0 {
			return nil
		}
		err = parallel(ctx, len(keys), func(ctx context.Context, i int) error {
			if err := r.store.Delete(ctx, keys[i]); err != nil {
				return fmt.Errorf("delete image %s: %w", keys[i], err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
}

// parallel runs fn for 0..n-1 with at most parallelIO at once and returns
// the first error; after an error no new call starts.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, parallelIO)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return context.Cause(ctx)
}
