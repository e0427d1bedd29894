// Package filestore implements faceauth.Store on a local directory: the
// default store for a single host and for development.
//
// Each key is a file under the directory (key "records/alice.pb" is the file
// records/alice.pb). Writes go to a temporary file in the same folder, are
// fsynced and renamed into place, so a reader sees the old or the new
// content, never a mix, and a crash leaves no half-written object. Writes
// and deletes of a key hold an flock(2) on one of a fixed set of lock files,
// so conditional writes are correct between goroutines and between processes
// sharing the directory. The version tag of an object is the hex SHA-256 of
// its content.
package filestore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/store"
)

const (
	// lockDir holds the lock files. Keys cannot start with '.', so it never
	// clashes with an object.
	lockDir = ".locks"
	// lockStripes is the number of lock files; keys hash onto them. More
	// stripes let writes of different keys proceed in parallel.
	lockStripes = 64
	// tmpPrefix starts the names of temporary files, which List skips.
	tmpPrefix = ".tmp-"
	// pingKey names Ping's temporary file.
	pingKey = "ping"

	dirPerm  = 0o700 // the store holds biometric data: owner only
	filePerm = 0o600
)

// Store is a faceauth.Store on a local directory. It is safe for concurrent
// use by several goroutines and by several processes opening the same
// directory.
type Store struct {
	dir  string
	root *os.Root // confines every file operation to dir, also through symlinks
}

var _ faceauth.Store = (*Store)(nil)

// New opens the store in dir, creating the directory when it is missing.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, faceauth.E(faceauth.KindInvalid, "store_dir_missing", "The data directory is not set. Set it to a writable folder.")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(abs, lockDir), dirPerm); err != nil {
		return nil, unwritable(abs, err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, unwritable(abs, err)
	}
	return &Store{dir: abs, root: root}, nil
}

// Dir returns the absolute path of the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close releases the directory handle. The Store must not be used after.
func (s *Store) Close() error { return s.root.Close() }

// Version returns the version tag of content, as Get and Put report it.
func Version(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Get implements faceauth.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, string, error) {
	if err := store.ValidateKey(key); err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	data, err := s.read(key)
	if err != nil {
		return nil, "", err
	}
	return data, Version(data), nil
}

// ModTime returns when the object at key was last written: the file's
// modification time. The sweep uses it to tell a crash's leftover image
// from one a register in flight has just written.
func (s *Store) ModTime(ctx context.Context, key string) (time.Time, error) {
	if err := store.ValidateKey(key); err != nil {
		return time.Time{}, err
	}
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	fi, err := s.root.Stat(key)
	if err != nil {
		if missing(err) {
			return time.Time{}, notFound(key, err)
		}
		return time.Time{}, fmt.Errorf("filestore: stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return time.Time{}, notFound(key, fs.ErrNotExist)
	}
	return fi.ModTime(), nil
}

// read returns the content of key, or an error matching
// faceauth.ErrNotFound when there is no such object.
func (s *Store) read(key string) ([]byte, error) {
	data, err := s.root.ReadFile(key)
	if err != nil {
		if missing(err) {
			return nil, notFound(key, err)
		}
		return nil, fmt.Errorf("filestore: read %s: %w", key, err)
	}
	return data, nil
}

// missing reports whether err means that no object exists at the path:
// nothing is there, a parent is a file, or the path is a folder.
func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR)
}

func notFound(key string, err error) error {
	return fmt.Errorf("filestore: %s: %w", key, faceauth.Wrap(err, faceauth.KindNotFound, faceauth.ErrNotFound.Code, "%s", faceauth.ErrNotFound.Msg))
}

func precondition(key, why string) error {
	return fmt.Errorf("filestore: %s: %s: %w", key, why, faceauth.ErrPrecondition)
}

