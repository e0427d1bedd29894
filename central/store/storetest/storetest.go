// Package storetest is the conformance suite for faceauth.Store
// implementations: the semantics the central service relies on, checked the
// same way against every backend.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/xplore/faceauth"
)

// Run runs the suite. newStore must return an empty store that no other
// subtest uses; it is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) faceauth.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s faceauth.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"BinaryData", testBinaryData},
		{"UserIDCharacters", testUserIDCharacters},
		{"Delete", testDelete},
		{"IfNoneMatch", testIfNoneMatch},
		{"IfMatch", testIfMatch},
		{"InvalidKeys", testInvalidKeys},
		{"List", testList},
		{"ListPagination", testListPagination},
		{"CreateRace", testCreateRace},
		{"CASCounter", testCASCounter},
		{"Update", testUpdate},
		{"Canceled", testCanceled},
		{"Ping", testPing},
		{"ModTime", testModTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

func put(t *testing.T, s faceauth.Store, key string, data []byte) string {
	t.Helper()
	v, err := s.Put(t.Context(), key, data, faceauth.Cond{})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if v == "" {
		t.Fatalf("Put(%q) returned an empty version", key)
	}
	return v
}

func get(t *testing.T, s faceauth.Store, key string) ([]byte, string) {
	t.Helper()
	data, v, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return data, v
}

func wantNotFound(t *testing.T, s faceauth.Store, key string) {
	t.Helper()
	data, v, err := s.Get(t.Context(), key)
	if !errors.Is(err, faceauth.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %q, %v; want ErrNotFound", key, data, v, err)
	}
	if k := faceauth.KindOf(err); k != faceauth.KindNotFound {
		t.Fatalf("Get(%q) error kind = %v, want not_found", key, k)
	}
}

func wantPrecondition(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, faceauth.ErrPrecondition) {
		t.Fatalf("%s: err = %v, want ErrPrecondition", what, err)
	}
	if k := faceauth.KindOf(err); k != faceauth.KindConflict {
		t.Fatalf("%s: error kind = %v, want conflict", what, k)
	}
}

func testGetMissing(t *testing.T, s faceauth.Store) {
	wantNotFound(t, s, "records/nobody.pb")
	wantNotFound(t, s, "images/nobody/abc.jpg")
	put(t, s, "records/alice.pb", []byte("a"))
	// A key that names a folder of another key is not an object.
	put(t, s, "images/alice/1.jpg", []byte("i"))
	wantNotFound(t, s, "images/alice")
	wantNotFound(t, s, "records/alice")
}

func testPutGet(t *testing.T, s faceauth.Store) {
	want := []byte("hello, store")
	v := put(t, s, "records/alice.pb", want)
	got, gv := get(t, s, "records/alice.pb")
	if !bytes.Equal(got, want) {
		t.Errorf("Get = %q, want %q", got, want)
	}
	if gv != v {
		t.Errorf("Get version = %q, Put returned %q", gv, v)
	}
	// Reading does not change the version.
	if _, gv2 := get(t, s, "records/alice.pb"); gv2 != gv {
		t.Errorf("second Get version = %q, first %q", gv2, gv)
	}
	// The returned slice belongs to the caller.
	got[0] = 'X'
	if again, _ := get(t, s, "records/alice.pb"); !bytes.Equal(again, want) {
		t.Errorf("Get after modifying a returned slice = %q, want %q", again, want)
	}
}

func testOverwrite(t *testing.T, s faceauth.Store) {
	const key = "meta/revision"
	seen := map[string]int{}
	for i := range 5 {
		v := put(t, s, key, []byte(strconv.Itoa(i)))
		if j, dup := seen[v]; dup {
			t.Fatalf("write %d of different content returned the version of write %d: %q", i, j, v)
		}
		seen[v] = i
		got, gv := get(t, s, key)
		if string(got) != strconv.Itoa(i) || gv != v {
			t.Fatalf("after write %d: Get = %q, %q; want %q, %q", i, got, gv, strconv.Itoa(i), v)
		}
	}
	// Shorter content replaces longer content completely.
	put(t, s, key, []byte("a much longer value than the next one"))
	put(t, s, key, []byte("short"))
	if got, _ := get(t, s, key); string(got) != "short" {
		t.Fatalf("Get = %q, want %q", got, "short")
	}
}

