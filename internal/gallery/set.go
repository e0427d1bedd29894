package gallery

import (
	"math"
	"slices"

	"github.com/xplore/faceauth"
)

// normTolerance is how far from 1 a reference's L2 norm may be. Scores are
// cosines only for unit vectors; a looser norm means a caller forgot to
// normalise.
const normTolerance = 1e-3

// user is one enrolled user. Its rows form a list through set.next, in
// reference order, so that a user costs no allocation of its own and the
// garbage collector has only its id to look at.
type user struct {
	id    string
	first int32 // the user's first row
	n     int32 // the number of rows
}

// set is a gallery's content: per row, the quantised reference in one slab
// and the exact one in vecs. Gallery.mu guards it; see Gallery.
type set struct {
	dims, stride int

	// Per row, all of the same length, rows().
	codes []int8    // stride bytes per row, zero-padded
	scale []float32 // v̂ = scale·code
	errA  []float32 // ‖v − v̂‖ + γ‖v‖, rounded up
	errB  []float32 // ‖v̂‖, rounded up
	owner []int32   // index into users
	next  []int32   // the owner's next row, or -1
	vecs  vecStore  // the exact references; room for at least rows()

	users []user
	byID  map[string]int32
}

func newSet(dims int) *set {
	return &set{dims: dims, stride: strideFor(dims), vecs: newVecStore(dims), byID: make(map[string]int32)}
}

// strideFor is the bytes per row: dims rounded up to the AVX2 scan's 32.
func strideFor(dims int) int { return (dims + 31) &^ 31 }

func (s *set) rows() int { return len(s.scale) }

// metaRoom is how many rows the per-row arrays other than vecs can hold.
func (s *set) metaRoom() int {
	return min(cap(s.codes)/s.stride, cap(s.scale), cap(s.errA), cap(s.errB), cap(s.owner), cap(s.next))
}

// setRows sets the number of rows to n, which must be within the room.
// Rows beyond the old number hold stale values until written.
func (s *set) setRows(n int) {
	s.codes = s.codes[:n*s.stride]
	s.scale = s.scale[:n]
	s.errA = s.errA[:n]
	s.errB = s.errB[:n]
	s.owner = s.owner[:n]
	s.next = s.next[:n]
}

// checkUser checks what a user's references are checked for as a whole.
func checkUser(id string, vectors [][]float32) error {
	if err := faceauth.ValidateUserID(id); err != nil {
		return err
	}
	if len(vectors) == 0 {
		return faceauth.E(faceauth.KindInvalid, "no_embeddings", "User %q has no reference embeddings.", id)
	}
	return nil
}

// encodeRow checks v, reference i of user id, quantises it into codes
// (stride values) and returns the row's scale and error bounds.
func encodeRow(codes []int8, v []float32, dims int, gam float64, id string, i int) (scale, errA, errB float32, err error) {
	if len(v) != dims {
		return 0, 0, 0, faceauth.E(faceauth.KindInvalid, "bad_embedding",
			"Reference %d of user %q has %d values; the gallery holds %d-value embeddings.", i, id, len(v), dims)
	}
	qz, ok := quantize(codes, v)
	if !ok {
		return 0, 0, 0, faceauth.E(faceauth.KindInvalid, "bad_embedding",
			"Reference %d of user %q has a value that is not a finite number.", i, id)
	}
	if math.Abs(qz.norm-1) > normTolerance {
		return 0, 0, 0, faceauth.E(faceauth.KindInvalid, "bad_embedding",
			"Reference %d of user %q is not L2-normalised (norm %.4g).", i, id, qz.norm)
	}
	errA = up((qz.errNorm + gam*qz.norm) * (1 + relMargin))
	errB = up(qz.hatNorm * (1 + relMargin))
	return qz.scale, errA, errB, nil
}

// encoded is a user's references checked and quantised, ready to add. It is
// built without any lock held.
type encoded struct {
	vecs  [][]float32 // the caller's; add copies them
	codes []int8
	scale []float32
	errA  []float32
	errB  []float32
}