// Put implements faceauth.Store.
func (s *Store) Put(ctx context.Context, key string, data []byte, cond faceauth.Cond) (string, error) {
	if err := store.ValidateKey(key); err != nil {
		return "", err
	}
	if cond.IfMatch != "" && cond.IfNoneMatch {
		return "", faceauth.E(faceauth.KindInvalid, "invalid_condition", "A write cannot require both a version match and that the object does not exist.")
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	unlock, err := s.lock(key)
	if err != nil {
		return "", err
	}
	defer unlock()
	// The condition is checked under the lock, so no other writer of the key
	// can slip in between the check and the rename.
	switch {
	case cond.IfNoneMatch:
		fi, err := s.root.Stat(key)
		if err == nil && fi.Mode().IsRegular() {
			return "", precondition(key, "object exists")
		}
		if err != nil && !missing(err) {
			return "", fmt.Errorf("filestore: stat %s: %w", key, err)
		}
	case cond.IfMatch != "":
		cur, err := s.read(key)
		if errors.Is(err, faceauth.ErrNotFound) {
			return "", precondition(key, "object does not exist")
		}
		if err != nil {
			return "", err
		}
		if Version(cur) != cond.IfMatch {
			return "", precondition(key, "version changed")
		}
	}
	// A canceled caller gets no write, even after waiting for the lock.
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := s.write(key, data); err != nil {
		return "", err
	}
	return Version(data), nil
}

// write replaces key with data atomically and durably. The caller holds the
// key's lock.
func (s *Store) write(key string, data []byte) error {
	dir := path.Dir(key)
	var (
		f   *os.File
		tmp string
		err error
	)
	// A concurrent Delete of a sibling may remove the folder, or a parent,
	// while it is being created or before the temporary file is; then start
	// over. The temporary file, once created, keeps the folder alive.
	for attempt := 0; ; attempt++ {
		err = s.mkdirAll(dir)
		if err == nil {
			tmp = path.Join(dir, tmpName(key))
			f, err = s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt >= 100 {
			break
		}
	}
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			return conflict(key)
		}
		return fmt.Errorf("filestore: create temporary file for %s: %w", key, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			s.root.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("filestore: write %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("filestore: sync %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("filestore: close %s: %w", key, err)
	}
	if err := s.root.Rename(tmp, key); err != nil {
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return conflict(key)
		}
		return fmt.Errorf("filestore: rename into %s: %w", key, err)
	}
	ok = true
	// The rename is durable once the folder's entry is.
	return s.syncDir(dir)
}

func conflict(key string) error {
	return faceauth.E(faceauth.KindInvalid, "key_conflict", "The object key %q clashes with an existing object or folder of the same name.", key)
}

// mkdirAll creates dir and its missing parents, syncing each parent so the
// new entries survive a crash.
func (s *Store) mkdirAll(dir string) error {
	if dir == "." {
		return nil
	}
	fi, err := s.root.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return syscall.ENOTDIR
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := s.mkdirAll(path.Dir(dir)); err != nil {
		return err
	}
	if err := s.root.Mkdir(dir, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return s.syncDir(path.Dir(dir))
}

// syncDir makes the entries of dir durable. A folder that a concurrent
// Delete removed meanwhile has nothing left to make durable.
func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("filestore: open folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("filestore: sync folder %s: %w", dir, err)
	}
	return nil
}

// Delete implements faceauth.Store. It also removes the folders that the
// deletion leaves empty, so that erasing a user leaves no trace of the id.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := store.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := s.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	fi, err := s.root.Lstat(key)
	if err != nil {
		if missing(err) {
			return nil
		}
		return fmt.Errorf("filestore: stat %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a folder is not an object
	}
	if err := s.root.Remove(key); err != nil && !missing(err) {
		return fmt.Errorf("filestore: delete %s: %w", key, err)
	}
	dir := path.Dir(key)
	if err := s.syncDir(dir); err != nil {
		return err
	}
	// Remove fails on a folder that is not empty, which ends the climb; a
	// concurrent Put into a removed folder recreates it.
	for ; dir != "."; dir = path.Dir(dir) {
		if s.root.Remove(dir) != nil {
			break
		}
		if err := s.syncDir(path.Dir(dir)); err != nil {
			return err
		}
	}
	return nil
}

// List implements faceauth.Store.
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "invalid_limit", "The listing limit must be positive.")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var keys []string
	if err := s.walk(ctx, "", prefix, startAfter, limit, &keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// walk appends to keys, in byte order, the keys under folder rel ("" or
// ending in '/') that start with prefix and sort after startAfter, until
// there are limit keys.
//
// Byte order is not the order of a plain walk: "a.b" sorts before "a/x"
// because '.' < '/'. Every key in folder "a" starts with "a/", so sorting a
// folder by name+"/" among the files of its parent gives byte order.
func (s *Store) walk(ctx context.Context, rel, prefix, startAfter string, limit int, keys *[]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := strings.TrimSuffix(rel, "/")
	if name == "" {
		name = "."
	}
	d, err := s.root.Open(name)
	if err != nil {
		if missing(err) {
			return nil // removed by a concurrent Delete
		}
		return fmt.Errorf("filestore: list %s: %w", name, err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("filestore: list %s: %w", name, err)
	}
	type entry struct {
		key string // the key, or for a folder its path and "/"
		dir bool
	}
	var sorted []entry
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // locks, temporary files
		}
		switch {
		case e.IsDir():
			sorted = append(sorted, entry{rel + e.Name() + "/", true})
		case e.Type().IsRegular():
			sorted = append(sorted, entry{rel + e.Name(), false})
		}
	}
	slices.SortFunc(sorted, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	for _, e := range sorted {
		if len(*keys) >= limit {
			return nil
		}
		if e.dir {
			if !strings.HasPrefix(e.key, prefix) && !strings.HasPrefix(prefix, e.key) {
				continue
			}
			// Every key in the folder starts with e.key; when startAfter
			// is greater and does not start with it, all of them sort
			// before startAfter.
			if startAfter > e.key && !strings.HasPrefix(startAfter, e.key) {
				continue
			}
			if err := s.walk(ctx, e.key, prefix, startAfter, limit, keys); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(e.key, prefix) && e.key > startAfter && store.ValidateKey(e.key) == nil {
			*keys = append(*keys, e.key)
		}
	}
	return nil
}

// Ping implements faceauth.Store: it writes and removes a small file.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Held like a write's, so RemoveDebris never takes the file for debris.
	unlock, err := s.lock(pingKey)
	if err != nil {
		return err
	}
	defer unlock()
	name := tmpName(pingKey)
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return unwritable(s.dir, err)
	}
	_, werr := f.Write([]byte("ping"))
	cerr := f.Close()
	rerr := s.root.Remove(name)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return unwritable(s.dir, err)
	}
	return nil
}

