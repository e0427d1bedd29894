package gallery

import (
	"slices"
	"testing"
)

// traces returns what of user id's references the gallery's set holds
// anywhere in its arrays, up to their capacity: the exact vectors and the
// quantised code rows that equal one of want's.
func traces(g *Gallery, want [][]float32, codes [][]int8) (vecs, codeRows int) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	s := g.cur
	for _, c := range s.vecs.chunks {
		c = c[:cap(c)]
		for i := 0; i+s.dims <= len(c); i += s.dims {
			for _, v := range want {
				if slices.Equal(c[i:i+s.dims], v) {
					vecs++
				}
			}
		}
	}
	all := s.codes[:cap(s.codes)]
	for i := 0; i+s.stride <= len(all); i += s.stride {
		for _, c := range codes {
			if slices.Equal(all[i:i+s.stride], c) {
				codeRows++
			}
		}
	}
	return vecs, codeRows
}

// codesOf returns the quantised rows the gallery holds for id.
func codesOf(g *Gallery, id string) [][]int8 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	s := g.cur
	var out [][]int8
	for r := s.users[s.byID[id]].first; r >= 0; r = s.next[r] {
		out = append(out, slices.Clone(s.codes[int(r)*s.stride:int(r+1)*s.stride]))
	}
	return out
}

// TestDeleteLeavesNoTrace: a deleted user's embeddings must not stay in
// the gallery's memory (the identify index of central and of every edge)
// until another user happens to overwrite them; an erasure erases.
func TestDeleteLeavesNoTrace(t *testing.T) {
	const dims = 64
	tests := []struct {
		name   string
		refs   int  // the erased user's references
		last   bool // enrolled last, so its rows are the slab's last
		update bool // replaced by an Upsert with new references instead of deleted
	}{
		{name: "last user, one reference", refs: 1, last: true},
		{name: "last user, three references", refs: 3, last: true},
		{name: "middle user, two references", refs: 2},
		{name: "references replaced by an upsert", refs: 3, last: true, update: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := newRand(uint64(100 + i))
			g := New(dims)
			for u := range 10 {
				if err := g.Upsert(uid(u), [][]float32{randUnit(rng, dims), randUnit(rng, dims)}); err != nil {
					t.Fatal(err)
				}
			}
			var erased [][]float32
			for range tt.refs {
				erased = append(erased, randUnit(rng, dims))
			}
			id := "erased"
			if err := g.Upsert(id, erased); err != nil {
				t.Fatal(err)
			}
			if !tt.last {
				if err := g.Upsert(uid(10), [][]float32{randUnit(rng, dims)}); err != nil {
					t.Fatal(err)
				}
			}
			codes := codesOf(g, id)
			if v, c := traces(g, erased, codes); v != tt.refs || c != tt.refs {
				t.Fatalf("before the erasure the set holds %d vectors and %d code rows of the user, want %d each", v, c, tt.refs)
			}
			if tt.update {
				if err := g.Upsert(id, [][]float32{randUnit(rng, dims)}); err != nil {
					t.Fatal(err)
				}
			} else {
				g.Delete(id)
			}
			if v, c := traces(g, erased, codes); v != 0 || c != 0 {
				t.Errorf("after the erasure the set still holds %d vectors and %d code rows of the erased references", v, c)
			}
		})
	}
}

// TestResetFailureLeavesNoTrace: a user that a rebuild refuses half-way
// (a bad second reference) leaves none of its first reference behind.
func TestResetFailureLeavesNoTrace(t *testing.T) {
	const dims = 32
	rng := newRand(110)
	first := randUnit(rng, dims)
	g := New(dims)
	err := g.Reset(func(add func(string, [][]float32) error) error {
		if err := add("good", [][]float32{randUnit(rng, dims)}); err != nil {
			return err
		}
		if err := add("bad", [][]float32{first, randUnit(rng, dims)[:dims-1]}); err == nil {
			t.Error("add accepted a reference of the wrong length")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := traces(g, [][]float32{first}, nil); v != 0 {
		t.Errorf("the refused user's first reference is still in the set (%d copies)", v)
	}
}
