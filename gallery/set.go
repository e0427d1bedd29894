package gallery

import (
	"math"

	"github.com/xplore/faceauth"
)

// normTolerance is how far from 1 a reference's L2 norm may be. Scores are
// cosines only for unit vectors; a looser norm means a caller forgot to
// normalise.
const normTolerance = 1e-3

// user is one enrolled user.
type user struct {
	id   string
	vecs []float32 // len(rows)*dims: the exact references, row i at i*dims
	rows []int32   // the user's rows in the set's slab, in reference order
}

// set is a gallery's content: the exact references per user and the
// quantised rows in one slab. Gallery.mu guards it; see Gallery.
type set struct {
	dims, stride int

	// Per row, all of the same length.
	codes []int8    // stride bytes per row, zero-padded
	scale []float32 // v̂ = scale·code
	errA  []float32 // ‖v − v̂‖ + γ‖v‖, rounded up
	errB  []float32 // ‖v̂‖, rounded up
	owner []int32   // index into users

	users []*user
	byID  map[string]int32
}

func newSet(dims int) *set {
	return &set{dims: dims, stride: strideFor(dims), byID: make(map[string]int32)}
}

// strideFor is the bytes per row: dims rounded up to the AVX2 scan's 32.
func strideFor(dims int) int { return (dims + 31) &^ 31 }

func (s *set) rows() int { return len(s.scale) }

// encoded is a user's references checked and quantised, ready to add. It is
// built without any lock held.
type encoded struct {
	vecs  []float32
	codes []int8
	scale []float32
	errA  []float32
	errB  []float32
}

// encode checks and quantises vectors for the user id.
func encode(dims int, id string, vectors [][]float32) (*encoded, error) {
	if err := faceauth.ValidateUserID(id); err != nil {
		return nil, err
	}
	if len(vectors) == 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "no_embeddings", "User %q has no reference embeddings.", id)
	}
	n, stride, gam := len(vectors), strideFor(dims), gamma(dims)
	e := &encoded{
		vecs:  make([]float32, n*dims),
		codes: make([]int8, n*stride),
		scale: make([]float32, n),
		errA:  make([]float32, n),
		errB:  make([]float32, n),
	}
	for i, v := range vectors {
		if len(v) != dims {
			return nil, faceauth.E(faceauth.KindInvalid, "bad_embedding",
				"Reference %d of user %q has %d values; the gallery holds %d-value embeddings.", i, id, len(v), dims)
		}
		qz, ok := quantize(e.codes[i*stride:(i+1)*stride], v)
		if !ok {
			return nil, faceauth.E(faceauth.KindInvalid, "bad_embedding",
				"Reference %d of user %q has a value that is not a finite number.", i, id)
		}
		if math.Abs(qz.norm-1) > normTolerance {
			return nil, faceauth.E(faceauth.KindInvalid, "bad_embedding",
				"Reference %d of user %q is not L2-normalised (norm %.4g).", i, id, qz.norm)
		}
		copy(e.vecs[i*dims:], v)
		e.scale[i] = qz.scale
		e.errA[i] = up((qz.errNorm + gam*qz.norm) * (1 + relMargin))
		e.errB[i] = up(qz.hatNorm * (1 + relMargin))
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
}

// grown returns copies of the row arrays with room for rows rows, or nil
// when they have it already. It only reads s, so it may run while searches
// read s too; Gallery runs it before taking the write lock so that a search
// never waits for a copy of the whole slab.
func (s *set) grown(rows int) *slabs {
	if rows <= cap(s.scale) && rows*s.stride <= cap(s.codes) {
		return nil
	}
	c := max(rows, cap(s.scale)+cap(s.scale)/4, 64) // grow by 1.25: the slab is the big allocation
	return &slabs{
		codes: append(make([]int8, 0, c*s.stride), s.codes...),
		scale: append(make([]float32, 0, c), s.scale...),
		errA:  append(make([]float32, 0, c), s.errA...),
		errB:  append(make([]float32, 0, c), s.errB...),
		owner: append(make([]int32, 0, c), s.owner...),
	}
}

func (s *set) adopt(b *slabs) {
	if b != nil {
		s.codes, s.scale, s.errA, s.errB, s.owner = b.codes, b.scale, b.errA, b.errB, b.owner
	}
}

// add appends a user that is not in s. The row arrays must have room (see
// grown) unless s is private to the caller.
func (s *set) add(id string, e *encoded) {
	slot := int32(len(s.users))
	n := len(e.scale)
	u := &user{id: id, vecs: e.vecs, rows: make([]int32, n)}
	for i := range n {
		u.rows[i] = int32(s.rows() + i)
		s.owner = append(s.owner, slot)
	}
	s.codes = append(s.codes, e.codes...)
	s.scale = append(s.scale, e.scale...)
	s.errA = append(s.errA, e.errA...)
	s.errB = append(s.errB, e.errB...)
	s.users = append(s.users, u)
	s.byID[id] = slot
}

// remove deletes the user id, if present, keeping rows and users dense by
// moving the last row (user) into each hole. It reports the number of rows
// freed.
func (s *set) remove(id string) int {
	slot, ok := s.byID[id]
	if !ok {
		return 0
	}
	u := s.users[slot]
	n := len(u.rows)
	for len(u.rows) > 0 {
		r := u.rows[len(u.rows)-1]
		u.rows = u.rows[:len(u.rows)-1]
		s.removeRow(r)
	}
	last := int32(len(s.users) - 1)
	if slot != last {
		m := s.users[last]
		s.users[slot] = m
		s.byID[m.id] = slot
		for _, r := range m.rows {
			s.owner[r] = slot
		}
	}
	s.users[last] = nil
	s.users = s.users[:last]
	delete(s.byID, id)
	return n
}

// removeRow moves the last row into row r and truncates.
func (s *set) removeRow(r int32) {
	last := int32(s.rows() - 1)
	if r != last {
		st := s.stride
		copy(s.codes[int(r)*st:int(r+1)*st], s.codes[int(last)*st:])
		s.scale[r], s.errA[r], s.errB[r], s.owner[r] = s.scale[last], s.errA[last], s.errB[last], s.owner[last]
		o := s.users[s.owner[r]]
		for i, x := range o.rows {
			if x == last {
				o.rows[i] = r
				break
			}
		}
	}
	s.codes = s.codes[:int(last)*s.stride]
	s.scale = s.scale[:last]
	s.errA = s.errA[:last]
	s.errB = s.errB[:last]
	s.owner = s.owner[:last]
}