func testBinaryData(t *testing.T, s faceauth.Store) {
	every := make([]byte, 512)
	for i := range every {
		every[i] = byte(i)
	}
	big := make([]byte, 3<<20+17)
	rand.Read(big)
	for _, tt := range []struct {
		key  string
		data []byte
	}{
		{"bin/every-byte", every},
		{"bin/empty", []byte{}},
		{"bin/crlf", []byte("a\r\nb\n\x00\r")},
		{"bin/big", big},
	} {
		v := put(t, s, tt.key, tt.data)
		got, gv := get(t, s, tt.key)
		if !bytes.Equal(got, tt.data) {
			t.Errorf("%s: got %d bytes, want %d identical bytes", tt.key, len(got), len(tt.data))
		}
		if gv != v {
			t.Errorf("%s: Get version %q, Put version %q", tt.key, gv, v)
		}
	}
}

// userIDChars are all the characters faceauth.ValidateUserID allows.
const userIDChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-@"

func testUserIDCharacters(t *testing.T, s faceauth.Store) {
	ids := []string{"a" + userIDChars, "Z" + userIDChars + userIDChars[:20], "x..y", "a@b.c", "A_", "9-"}
	var keys []string
	for _, id := range ids {
		if err := faceauth.ValidateUserID(id); err != nil {
			t.Fatalf("test id %q: %v", id, err)
		}
		rec := "records/" + id + ".pb"
		img := "images/" + id + "/" + fmt.Sprintf("%064x", len(id)) + ".jpg"
		keys = append(keys, rec, img)
		put(t, s, rec, []byte("record of "+id))
		put(t, s, img, []byte("image of "+id))
	}
	for _, id := range ids {
		if got, _ := get(t, s, "records/"+id+".pb"); string(got) != "record of "+id {
			t.Errorf("record of %q = %q", id, got)
		}
		if got, _ := get(t, s, "images/"+id+"/"+fmt.Sprintf("%064x", len(id))+".jpg"); string(got) != "image of "+id {
			t.Errorf("image of %q = %q", id, got)
		}
	}
	slices.Sort(keys)
	got, err := s.List(t.Context(), "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, keys) {
		t.Errorf("List = %q\nwant %q", got, keys)
	}
}

func testDelete(t *testing.T, s faceauth.Store) {
	put(t, s, "records/alice.pb", []byte("a"))
	put(t, s, "images/alice/1.jpg", []byte("1"))
	put(t, s, "images/alice/2.jpg", []byte("2"))
	for _, key := range []string{"records/alice.pb", "images/alice/1.jpg"} {
		if err := s.Delete(t.Context(), key); err != nil {
			t.Fatalf("Delete(%q): %v", key, err)
		}
		wantNotFound(t, s, key)
	}
	if got, _ := get(t, s, "images/alice/2.jpg"); string(got) != "2" {
		t.Fatalf("sibling after Delete = %q", got)
	}
	if err := s.Delete(t.Context(), "images/alice/2.jpg"); err != nil {
		t.Fatal(err)
	}
	// Deleting a missing key, also one under a missing folder, is no error.
	for _, key := range []string{"records/alice.pb", "images/alice/2.jpg", "nothing/here/at/all"} {
		if err := s.Delete(t.Context(), key); err != nil {
			t.Errorf("Delete(%q) of a missing key: %v", key, err)
		}
	}
	keys, err := s.List(t.Context(), "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("List after deleting everything = %q", keys)
	}
	// A deleted key can be created again, also conditionally.
	if _, err := s.Put(t.Context(), "images/alice/1.jpg", []byte("new"), faceauth.Cond{IfNoneMatch: true}); err != nil {
		t.Fatalf("re-creating a deleted key: %v", err)
	}
	if got, _ := get(t, s, "images/alice/1.jpg"); string(got) != "new" {
		t.Fatalf("re-created key = %q", got)
	}
}

