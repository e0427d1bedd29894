package gallery

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/xplore/faceauth"
)

// dataset is users plus queries to search them with.
type dataset struct {
	m       model
	queries [][]float32
}

// Generators of test data. Each makes users with 1..refs references.
var generators = map[string]func(rng *rand.Rand, dims, users, refs int) dataset{
	// Independent random unit vectors; queries random or genuine probes.
	"random": func(rng *rand.Rand, dims, users, refs int) dataset {
		d := dataset{m: model{}}
		for i := range users {
			for range 1 + rng.IntN(refs) {
				d.m[uid(i)] = append(d.m[uid(i)], randUnit(rng, dims))
			}
		}
		for i := range 20 {
			if i%2 == 0 {
				d.queries = append(d.queries, randUnit(rng, dims))
			} else {
				d.queries = append(d.queries, near(rng, d.m[uid(rng.IntN(users))][0], 0.6))
			}
		}
		// Queries need not be unit vectors for the guarantee to hold.
		for _, f := range []float32{5, 1e-3} {
			q := near(rng, d.m[uid(rng.IntN(users))][0], 0.6)
			for i := range q {
				q[i] *= f
			}
			d.queries = append(d.queries, q)
		}
		return d
	},
	// Users around a few centres, like faces of similar people.
	"clustered": func(rng *rand.Rand, dims, users, refs int) dataset {
		d := dataset{m: model{}}
		centres := make([][]float32, 8)
		for i := range centres {
			centres[i] = randUnit(rng, dims)
		}
		for i := range users {
			c := centres[rng.IntN(len(centres))]
			for range 1 + rng.IntN(refs) {
				d.m[uid(i)] = append(d.m[uid(i)], near(rng, c, 0.8))
			}
		}
		for range 20 {
			d.queries = append(d.queries, near(rng, d.m[uid(rng.IntN(users))][0], 0.5))
		}
		return d
	},
	// Half the users score within 1e-4 of the best against the queries:
	// far below the quantisation error, so only the re-rank orders them.
	"near-ties": func(rng *rand.Rand, dims, users, refs int) dataset {
		d := dataset{m: model{}}
		base := randUnit(rng, dims)
		for i := range users {
			for range 1 + rng.IntN(refs) {
				v := randUnit(rng, dims)
				if i%2 == 0 {
					// cos(base, v) ≈ 1 − σ²/2 ≥ 1 − 1e-4.
					v = near(rng, base, 0.014*rng.Float64())
				}
				d.m[uid(i)] = append(d.m[uid(i)], v)
			}
		}
		d.queries = append(d.queries, base)
		for range 9 {
			d.queries = append(d.queries, near(rng, base, 0.003))
		}
		return d
	},
	// Groups of users with identical vectors: exact ties, ordered by id.
	"exact-ties": func(rng *rand.Rand, dims, users, refs int) dataset {
		d := dataset{m: model{}}
		shared := make([][]float32, 5)
		for i := range shared {
			shared[i] = randUnit(rng, dims)
		}
		for i := range users {
			d.m[uid(i)] = [][]float32{shared[i%len(shared)]}
		}
		for i := range 10 {
			d.queries = append(d.queries, near(rng, shared[i%len(shared)], 0.3))
		}
		return d
	},
	// One large value and small noise: the scale is set by the spike, so
	// the small values quantise coarsely (the worst case for the bound).
	"spiky": func(rng *rand.Rand, dims, users, refs int) dataset {
		d := dataset{m: model{}}
		for i := range users {
			for range 1 + rng.IntN(refs) {
				v := make([]float32, dims)
				for j := range v {
					v[j] = float32(rng.NormFloat64() * 0.01)
				}
				v[rng.IntN(dims)] += 1
				d.m[uid(i)] = append(d.m[uid(i)], normalize(v))
			}
		}
		for range 10 {
			d.queries = append(d.queries, near(rng, d.m[uid(rng.IntN(users))][0], 0.2))
		}
		return d
	},
}

