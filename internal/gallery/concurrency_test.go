package gallery

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xplore/faceauth"
)

// TestConcurrentSearchWhileWriting runs searchers while writers upsert and
// delete other users; run it with -race. Stable users never change, so a
// probe of one must always find it first with its exact score, whatever
// the writers are doing.
func TestConcurrentSearchWhileWriting(t *testing.T) {
	const dims, stable, churn = 64, 200, 100
	rng := newRand(9)
	g := New(dims)
	m := model{}
	for i := range stable {
		m[uid(i)] = [][]float32{randUnit(rng, dims)}
		if err := g.Upsert(uid(i), m[uid(i)]); err != nil {
			t.Fatal(err)
		}
	}
	probes := make([][]float32, stable)
	for i := range probes {
		probes[i] = near(rng, m[uid(i)][0], 0.1)
	}
	// Churn vectors are random; they cannot outscore a probe's own user
	// (cosine ≈ 0.995) except by a miracle the test would report.
	churnVecs := make([][]float32, 64)
	for i := range churnVecs {
		churnVecs[i] = randUnit(rng, dims)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newRand(uint64(100 + w))
			for n := 0; !stop.Load(); n++ {
				id := fmt.Sprintf("churn%d", r.IntN(churn))
				if r.IntN(3) == 0 {
					g.Delete(id)
					continue
				}
				var vs [][]float32
				for range 1 + r.IntN(3) {
					vs = append(vs, churnVecs[r.IntN(len(churnVecs))])
				}
				if err := g.Upsert(id, vs); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var searches atomic.Int64
	for s := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newRand(uint64(200 + s))
			for range 300 {
				i := r.IntN(stable)
				id, q := uid(i), probes[i]
				want := m.score(id, q)
				top := g.Search(q, 3, 0.9)
				if len(top) != 1 || top[0].UserID != id || top[0].Similarity != want {
					errc <- fmt.Errorf("Search(probe of %s) = %v, want only %s with %v", id, top, id, want)
					return
				}
				if got, ok := g.Verify(id, q); !ok || got != want {
					errc <- fmt.Errorf("Verify(%s) = %v, %v; want %v", id, got, ok, want)
					return
				}
				if n := g.Len(); n < stable || n > stable+churn {
					errc <- fmt.Errorf("Len = %d", n)
					return
				}
				searches.Add(1)
			}
		}()
	}
	// Stop the writers once the searchers are done.
	go func() {
		for searches.Load() < 4*300 && len(errc) == 0 {
			runtime.Gosched()
		}
		stop.Store(true)
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	checkInvariants(t, g.cur)
}

// TestResetIsAtomic checks that a search during Reset sees the whole old
// set until the new one is complete, and the whole new set after.
func TestResetIsAtomic(t *testing.T) {
	const dims, users = 32, 300
	rng := newRand(10)
	mk := func(prefix string) model {
		m := model{}
		for i := range users {
			m[fmt.Sprintf("%s%04d", prefix, i)] = [][]float32{randUnit(rng, dims)}
		}
		return m
	}
	oldM, newM := mk("old"), mk("new")
	g := oldM.gallery(dims)
	q := randUnit(rng, dims)

	// generation tells which set a full result came from, failing on a mix.
	generation := func() (string, error) {
		all := g.Search(q, 2*users, -1)
		if len(all) != users {
			return "", fmt.Errorf("search saw %d users, want %d", len(all), users)
		}
		prefix := all[0].UserID[:3]
		for _, m := range all {
			if !strings.HasPrefix(m.UserID, prefix) {
				return "", fmt.Errorf("search mixed %s and %s users", prefix, m.UserID)
			}
		}
		return prefix, nil
	}

	midway := make(chan struct{})
	resume := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- g.Reset(func(add func(string, [][]float32) error) error {
			i := 0
			for id, vs := range newM {
				if i == users/2 {
					close(midway)
					<-resume // searches run now, with half the new set built
				}
				if err := add(id, vs); err != nil {
					return err
				}
				i++
			}
			return nil
		})
	}()
	<-midway
	for range 20 {
		gen, err := generation()
		if err != nil {
			t.Fatal(err)
		}
		if gen != "old" || g.Len() != users || !g.Has("old0000") || g.Has("new0000") {
			t.Fatalf("during Reset: saw %q set", gen)
		}
	}
	// Searches keep running while Reset finishes and swaps.
	var wg sync.WaitGroup
	var sawNew atomic.Bool
	errc := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !sawNew.Load() {
				gen, err := generation()
				if err != nil {
					errc <- err
					return
				}
				if gen == "new" {
					sawNew.Store(true)
				}
			}
		}()
	}
	close(resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if got, want := g.Search(q, 5, -1), newM.search(q, 5, -1); !sameMatches(got, want) {
		t.Fatalf("after Reset: %v, want %v", got, want)
	}
	checkInvariants(t, g.cur)
}

func TestResetFailureKeepsOldSet(t *testing.T) {
	const dims = 16
	rng := newRand(11)
	m := model{"alice": {randUnit(rng, dims)}, "bob": {randUnit(rng, dims)}}
	boom := errors.New("store unreachable")
	tests := []struct {
		name string
		load func(add func(string, [][]float32) error) error
		kind faceauth.Kind
		is   error
	}{
		{"load fails", func(add func(string, [][]float32) error) error {
			if err := add("carol", [][]float32{randUnit(rng, dims)}); err != nil {
				return err
			}
			return boom
		}, faceauth.KindInternal, boom},
		{"duplicate", func(add func(string, [][]float32) error) error {
			v := [][]float32{randUnit(rng, dims)}
			if err := add("carol", v); err != nil {
				return err
			}
			return add("carol", v)
		}, faceauth.KindInvalid, nil},
		{"wrong dims", func(add func(string, [][]float32) error) error {
			return add("carol", [][]float32{randUnit(rng, dims+1)})
		}, faceauth.KindInvalid, nil},
	}
	for _, tt := range tests {
		g := m.gallery(dims)
		err := g.Reset(tt.load)
		if err == nil || faceauth.KindOf(err) != tt.kind || (tt.is != nil && !errors.Is(err, tt.is)) {
			t.Errorf("%s: err = %v (kind %v), want kind %v", tt.name, err, faceauth.KindOf(err), tt.kind)
		}
		if g.Len() != 2 || g.Has("carol") || !g.Has("alice") {
			t.Errorf("%s: the gallery changed after a failed Reset", tt.name)
		}
	}
	// add kept past load's return refuses to touch the live set.
	g := m.gallery(dims)
	var kept func(string, [][]float32) error
	if err := g.Reset(func(add func(string, [][]float32) error) error {
		kept = add
		return add("carol", [][]float32{randUnit(rng, dims)})
	}); err != nil {
		t.Fatal(err)
	}
	if err := kept("dave", [][]float32{randUnit(rng, dims)}); err == nil || g.Has("dave") || g.Len() != 1 {
		t.Errorf("add after Reset returned: err %v, Len %d", err, g.Len())
	}
	// And a successful Reset to nothing empties it.
	g = m.gallery(dims)
	if err := g.Reset(func(func(string, [][]float32) error) error { return nil }); err != nil || g.Len() != 0 {
		t.Errorf("empty Reset: err %v, Len %d", err, g.Len())
	}
}