func unwritable(dir string, err error) error {
	return faceauth.Wrap(err, faceauth.KindUnavailable, "store_unwritable",
		"The data directory %q is not usable. Check that it exists, is a folder and that this user may write to it.", dir)
}

// lock takes the exclusive lock that guards key and returns its release.
// flock locks belong to the open file, so each call opens the lock file
// anew: that excludes other goroutines as well as other processes.
func (s *Store) lock(key string) (func(), error) {
	h := fnv.New32a()
	h.Write([]byte(key))
	name := fmt.Sprintf("%s/%02x", lockDir, h.Sum32()%lockStripes)
	f, err := s.root.OpenFile(name, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, unwritable(s.dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("filestore: lock %s: %w", name, err)
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}

// tmpName is the name of a temporary file for key: ".tmp-<base>-<random>",
// so the file names the key whose lock its writer holds.
func tmpName(key string) string {
	return tmpPrefix + path.Base(key) + "-" + rand.Text()
}

// randLen is the length of rand.Text's output.
var randLen = len(rand.Text())

// tmpKey returns the key a temporary file in folder dir was written for,
// and false for a name tmpName did not make.
func tmpKey(dir, name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, tmpPrefix)
	if !ok || len(rest) < randLen+2 || rest[len(rest)-randLen-1] != '-' {
		return "", false
	}
	key := path.Join(dir, rest[:len(rest)-randLen-1])
	if store.ValidateKey(key) != nil {
		return "", false
	}
	return key, true
}

// oldDebrisAge is how old a temporary file must be before RemoveDebris
// removes it when its name does not say which key's lock its writer would
// hold (files from versions before tmpName): no write lasts that long.
const oldDebrisAge = 10 * time.Minute

// RemoveDebris removes the temporary files that writers which died
// mid-write (kill -9, a power cut) left under prefix ("" for the whole
// store; "images/alice/" for a folder; "records/alice.pb" for one key), and
// returns their paths relative to the store. Such a file may hold a whole
// object (a photo, a record with embeddings) that List never shows. A
// temporary file is debris when the lock of the key it was written for is
// free: a live writer holds it from before creating the file until it is
// renamed or removed, in this process or another. With dryRun it only
// lists them.
func (s *Store) RemoveDebris(ctx context.Context, prefix string, dryRun bool) ([]string, error) {
	dir := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir = prefix[:i]
	}
	var found []string
	err := fs.WalkDir(s.root.FS(), dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if missing(err) {
				return nil // removed by a concurrent Delete
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p == lockDir {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), tmpPrefix) || !d.Type().IsRegular() {
			return nil
		}
		key, named := tmpKey(path.Dir(p), d.Name())
		if named && !strings.HasPrefix(key, prefix) || !named && !strings.HasPrefix(p, prefix) {
			return nil
		}
		if !named {
			fi, err := d.Info()
			if err != nil || time.Since(fi.ModTime()) < oldDebrisAge {
				return nil
			}
			if !dryRun {
				if err := s.root.Remove(p); err != nil && !missing(err) {
					return fmt.Errorf("filestore: remove debris %s: %w", p, err)
				}
			}
			found = append(found, p)
			return nil
		}
		unlock, err := s.lock(key)
		if err != nil {
			return err
		}
		defer unlock()
		if _, err := s.root.Lstat(p); err != nil {
			return nil // its writer finished meanwhile
		}
		if !dryRun {
			if err := s.root.Remove(p); err != nil && !missing(err) {
				return fmt.Errorf("filestore: remove debris %s: %w", p, err)
			}
		}
		found = append(found, p)
		return nil
	})
	if err != nil && !missing(err) {
		return found, fmt.Errorf("filestore: look for debris: %w", err)
	}
	if !dryRun {
		// Folders the debris alone kept alive go, as after a Delete.
		for _, p := range found {
			for d := path.Dir(p); d != "."; d = path.Dir(d) {
				if s.root.Remove(d) != nil {
					break
				}
			}
		}
	}
	return found, nil
}