func TestSearchMatchesExact(t *testing.T) {
	tests := []struct {
		gen               string
		dims, users, refs int
	}{
		{"random", 512, 3000, 1},
		{"random", 100, 1000, 4}, // stride padding, multi-reference
		{"clustered", 512, 2000, 1},
		{"clustered", 64, 1000, 3},
		{"near-ties", 512, 2000, 1},
		{"near-ties", 128, 1000, 3},
		{"exact-ties", 32, 200, 1},
		{"spiky", 256, 1000, 2},
		{"random", 1, 50, 1}, // every score is ±1
		{"random", 512, 1, 1},
	}
	for i, tt := range tests {
		if raceEnabled {
			tt.users = max(tt.users/10, 1)
		}
		rng := newRand(uint64(i))
		d := generators[tt.gen](rng, tt.dims, tt.users, tt.refs)
		g := d.m.gallery(tt.dims)
		for qi, q := range d.queries {
			all := d.m.search(q, len(d.m), float32(math.Inf(-1)))
			for _, k := range []int{1, 2, 10, 50, tt.users + 3} {
				for _, minScore := range []float32{float32(math.Inf(-1)), 0, 0.3, 0.9999} {
					want := cut(all, k, minScore)
					got, n := g.search(q, k, minScore)
					if !sameMatches(got, want) {
						t.Fatalf("%s dims=%d users=%d refs=%d: query %d k=%d min=%v:\n got %v\nwant %v",
							tt.gen, tt.dims, tt.users, tt.refs, qi, k, minScore, got, want)
					}
					if n > len(d.m) {
						t.Fatalf("re-ranked %d users of %d", n, len(d.m))
					}
				}
			}
			if ex := g.SearchExact(q, 10, 0); !sameMatches(ex, cut(all, 10, 0)) {
				t.Fatalf("%s: SearchExact query %d:\n got %v\nwant %v", tt.gen, qi, ex, cut(all, 10, 0))
			}
		}
	}
}

// cut is the first k matches of the full ranking all that reach minScore.
func cut(all []faceauth.Match, k int, minScore float32) []faceauth.Match {
	var out []faceauth.Match
	for _, m := range all {
		if len(out) == k || m.Similarity < minScore {
			break
		}
		out = append(out, m)
	}
	return out
}

// The int8 scores alone must get near-ties wrong, or the test above could
// not tell whether the re-rank works.
func TestNearTiesNeedRerank(t *testing.T) {
	rng := newRand(7)
	d := generators["near-ties"](rng, 512, 2000, 1)
	g := d.m.gallery(512)
	wrong := 0
	for _, q := range d.queries {
		if approxTop1(g, q) != d.m.search(q, 1, -1)[0].UserID {
			wrong++
		}
	}
	if wrong == 0 {
		t.Fatal("the approximate top-1 was right for every near-tie query; the data set does not test the re-rank")
	}
	t.Logf("approximate top-1 wrong for %d of %d queries", wrong, len(d.queries))
}

// approxTop1 is the user with the best int8 score, without re-ranking.
func approxTop1(g *Gallery, q []float32) string {
	s := g.cur
	cq := make([]int8, s.stride)
	qz, _ := quantize(cq, q)
	dots := make([]int32, s.rows())
	scanDots(cq, s.codes, s.stride, dots)
	b := newBounds(qz)
	best, arg := math.Inf(-1), 0
	for r, d := range dots {
		if a, _ := b.row(d, s.scale[r], s.errA[r], s.errB[r]); a > best {
			best, arg = a, r
		}
	}
	return s.users[s.owner[arg]].id
}