func testIfNoneMatch(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	const key = "records/bob.pb"
	v, err := s.Put(ctx, key, []byte("first"), faceauth.Cond{IfNoneMatch: true})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	_, err = s.Put(ctx, key, []byte("second"), faceauth.Cond{IfNoneMatch: true})
	wantPrecondition(t, err, "second create")
	// Same content is still a failed condition: the object exists.
	_, err = s.Put(ctx, key, []byte("first"), faceauth.Cond{IfNoneMatch: true})
	wantPrecondition(t, err, "create with the same content")
	if got, gv := get(t, s, key); string(got) != "first" || gv != v {
		t.Fatalf("after failed creates: %q, %q; want %q, %q", got, gv, "first", v)
	}
}

func testIfMatch(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	const key = "meta/revision"
	_, err := s.Put(ctx, key, []byte("1"), faceauth.Cond{IfMatch: "some-version"})
	wantPrecondition(t, err, "IfMatch on a missing key")
	wantNotFound(t, s, key)

	v1 := put(t, s, key, []byte("1"))
	v2, err := s.Put(ctx, key, []byte("2"), faceauth.Cond{IfMatch: v1})
	if err != nil {
		t.Fatalf("IfMatch with the current version: %v", err)
	}
	if v2 == v1 {
		t.Fatalf("version did not change: %q", v2)
	}
	_, err = s.Put(ctx, key, []byte("3"), faceauth.Cond{IfMatch: v1})
	wantPrecondition(t, err, "IfMatch with a stale version")
	_, err = s.Put(ctx, key, []byte("3"), faceauth.Cond{IfMatch: "0123456789abcdef0123456789abcdef"})
	wantPrecondition(t, err, "IfMatch with a made-up version")
	if got, gv := get(t, s, key); string(got) != "2" || gv != v2 {
		t.Fatalf("after failed writes: %q, %q; want %q, %q", got, gv, "2", v2)
	}
	_, err = s.Put(ctx, key, []byte("3"), faceauth.Cond{IfMatch: v2, IfNoneMatch: true})
	if faceauth.KindOf(err) != faceauth.KindInvalid {
		t.Fatalf("IfMatch and IfNoneMatch together: err = %v, want an invalid error", err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, key, []byte("4"), faceauth.Cond{IfMatch: v2})
	wantPrecondition(t, err, "IfMatch after Delete")
	wantNotFound(t, s, key)
}

func testInvalidKeys(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	put(t, s, "records/alice.pb", []byte("a"))
	for _, key := range []string{"", "/records/alice.pb", "../records/alice.pb", "records/../records/alice.pb",
		"records//alice.pb", "records/./alice.pb", `records\alice.pb`, "records/", "..", ".", "a b", "records/.alice.pb"} {
		checks := map[string]error{}
		_, _, checks["Get"] = s.Get(ctx, key)
		_, checks["Put"] = s.Put(ctx, key, []byte("x"), faceauth.Cond{})
		checks["Delete"] = s.Delete(ctx, key)
		for op, err := range checks {
			if faceauth.KindOf(err) != faceauth.KindInvalid {
				t.Errorf("%s(%q) = %v, want an invalid-key error", op, key, err)
			}
		}
	}
	if got, _ := get(t, s, "records/alice.pb"); string(got) != "a" {
		t.Fatalf("records/alice.pb = %q after invalid writes", got)
	}
	keys, err := s.List(ctx, "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"records/alice.pb"}) {
		t.Fatalf("List after invalid writes = %q", keys)
	}
	if _, err := s.List(ctx, "", "", 0); faceauth.KindOf(err) != faceauth.KindInvalid {
		t.Errorf("List with limit 0 = %v, want an invalid error", err)
	}
}

// listKeys are ordered in bytes differently from a naive walk of a
// directory tree: "a.b" < "a/x" < "a0" because '.' < '/' < '0'.
var listKeys = []string{
	"a.b", "a/x", "a/y/z", "a0", "a@", "a_/q", "ab",
	"images/al.b/1.jpg", "images/al/1.jpg", "images/al/2.jpg", "images/al0/1.jpg",
	"records/al.b.pb", "records/al.pb", "records/al0.pb", "records/alice.pb", "records/bob.pb",
}

func testList(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	for _, k := range slices.Backward(listKeys) {
		put(t, s, k, []byte(k))
	}
	want := slices.Clone(listKeys)
	slices.Sort(want)
	tests := []struct {
		prefix, startAfter string
		limit              int
	}{
		{"", "", 1000},
		{"", "", 3},
		{"records/", "", 1000},
		{"records/al", "", 1000},
		{"records/al.", "", 1000},
		{"records/al", "records/al.pb", 1000},
		{"records/", "records/al0.pb", 2},
		{"images/", "", 1000},
		{"images/al/", "", 1000},
		{"images/al", "images/al/1.jpg", 1000},
		{"a", "", 1000},
		{"a/", "", 1000},
		{"a", "a/x", 1000},
		{"", "a/", 1000},
		{"", "a/y", 1000},
		{"", "records/bob.pb", 1000},
		{"", "zzz", 1000},
		{"", "0", 1000},
		{"zzz", "", 1000},
		{"recor", "", 1000},
		{"records/alice.pb", "", 1000},
	}
	for _, tt := range tests {
		var exp []string
		for _, k := range want {
			if len(exp) < tt.limit && len(k) >= len(tt.prefix) && k[:len(tt.prefix)] == tt.prefix && k > tt.startAfter {
				exp = append(exp, k)
			}
		}
		got, err := s.List(ctx, tt.prefix, tt.startAfter, tt.limit)
		if err != nil {
			t.Errorf("List(%q, %q, %d): %v", tt.prefix, tt.startAfter, tt.limit, err)
			continue
		}
		if !slices.Equal(got, exp) {
			t.Errorf("List(%q, %q, %d) =\n %q\nwant\n %q", tt.prefix, tt.startAfter, tt.limit, got, exp)
		}
	}
}

func testListPagination(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	var want []string
	for i := range 1203 {
		want = append(want, fmt.Sprintf("records/u%05d.pb", i))
	}
	put(t, s, "images/u1/x.jpg", []byte("other prefix"))
	put(t, s, "recordsX", []byte("not in the folder"))
	var wg sync.WaitGroup
	errs := make(chan error, len(want))
	sem := make(chan struct{}, 16)
	for _, k := range want {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := s.Put(ctx, k, []byte(k), faceauth.Cond{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, limit := range []int{7, 1000, 1203, 5000} {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > len(want)+1 {
				t.Fatalf("limit %d: listing does not end", limit)
			}
			page, err := s.List(ctx, "records/", after, limit)
			if err != nil {
				t.Fatalf("limit %d: %v", limit, err)
			}
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d keys", limit, len(page))
			}
			got = append(got, page...)
			if len(page) < limit {
				break
			}
			after = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: listed %d keys, want %d in order", limit, len(got), len(want))
		}
	}
}

func testCreateRace(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	const n = 16
	for round := range 3 {
		key := fmt.Sprintf("records/race%d.pb", round)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []int
			version string
		)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				v, err := s.Put(ctx, key, []byte("writer "+strconv.Itoa(i)), faceauth.Cond{IfNoneMatch: true})
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, i)
					version = v
					mu.Unlock()
				case errors.Is(err, faceauth.ErrPrecondition):
				default:
					t.Errorf("writer %d: %v", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d writers won the create race (%v), want exactly 1", round, len(winners), winners)
		}
		got, gv := get(t, s, key)
		if string(got) != "writer "+strconv.Itoa(winners[0]) || gv != version {
			t.Fatalf("round %d: stored %q (%q), winner was %d (%q)", round, got, gv, winners[0], version)
		}
	}
}

