package gallery

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/xplore/faceauth"
)

// TestResetSized loads the same users with hints that are right, too
// small, too large and missing, then upserts and deletes: the content
// must be the same whatever the hint, and a too large hint must not leave
// its room behind. dims 2048 makes vecs chunks of 128 rows, so the loads
// and the upserts after them cross chunk boundaries.
func TestResetSized(t *testing.T) {
	const dims, users = 2048, 300
	rng := newRand(13)
	m := model{}
	rows := 0
	for i := range users {
		for range 1 + i%3 {
			m[uid(i)] = append(m[uid(i)], randUnit(rng, dims))
			rows++
		}
	}
	tests := []struct {
		name string
		hint SizeHint
	}{
		{"none", SizeHint{}},
		{"exact", SizeHint{Users: users, Vectors: rows}},
		{"users only", SizeHint{Users: users}},
		{"too small", SizeHint{Users: 10, Vectors: 10}},
		{"too large", SizeHint{Users: 100 * users, Vectors: 100 * rows}},
		{"negative", SizeHint{Users: -1, Vectors: -5}},
	}
	for _, tt := range tests {
		g := New(dims)
		err := g.ResetSized(tt.hint, func(add func(string, [][]float32) error) error {
			for i := range users {
				if err := add(uid(i), m[uid(i)]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		s := g.cur
		checkInvariants(t, s)
		checkAgainst(t, g, m, rng, dims)
		if room := s.metaRoom(); room > rows+rows/4+64 {
			t.Errorf("%s: %d rows keep room for %d", tt.name, rows, room)
		}
		if room := s.vecs.room(); room >= rows+1<<s.vecs.shift {
			t.Errorf("%s: %d rows keep vecs room for %d, a chunk or more too many", tt.name, rows, room)
		}
		// Grow and shrink it from there.
		mm := model{}
		for id, vs := range m {
			mm[id] = vs
		}
		for step := range 400 {
			id := uid(rng.IntN(users + 200))
			if rng.IntN(4) == 0 {
				g.Delete(id)
				delete(mm, id)
				continue
			}
			var vs [][]float32
			for range 1 + rng.IntN(3) {
				vs = append(vs, randUnit(rng, dims))
			}
			if err := g.Upsert(id, vs); err != nil {
				t.Fatal(err)
			}
			mm[id] = vs
			if step%100 == 99 {
				checkInvariants(t, g.cur)
				checkAgainst(t, g, mm, rng, dims)
			}
		}
	}
}

// TestResetAddCopies reuses one buffer for every user, as edged's loader
// does: add must have copied each user's values before the next overwrite
// them.
func TestResetAddCopies(t *testing.T) {
	const dims, users = 64, 50
	rng := newRand(14)
	m := model{}
	buf := make([]float32, 2*dims)
	vecs := [][]float32{buf[:dims], buf[dims:]}
	g := New(dims)
	err := g.ResetSized(SizeHint{Users: users}, func(add func(string, [][]float32) error) error {
		for i := range users {
			n := 1 + i%2
			for j := range n {
				copy(vecs[j], randUnit(rng, dims))
				m[uid(i)] = append(m[uid(i)], append([]float32(nil), vecs[j]...))
			}
			if err := add(uid(i), vecs[:n]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = float32(math.NaN()) // after Reset too: nothing may still point here
	}
	checkInvariants(t, g.cur)
	checkAgainst(t, g, m, rng, dims)
}

// TestResetLeavesOutBadUsers is the central index's use: load logs a
// user add refuses and goes on. A user refused at its second reference,
// after its first was written, must leave nothing behind.
func TestResetLeavesOutBadUsers(t *testing.T) {
	const dims = 32
	rng := newRand(15)
	good := func() []float32 { return randUnit(rng, dims) }
	nan := good()
	nan[dims-1] = float32(math.NaN())
	type entry struct {
		id   string
		vecs [][]float32
		code string // "" when add accepts it
	}
	var entries []entry
	for i := range 40 {
		id := fmt.Sprintf("u%02d", i)
		switch i % 8 {
		case 1:
			entries = append(entries, entry{id, [][]float32{good(), good(), nan}, "bad_embedding"})
		case 3:
			entries = append(entries, entry{id, [][]float32{good(), good()[:dims-1]}, "bad_embedding"})
		case 5:
			entries = append(entries, entry{id, [][]float32{good()}, ""}, entry{id, [][]float32{good()}, "duplicate_user"})
		case 6:
			entries = append(entries, entry{"-" + id, [][]float32{good()}, "invalid_user_id"})
		case 7:
			entries = append(entries, entry{id, nil, "no_embeddings"})
		default:
			entries = append(entries, entry{id, [][]float32{good(), good()}, ""})
		}
	}
	for _, hint := range []SizeHint{{}, {Users: len(entries), Vectors: 3 * len(entries)}} {
		m := model{}
		g := New(dims)
		err := g.ResetSized(hint, func(add func(string, [][]float32) error) error {
			for _, e := range entries {
				err := add(e.id, e.vecs)
				var fe *faceauth.Error
				switch {
				case e.code == "" && err != nil:
					return err
				case e.code == "":
					m[e.id] = e.vecs
				case !errors.As(err, &fe) || fe.Kind != faceauth.KindInvalid || fe.Code != e.code:
					return fmt.Errorf("add(%s) = %v, want code %s", e.id, err, e.code)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("hint %+v: %v", hint, err)
		}
		checkInvariants(t, g.cur)
		checkAgainst(t, g, m, rng, dims)
	}
}