// encode checks and quantises vectors for the user id.
func encode(dims int, id string, vectors [][]float32) (*encoded, error) {
	if err := checkUser(id, vectors); err != nil {
		return nil, err
	}
	n, stride, gam := len(vectors), strideFor(dims), gamma(dims)
	f := make([]float32, 3*n)
	e := &encoded{vecs: vectors, codes: make([]int8, n*stride), scale: f[:n:n], errA: f[n : 2*n : 2*n], errB: f[2*n:]}
	for i, v := range vectors {
		var err error
		e.scale[i], e.errA[i], e.errB[i], err = encodeRow(e.codes[i*stride:(i+1)*stride], v, dims, gam, id, i)
		if err != nil {
			return nil, err
		}
	}
	return e, nil
}

// slabs are the per-row arrays, so that they can be grown off to the side.
type slabs struct {
	codes []int8
	scale []float32
	errA  []float32
	errB  []float32
	owner []int32
	next  []int32
	vecs  vecStore
}

// grown returns the row arrays with room for rows rows, or nil when they
// have it already. Arrays that must grow are copied with room for c rows
// (vecs only as far as rows needs, see vecStore.grown). It only reads s, so
// it may run while searches read s too; Gallery runs it before taking the
// write lock so that a search never waits for a copy of the whole slab.
func (s *set) grown(rows, c int) *slabs {
	metaOK, vecsOK := rows <= s.metaRoom(), rows <= s.vecs.room()
	if metaOK && vecsOK {
		return nil
	}
	c = max(c, rows)
	b := &slabs{s.codes, s.scale, s.errA, s.errB, s.owner, s.next, s.vecs}
	if !metaOK {
		s.copyMeta(b, c)
	}
	if !vecsOK {
		b.vecs = s.vecs.grown(rows, c)
	}
	return b
}

// copyMeta sets b's per-row arrays but vecs to copies of s's with room for
// c rows.
func (s *set) copyMeta(b *slabs, c int) {
	b.codes = append(make([]int8, 0, c*s.stride), s.codes...)
	b.scale = append(make([]float32, 0, c), s.scale...)
	b.errA = append(make([]float32, 0, c), s.errA...)
	b.errB = append(make([]float32, 0, c), s.errB...)
	b.owner = append(make([]int32, 0, c), s.owner...)
	b.next = append(make([]int32, 0, c), s.next...)
}

// fit gives back room that a bulk load left over beyond the quarter that
// Upsert's growth leaves, from growing by doubling or from too large a
// hint. s must be private to the caller.
func (s *set) fit() {
	rows := s.rows()
	if s.metaRoom() > rows+rows/4+64 {
		b := &slabs{vecs: s.vecs}
		s.copyMeta(b, rows)
		s.adopt(b)
	}
	// vecs allocates chunk by chunk and overshoots by less than one, but
	// a hint may have made a first chunk for nothing.
	per := 1 << s.vecs.shift
	s.vecs.chunks = s.vecs.chunks[:(rows+per-1)/per]
}

func (s *set) adopt(b *slabs) {
	if b != nil {
		s.codes, s.scale, s.errA, s.errB, s.owner, s.next, s.vecs = b.codes, b.scale, b.errA, b.errB, b.owner, b.next, b.vecs
	}
}

// link enrols id as the owner of the n rows from r0, which hold its
// references in order.
func (s *set) link(id string, r0, n int) {
	slot := int32(len(s.users))
	for r := r0; r < r0+n; r++ {
		s.owner[r] = slot
		s.next[r] = int32(r + 1)
	}
	s.next[r0+n-1] = -1
	s.users = append(s.users, user{id: id, first: int32(r0), n: int32(n)})
	s.byID[id] = slot
}

// add appends a user that is not in s. The row arrays must have room (see
// grown).
func (s *set) add(id string, e *encoded) {
	r0, n := s.rows(), len(e.scale)
	s.setRows(r0 + n)
	copy(s.codes[r0*s.stride:], e.codes)
	copy(s.scale[r0:], e.scale)
	copy(s.errA[r0:], e.errA)
	copy(s.errB[r0:], e.errB)
	for i, v := range e.vecs {
		copy(s.vecs.row(r0+i), v)
	}
	s.link(id, r0, n)
}