func testCASCounter(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	const (
		key = "meta/revision"
		n   = 50
	)
	put(t, s, key, []byte("0"))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		conflict int
		seen     = map[int]bool{}
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			for attempt := 0; ; attempt++ {
				if attempt > 10*n {
					t.Errorf("goroutine %d: no successful increment in %d attempts", i, attempt)
					return
				}
				data, v, err := s.Get(ctx, key)
				if err != nil {
					t.Errorf("goroutine %d: Get: %v", i, err)
					return
				}
				cur, err := strconv.Atoi(string(data))
				if err != nil {
					t.Errorf("goroutine %d: counter %q: %v", i, data, err)
					return
				}
				_, err = s.Put(ctx, key, []byte(strconv.Itoa(cur+1)), faceauth.Cond{IfMatch: v})
				if errors.Is(err, faceauth.ErrPrecondition) {
					mu.Lock()
					conflict++
					mu.Unlock()
					continue
				}
				if err != nil {
					t.Errorf("goroutine %d: Put: %v", i, err)
					return
				}
				mu.Lock()
				dup := seen[cur+1]
				seen[cur+1] = true
				mu.Unlock()
				if dup {
					t.Errorf("goroutine %d: value %d was written twice by successful compare-and-swaps", i, cur+1)
				}
				return
			}
		})
	}
	close(start)
	wg.Wait()
	got, _ := get(t, s, key)
	if string(got) != strconv.Itoa(n) {
		t.Fatalf("counter = %q after %d concurrent increments, want %d", got, n, n)
	}
	t.Logf("%d increments, %d lost races retried", n, conflict)
}