// TestBoundHolds checks the per-row interval directly: the exact score of
// every row lies within [a−e, a+e], and the bound is not absurdly loose.
func TestBoundHolds(t *testing.T) {
	for _, gen := range []string{"random", "clustered", "near-ties", "spiky"} {
		for _, dims := range []int{3, 100, 512} {
			rng := newRand(uint64(dims))
			d := generators[gen](rng, dims, 300, 2)
			g := d.m.gallery(dims)
			s := g.cur
			cq := make([]int8, s.stride)
			dots := make([]int32, s.rows())
			worst := 0.0
			for _, q := range append(d.queries, randUnit(rng, dims)) {
				qz, _ := quantize(cq, q)
				scanDots(cq, s.codes, s.stride, dots)
				b := newBounds(qz)
				for r, dt := range dots {
					exact := float64(dot(q, s.vecs.row(r)))
					a, e := b.row(dt, s.scale[r], s.errA[r], s.errB[r])
					if math.Abs(exact-a) > e {
						t.Fatalf("%s dims=%d row %d: exact %v approx %v, bound %v", gen, dims, r, exact, a, e)
					}
					worst = max(worst, math.Abs(exact-a)/e)
				}
			}
			if dims >= 100 && worst < 1e-3 {
				t.Errorf("%s dims=%d: the error never reached 0.1%% of the bound; is the bound or the scan wrong?", gen, dims)
			}
			t.Logf("%s dims=%d: largest error/bound %.3f", gen, dims, worst)
		}
	}
}

func TestMultiReferenceScoresBest(t *testing.T) {
	rng := newRand(1)
	const dims = 64
	a, b, c := randUnit(rng, dims), randUnit(rng, dims), randUnit(rng, dims)
	g := New(dims)
	if err := g.Upsert("alice", [][]float32{a, b, c}); err != nil {
		t.Fatal(err)
	}
	if err := g.Upsert("bob", [][]float32{randUnit(rng, dims)}); err != nil {
		t.Fatal(err)
	}
	for i, ref := range [][]float32{a, b, c} {
		q := near(rng, ref, 0.3)
		want := max(dot(q, a), dot(q, b), dot(q, c))
		if got, ok := g.Verify("alice", q); !ok || got != want || got != dot(q, ref) {
			t.Errorf("ref %d: Verify = %v, %v; want %v (the score of ref %d)", i, got, ok, want, i)
		}
		m := g.Search(q, 1, 0.5)
		if len(m) != 1 || m[0].UserID != "alice" || m[0].Similarity != want {
			t.Errorf("ref %d: Search = %v; want alice with %v", i, m, want)
		}
	}
}

func TestUpsertReplaces(t *testing.T) {
	rng := newRand(2)
	const dims = 96
	m := model{}
	for i := range 50 {
		m[uid(i)] = [][]float32{randUnit(rng, dims)}
	}
	g := m.gallery(dims)
	// Replace with more, with fewer, and with as many references, checking
	// that the old vectors are gone and nothing else moved.
	for _, n := range []int{3, 1, 1, 4, 2} {
		id := uid(rng.IntN(50))
		old := m[id]
		m[id] = nil
		for range n {
			m[id] = append(m[id], randUnit(rng, dims))
		}
		if err := g.Upsert(id, m[id]); err != nil {
			t.Fatal(err)
		}
		if g.Len() != 50 {
			t.Fatalf("Len = %d after replacing, want 50", g.Len())
		}
		if got, _ := g.Verify(id, old[0]); got > 0.9 {
			t.Errorf("the replaced vector still scores %v", got)
		}
		if top := g.Search(m[id][n-1], 1, 0); len(top) != 1 || top[0].UserID != id {
			t.Errorf("Search for the new vector = %v, want %s", top, id)
		}
		checkAgainst(t, g, m, rng, dims)
	}
}

func TestDelete(t *testing.T) {
	rng := newRand(3)
	const dims = 48
	m := model{}
	for i := range 40 {
		for range 1 + i%3 {
			m[uid(i)] = append(m[uid(i)], randUnit(rng, dims))
		}
	}
	g := m.gallery(dims)
	for _, i := range []int{0, 39, 17, 17, 1000, 5} { // first, last, middle, twice, unknown
		v := m[uid(i)]
		delete(m, uid(i))
		g.Delete(uid(i))
		if g.Has(uid(i)) {
			t.Errorf("Has(%s) after Delete", uid(i))
		}
		if _, ok := g.Verify(uid(i), randUnit(rng, dims)); ok {
			t.Errorf("Verify(%s) ok after Delete", uid(i))
		}
		if v != nil {
			if top := g.Search(v[0], 1, -1); len(top) == 1 && top[0].UserID == uid(i) {
				t.Errorf("Search still finds %s", uid(i))
			}
		}
		if g.Len() != len(m) {
			t.Errorf("Len = %d, want %d", g.Len(), len(m))
		}
		checkAgainst(t, g, m, rng, dims)
	}
}

