package gallery

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/xplore/faceauth"
)

// MaxDims is the largest supported embedding size: the int8 scan sums
// products of up to 127·127 in int32 lanes.
const MaxDims = 1 << 16

// Gallery is the set of enrolled users and their reference embeddings. It
// is safe for concurrent use by many searchers and occasional writers.
type Gallery struct {
	dims int

	// wmu serialises writers (Upsert, Delete, Reset). A writer prepares its
	// work (quantising, growing the slab) holding only wmu, while searches
	// go on, and then holds mu for the short in-place change.
	wmu sync.Mutex
	// mu guards cur and the set it points to: searches hold it for reading
	// during one scan, writers hold it for writing only while they change
	// a few rows or swap in a new set.
	mu  sync.RWMutex
	cur *set

	scratch sync.Pool // *scratch
}

// scratch is a search's working memory, reused between searches.
type scratch struct {
	q    []int8
	dots []int32
	lo   []float64 // per user, for large k
	heap []userLo  // for small k
	cand []int32
}

// New returns an empty gallery for embeddings of dims values. It panics
// when dims is not in [1, MaxDims], a programming error.
func New(dims int) *Gallery {
	if dims < 1 || dims > MaxDims {
		panic(fmt.Sprintf("gallery.New: dims %d not in [1, %d]", dims, MaxDims))
	}
	return &Gallery{dims: dims, cur: newSet(dims)}
}

// Dims returns the number of values in each embedding.
func (g *Gallery) Dims() int { return g.dims }

// Upsert sets the user's reference embeddings, replacing any earlier ones.
// Each vector must have Dims values, be finite and be L2-normalised
// (within 1e-3); at least one is required. On error the gallery is
// unchanged. The vectors are copied.
func (g *Gallery) Upsert(userID string, vectors [][]float32) error {
	e, err := encode(g.dims, userID, vectors)
	if err != nil {
		return err
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	s := g.cur // only writers change cur, and they hold wmu
	old := 0
	if slot, ok := s.byID[userID]; ok {
		old = int(s.users[slot].n)
	}
	m := s.metaRoom()
	b := s.grown(s.rows()-old+len(e.scale), max(m+m/4, 64)) // grow by 1.25: the slab is the big allocation
	g.mu.Lock()
	s.adopt(b)
	s.remove(userID)
	s.add(userID, e)
	g.mu.Unlock()
	return nil
}

// Delete removes the user. Deleting an unknown user does nothing.
func (g *Gallery) Delete(userID string) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.mu.Lock()
	g.cur.remove(userID)
	g.mu.Unlock()
}

// Has reports whether the user is enrolled.
func (g *Gallery) Has(userID string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.cur.byID[userID]
	return ok
}

// Len returns the number of users.
func (g *Gallery) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.cur.users)
}

// Reset replaces the whole gallery with the users that load adds, for a
// bulk (re)build. The new set is built off to the side and swapped in at the
// end, so searches see either the old set or the complete new one, never a
// part. add checks a user's references as Upsert does and copies them: the
// caller may reuse the slices once add returns. If load returns an error,
// or add does and load passes it on (a bad vector, a user added twice), the
// gallery keeps its old content and Reset returns that error; a user whose
// add failed is left out, so load may also log it and go on. add must be
// called only from load, before it returns, and not concurrently. Upsert
// and Delete wait until Reset is done, so load must not call them; searches
// go on, on the old set.
func (g *Gallery) Reset(load func(add func(userID string, vectors [][]float32) error) error) error {
	return g.ResetSized(SizeHint{}, load)
}

// SizeHint is how much a bulk load expects to add, so that ResetSized can
// allocate the new set once. It is only a hint: the load may add more (the
// set then grows as it would without one) or fewer (the room left over is
// given back at the end, but for the id map). Zero means unknown.
type SizeHint struct {
	Users   int // the users add will be called for
	Vectors int // their reference embeddings in all; zero: one per user
}

// maxHintRows caps a hint at what the set can index (int32 rows).
const maxHintRows = math.MaxInt32