// testUpdate checks faceauth.Update, the one compare-and-swap loop every
// read-modify-write of the central service goes through.
func testUpdate(t *testing.T, s faceauth.Store) {
	ctx := t.Context()
	errAbort := errors.New("abort")
	tests := []struct {
		name    string
		initial []byte // nil: the key does not exist
		change  func(old []byte, exists bool) ([]byte, error)
		wantErr error
		want    []byte // nil: the key does not exist afterwards
	}{
		{"create", nil, func(old []byte, exists bool) ([]byte, error) {
			if exists || old != nil {
				return nil, fmt.Errorf("absent key seen as %q, exists %v", old, exists)
			}
			return []byte("a"), nil
		}, nil, []byte("a")},
		{"replace", []byte("a"), func(old []byte, exists bool) ([]byte, error) {
			return append(old, 'b'), nil
		}, nil, []byte("ab")},
		{"no change writes nothing", []byte("a"), func([]byte, bool) ([]byte, error) { return nil, nil }, nil, []byte("a")},
		{"no change on absent key creates nothing", nil, func([]byte, bool) ([]byte, error) { return nil, nil }, nil, nil},
		{"change error aborts", []byte("a"), func([]byte, bool) ([]byte, error) { return []byte("x"), errAbort }, errAbort, []byte("a")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("meta/update-%d", i)
			before := ""
			if tt.initial != nil {
				before = put(t, s, key, tt.initial)
			}
			ver, err := faceauth.Update(ctx, s, key, 3, tt.change)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Update: err = %v, want %v", err, tt.wantErr)
			}
			if tt.want == nil {
				wantNotFound(t, s, key)
				return
			}
			got, after := get(t, s, key)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("after Update: %q, want %q", got, tt.want)
			}
			if err == nil && ver != after {
				t.Errorf("Update returned version %q, the object is at %q", ver, after)
			}
			if !bytes.Equal(tt.want, tt.initial) && after == before {
				t.Errorf("version %q did not change with the content", after)
			}
			if bytes.Equal(tt.want, tt.initial) && after != before {
				t.Errorf("version changed from %q to %q although nothing was to be written", before, after)
			}
		})
	}

	t.Run("concurrent updaters lose nothing", func(t *testing.T) {
		const key, n = "meta/update-concurrent", 8
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, err := faceauth.Update(ctx, s, key, 400, func(old []byte, _ bool) ([]byte, error) {
					return append(slices.Clip(old), byte('a'+i)), nil
				})
				if err != nil {
					t.Errorf("updater %d: %v", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		got, _ := get(t, s, key)
		slices.Sort(got)
		if string(got) != "abcdefgh" {
			t.Fatalf("after %d concurrent updates the object holds %q, want every item once: %q", n, got, "abcdefgh")
		}
	})

	t.Run("gives up after the attempts", func(t *testing.T) {
		const key, attempts = "meta/update-busy", 3
		put(t, s, key, []byte("0"))
		calls := 0
		_, err := faceauth.Update(ctx, s, key, attempts, func(old []byte, _ bool) ([]byte, error) {
			calls++
			// Another writer changes the object after every read.
			put(t, s, key, []byte(strconv.Itoa(calls)))
			return []byte("lost"), nil
		})
		if !errors.Is(err, faceauth.ErrPrecondition) {
			t.Fatalf("Update against a writer that always wins: err = %v, want ErrPrecondition", err)
		}
		if calls != attempts {
			t.Errorf("change called %d times, want %d", calls, attempts)
		}
		if got, _ := get(t, s, key); string(got) != strconv.Itoa(attempts) {
			t.Errorf("object holds %q, want the other writer's %q", got, strconv.Itoa(attempts))
		}
	})
}

func testCanceled(t *testing.T, s faceauth.Store) {
	put(t, s, "records/alice.pb", []byte("a"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := s.Get(ctx, "records/alice.pb"); err == nil {
		t.Error("Get with a canceled context succeeded")
	}
	if _, err := s.Put(ctx, "records/bob.pb", []byte("b"), faceauth.Cond{}); err == nil {
		t.Error("Put with a canceled context succeeded")
	}
	wantNotFound(t, s, "records/bob.pb")
	if _, err := s.List(ctx, "", "", 10); err == nil {
		t.Error("List with a canceled context succeeded")
	}
}

func testPing(t *testing.T, s faceauth.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// modTimer is the optional method central's sweep uses to tell an old
// leftover image from one a register has just written.
type modTimer interface {
	ModTime(ctx context.Context, key string) (time.Time, error)
}

// A store that reports modification times reports the time of the last
// write, which every Put moves on, even one of the same bytes (a register
// rewrites its images so that the sweep sees them young).
func testModTime(t *testing.T, s faceauth.Store) {
	mt, ok := s.(modTimer)
	if !ok {
		t.Skipf("%T has no ModTime method: the sweep falls back to watching images across passes", s)
	}
	modTime := func(key string) time.Time {
		t.Helper()
		tm, err := mt.ModTime(t.Context(), key)
		if err != nil {
			t.Fatalf("ModTime(%q): %v", key, err)
		}
		return tm
	}
	wantMissing := func(key string) {
		t.Helper()
		tm, err := mt.ModTime(t.Context(), key)
		if !errors.Is(err, faceauth.ErrNotFound) {
			t.Fatalf("ModTime(%q) = %v, %v; want ErrNotFound", key, tm, err)
		}
	}
	wantMissing("images/alice/1.jpg")
	// Stores may keep whole seconds (S3), and file times may lag the
	// clock by a tick: allow a second or two either side.
	before := time.Now()
	put(t, s, "images/alice/1.jpg", []byte("1"))
	after := time.Now()
	first := modTime("images/alice/1.jpg")
	if first.Before(before.Add(-2*time.Second)) || first.After(after.Add(2*time.Second)) {
		t.Fatalf("ModTime after a Put = %v, want between %v and %v", first, before, after)
	}
	wantMissing("images/alice") // a folder of another key is no object
	if _, err := mt.ModTime(t.Context(), "../escape"); err == nil {
		t.Fatal("ModTime of an invalid key: no error")
	}
	for deadline := time.Now().Add(30 * time.Second); !modTime("images/alice/1.jpg").After(first); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("ModTime stayed %v across rewrites for 30 s", first)
		}
		put(t, s, "images/alice/1.jpg", []byte("1"))
	}
	if err := s.Delete(t.Context(), "images/alice/1.jpg"); err != nil {
		t.Fatal(err)
	}
	wantMissing("images/alice/1.jpg")
}