// TestRandomOperations runs random upserts and deletes against the model,
// which exercises the slab's swap-remove bookkeeping.
func TestRandomOperations(t *testing.T) {
	rng := newRand(4)
	const dims = 40
	g, m := New(dims), model{}
	for step := range 2000 {
		id := uid(rng.IntN(60))
		if rng.IntN(3) == 0 {
			g.Delete(id)
			delete(m, id)
		} else {
			var vs [][]float32
			for range 1 + rng.IntN(4) {
				vs = append(vs, randUnit(rng, dims))
			}
			if err := g.Upsert(id, vs); err != nil {
				t.Fatal(err)
			}
			m[id] = vs
		}
		if step%50 == 0 {
			checkAgainst(t, g, m, rng, dims)
			checkInvariants(t, g.cur)
		}
	}
}

// checkAgainst compares Len, Has, Verify and Search with the model.
func checkAgainst(t *testing.T, g *Gallery, m model, rng *rand.Rand, dims int) {
	t.Helper()
	if g.Len() != len(m) {
		t.Fatalf("Len = %d, want %d", g.Len(), len(m))
	}
	for id, vs := range m {
		if !g.Has(id) {
			t.Fatalf("Has(%s) = false", id)
		}
		q := near(rng, vs[0], 0.5)
		if got, ok := g.Verify(id, q); !ok || got != m.score(id, q) {
			t.Fatalf("Verify(%s) = %v, %v; want %v", id, got, ok, m.score(id, q))
		}
	}
	for range 5 {
		q := randUnit(rng, dims)
		for _, k := range []int{1, 5} {
			if got, want := g.Search(q, k, -1), m.search(q, k, -1); !sameMatches(got, want) {
				t.Fatalf("Search k=%d:\n got %v\nwant %v", k, got, want)
			}
		}
	}
}

// checkInvariants checks the slab's bookkeeping: every row is on the list
// of exactly the user that owns it, and the codes match the stored vectors.
func checkInvariants(t *testing.T, s *set) {
	t.Helper()
	n := 0
	seen := make([]bool, s.rows())
	for slot, u := range s.users {
		if s.byID[u.id] != int32(slot) {
			t.Fatalf("byID[%s] = %d, want %d", u.id, s.byID[u.id], slot)
		}
		listed := 0
		for r := u.first; r >= 0; r = s.next[r] {
			if int(r) >= s.rows() || seen[r] {
				t.Fatalf("user %s lists row %d, out of range or listed before", u.id, r)
			}
			seen[r] = true
			if s.owner[r] != int32(slot) {
				t.Fatalf("row %d owner %d, want %d", r, s.owner[r], slot)
			}
			want := make([]int8, s.stride)
			qz, _ := quantize(want, s.vecs.row(int(r)))
			got := s.codes[int(r)*s.stride : int(r+1)*s.stride]
			if string(int8Bytes(got)) != string(int8Bytes(want)) || qz.scale != s.scale[r] {
				t.Fatalf("row %d codes do not match user %s reference %d", r, u.id, listed)
			}
			listed++
		}
		if listed != int(u.n) || listed == 0 {
			t.Fatalf("user %s lists %d rows, counts %d", u.id, listed, u.n)
		}
		n += listed
	}
	if n != s.rows() || len(s.codes) != n*s.stride || len(s.byID) != len(s.users) ||
		len(s.owner) != n || len(s.next) != n || s.vecs.room() < n {
		t.Fatalf("rows %d, listed %d, codes %d, byID %d, users %d, vecs room %d", s.rows(), n, len(s.codes), len(s.byID), len(s.users), s.vecs.room())
	}
}