// ResetSized is Reset for a load whose size is known ahead, such as a
// count kept with the stored set: it sizes the new set from hint instead
// of growing it as users arrive, which saves copying and memory.
func (g *Gallery) ResetSized(hint SizeHint, load func(add func(userID string, vectors [][]float32) error) error) error {
	users := min(max(hint.Users, 0), maxHintRows)
	rows := min(max(hint.Vectors, 0), maxHintRows)
	if rows == 0 {
		rows = users
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	ns := newSet(g.dims)
	if users > 0 {
		ns.users = make([]user, 0, users)
		ns.byID = make(map[string]int32, users)
	}
	if rows > 0 {
		ns.adopt(ns.grown(1, rows)) // the per-row arrays sized for rows; vecs grow chunk by chunk
	}
	stride, gam := ns.stride, gamma(g.dims)
	done := false
	add := func(userID string, vectors [][]float32) error {
		if done { // ns is live now: changing it here would race with searches
			return faceauth.E(faceauth.KindInternal, "reset_done", "The gallery rebuild is over; add was called after load returned.")
		}
		if _, dup := ns.byID[userID]; dup {
			return faceauth.E(faceauth.KindInvalid, "duplicate_user", "User %q was added twice.", userID)
		}
		if err := checkUser(userID, vectors); err != nil {
			return err
		}
		// ns is private until the swap: write straight into its arrays,
		// growing them geometrically, and cut them back on a bad vector.
		r0, n := ns.rows(), ns.rows()+len(vectors)
		ns.adopt(ns.grown(n, max(2*ns.metaRoom(), rows, 64)))
		ns.setRows(n)
		for i, v := range vectors {
			r := r0 + i
			sc, a, b, err := encodeRow(ns.codes[r*stride:(r+1)*stride], v, g.dims, gam, userID, i)
			if err != nil {
				ns.clearRows(r0, n)
				ns.setRows(r0)
				return err
			}
			ns.scale[r], ns.errA[r], ns.errB[r] = sc, a, b
			copy(ns.vecs.row(r), v)
		}
		ns.link(userID, r0, len(vectors))
		return nil
	}
	err := load(add)
	done = true
	if err != nil {
		return fmt.Errorf("rebuild gallery: %w", err)
	}
	ns.fit()
	g.mu.Lock()
	g.cur = ns
	g.mu.Unlock()
	return nil
}

// maxQueryNorm is the largest query norm scored. Real queries are unit
// vectors; the limit only keeps float32 scores far from overflow, which
// the exactness proof assumes.
const maxQueryNorm = 1e6

// checkQuery reports whether q can be scored: Dims finite values with a
// norm of at most maxQueryNorm.
func (g *Gallery) checkQuery(q []float32) bool {
	if len(q) != g.dims {
		return false
	}
	var nn float64
	for _, x := range q {
		nn += float64(x) * float64(x)
	}
	return nn <= maxQueryNorm*maxQueryNorm // false for NaN and ±Inf too
}

// Verify returns the user's score against q, the best exact cosine over
// their references (1:1). q should be L2-normalised, like the references.
// ok is false when the user is unknown, or when q is not a query Search
// accepts: a bad query matches nothing.
func (g *Gallery) Verify(userID string, q []float32) (score float32, ok bool) {
	if !g.checkQuery(q) {
		return 0, false
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	s := g.cur
	slot, ok := s.byID[userID]
	if !ok {
		return 0, false
	}
	return s.userScore(slot, q), true
}

// userScore is the exact score of the user in slot: the best over its
// references.
func (s *set) userScore(slot int32, q []float32) float32 {
	best := float32(math.Inf(-1))
	for r := s.users[slot].first; r >= 0; r = s.next[r] {
		best = max(best, dot(q, s.vecs.row(int(r))))
	}
	return best
}

// better orders matches best first: higher score, then lower user id, so
// that results are deterministic under ties.
func better(a, b faceauth.Match) int {
	if c := cmp.Compare(b.Similarity, a.Similarity); c != 0 {
		return c
	}
	return cmp.Compare(a.UserID, b.UserID)
}

// SearchExact is Search by brute force: the exact score of every user. It
// is the reference Search is tested against, and it is about ten times
// slower on large galleries.
func (g *Gallery) SearchExact(q []float32, k int, minScore float32) []faceauth.Match {
	if k <= 0 || !g.checkQuery(q) {
		return nil
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	s := g.cur
	var out []faceauth.Match
	for slot, u := range s.users {
		if sc := s.userScore(int32(slot), q); sc >= minScore {
			out = append(out, faceauth.Match{UserID: u.id, Similarity: sc})
		}
	}
	return topK(out, k)
}

// topK returns the k best of m, best first, reordering m.
func topK(m []faceauth.Match, k int) []faceauth.Match {
	if len(m) > k {
		// Keep the k best in a heap with the worst of them at the root.
		worse := func(a, b faceauth.Match) bool { return better(a, b) > 0 }
		h := m[:k]
		heapify(h, worse)
		for _, x := range m[k:] {
			if better(x, h[0]) < 0 {
				h[0] = x
				siftDown(h, 0, worse)
			}
		}
		m = h
	}
	slices.SortFunc(m, better)
	return slices.Clip(m)
}