// remove deletes the user id, if present, keeping rows and users dense by
// moving the last row (user) into each hole. It reports the number of rows
// freed.
func (s *set) remove(id string) int {
	slot, ok := s.byID[id]
	if !ok {
		return 0
	}
	u := &s.users[slot]
	n := int(u.n)
	for u.first >= 0 {
		r := u.first
		u.first = s.next[r] // unlinked first, so that removeRow never meets r in a list
		s.removeRow(r)
	}
	last := int32(len(s.users) - 1)
	if slot != last {
		m := s.users[last]
		s.users[slot] = m
		s.byID[m.id] = slot
		for r := m.first; r >= 0; r = s.next[r] {
			s.owner[r] = slot
		}
	}
	s.users[last] = user{}
	s.users = s.users[:last]
	delete(s.byID, id)
	return n
}

// removeRow moves the last row into row r, which no user's list holds,
// and truncates.
func (s *set) removeRow(r int32) {
	last := int32(s.rows() - 1)
	if r != last {
		st := s.stride
		copy(s.codes[int(r)*st:int(r+1)*st], s.codes[int(last)*st:])
		copy(s.vecs.row(int(r)), s.vecs.row(int(last)))
		s.scale[r], s.errA[r], s.errB[r] = s.scale[last], s.errA[last], s.errB[last]
		s.owner[r], s.next[r] = s.owner[last], s.next[last]
		// Whatever pointed to last now points to r.
		o := &s.users[s.owner[r]]
		if o.first == last {
			o.first = r
		} else {
			p := o.first
			for s.next[p] != last {
				p = s.next[p]
			}
			s.next[p] = r
		}
	}
	s.clearRows(int(last), int(last)+1)
	s.setRows(int(last))
}

// clearRows zeroes rows [from, to) before they fall beyond rows(): the
// arrays keep their capacity, and a deleted user's embedding must not stay
// in the process's memory until a later user happens to overwrite it
// (erasure, docs/security.md).
func (s *set) clearRows(from, to int) {
	if from >= to {
		return
	}
	clear(s.codes[from*s.stride : to*s.stride])
	clear(s.scale[from:to])
	clear(s.errA[from:to])
	clear(s.errB[from:to])
	clear(s.owner[from:to])
	clear(s.next[from:to])
	for r := from; r < to; r++ {
		clear(s.vecs.row(r))
	}
}

// vecChunkBytes is the size of a full vecStore chunk.
const vecChunkBytes = 1 << 20

// vecStore holds the exact float32 references by row, in chunks of a fixed
// number of rows. Growing it allocates new chunks and copies at most the
// last, short one, where one contiguous array would copy every reference
// (200 MB at 100k users) and need twice that while it does.
type vecStore struct {
	dims   int
	shift  uint        // a full chunk holds 1<<shift rows
	chunks [][]float32 // all full but perhaps the last
}

func newVecStore(dims int) vecStore {
	var shift uint
	for dims<<(shift+1)*4 <= vecChunkBytes {
		shift++
	}
	return vecStore{dims: dims, shift: shift}
}

// room is the number of rows v can hold.
func (v *vecStore) room() int {
	n := len(v.chunks)
	if n == 0 {
		return 0
	}
	return (n-1)<<v.shift + len(v.chunks[n-1])/v.dims
}

// row returns row r's values.
func (v *vecStore) row(r int) []float32 {
	c := v.chunks[r>>v.shift]
	i := (r & (1<<v.shift - 1)) * v.dims
	return c[i : i+v.dims : i+v.dims]
}

// grown returns a vecStore with room for rows rows that shares v's full
// chunks: chunks are allocated as far as rows needs, each sized toward c
// rows in all, so that a hint or a geometric c makes them full-sized
// without allocating beyond the chunk that row rows-1 falls in. It only
// reads v.
func (v vecStore) grown(rows, c int) vecStore {
	per := 1 << v.shift
	c = max(c, rows)
	v.chunks = slices.Clone(v.chunks) // v's list may be read by searches
	for v.room() < rows {
		n := len(v.chunks)
		if n > 0 && len(v.chunks[n-1]) < per*v.dims { // short: replace with a larger copy
			base := (n - 1) << v.shift
			old := v.chunks[n-1]
			size := min(per, max(c-base, 2*len(old)/v.dims))
			v.chunks[n-1] = append(make([]float32, 0, size*v.dims), old...)[:size*v.dims]
		} else {
			base := n << v.shift
			v.chunks = append(v.chunks, make([]float32, min(per, c-base)*v.dims))
		}
	}
	return v
}