func int8Bytes(s []int8) []byte {
	b := make([]byte, len(s))
	for i, x := range s {
		b[i] = byte(x)
	}
	return b
}

func TestUpsertErrors(t *testing.T) {
	const dims = 8
	rng := newRand(5)
	good := randUnit(rng, dims)
	nan := randUnit(rng, dims)
	nan[3] = float32(math.NaN())
	inf := randUnit(rng, dims)
	inf[0] = float32(math.Inf(1))
	long := randUnit(rng, dims)
	for i := range long {
		long[i] *= 2
	}
	tests := []struct {
		name    string
		id      string
		vectors [][]float32
		code    string
	}{
		{"short", "alice", [][]float32{good, good[:dims-1]}, "bad_embedding"},
		{"long", "alice", [][]float32{append(good[:dims:dims], 0)}, "bad_embedding"},
		{"none", "alice", nil, "no_embeddings"},
		{"NaN", "alice", [][]float32{nan}, "bad_embedding"},
		{"Inf", "alice", [][]float32{inf}, "bad_embedding"},
		{"zero", "alice", [][]float32{make([]float32, dims)}, "bad_embedding"},
		{"not normalised", "alice", [][]float32{long}, "bad_embedding"},
		{"empty id", "", [][]float32{good}, "invalid_user_id"},
		{"bad id", "../x", [][]float32{good}, "invalid_user_id"},
	}
	g := New(dims)
	old := randUnit(rng, dims)
	if err := g.Upsert("alice", [][]float32{old}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		err := g.Upsert(tt.id, tt.vectors)
		var fe *faceauth.Error
		if !errors.As(err, &fe) || fe.Kind != faceauth.KindInvalid || fe.Code != tt.code {
			t.Errorf("%s: err = %v, want kind invalid, code %s", tt.name, err, tt.code)
		}
		// The gallery is unchanged.
		if got, ok := g.Verify("alice", old); !ok || got != dot(old, old) || g.Len() != 1 {
			t.Errorf("%s: alice changed after a failed upsert (score %v, %v, len %d)", tt.name, got, ok, g.Len())
		}
	}
}

func TestBadQueriesMatchNothing(t *testing.T) {
	const dims = 16
	rng := newRand(6)
	g := New(dims)
	v := randUnit(rng, dims)
	if err := g.Upsert("alice", [][]float32{v}); err != nil {
		t.Fatal(err)
	}
	nan := append([]float32(nil), v...)
	nan[0] = float32(math.NaN())
	inf := append([]float32(nil), v...)
	inf[1] = float32(math.Inf(-1))
	huge := append([]float32(nil), v...)
	huge[2] = 1e30 // its products would overflow float32
	for name, q := range map[string][]float32{
		"short": v[:dims-1], "long": append(v[:dims:dims], 0), "nil": nil, "NaN": nan, "Inf": inf, "huge": huge,
	} {
		if m := g.Search(q, 1, -1); m != nil {
			t.Errorf("%s: Search = %v, want nil", name, m)
		}
		if m := g.SearchExact(q, 1, -1); m != nil {
			t.Errorf("%s: SearchExact = %v, want nil", name, m)
		}
		if s, ok := g.Verify("alice", q); ok {
			t.Errorf("%s: Verify = %v, true; want false", name, s)
		}
	}
	for _, k := range []int{0, -1} {
		if m := g.Search(v, k, -1); m != nil {
			t.Errorf("k=%d: Search = %v, want nil", k, m)
		}
	}
	if m := New(dims).Search(v, 1, -1); m != nil {
		t.Errorf("empty gallery: Search = %v", m)
	}
	if _, ok := g.Verify("bob", v); ok {
		t.Error("Verify of an unknown user is ok")
	}
}

func TestNewPanicsOnBadDims(t *testing.T) {
	for _, dims := range []int{0, -1, MaxDims + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%d) did not panic", dims)
				}
			}()
			New(dims)
		}()
	}
}
