package gallery

import (
	"math"
	"slices"

	"github.com/xplore/faceauth"
)

// Search returns the k users whose exact scores against q are highest and
// at least minScore, best first (1:N); users with equal scores come in
// user id order. The result is exactly what SearchExact returns, found
// through the int8 scan described in the package documentation. q should
// be L2-normalised, like the references, for the scores to be cosines; a
// query that does not have Dims finite values, or whose norm is over 1e6,
// matches nothing (nil).
func (g *Gallery) Search(q []float32, k int, minScore float32) []faceauth.Match {
	m, _ := g.search(q, k, minScore)
	return m
}

// search is Search that also reports how many users it re-ranked exactly.
func (g *Gallery) search(q []float32, k int, minScore float32) ([]faceauth.Match, int) {
	if k <= 0 || !g.checkQuery(q) {
		return nil, 0
	}
	sc, _ := g.scratch.Get().(*scratch)
	if sc == nil {
		sc = new(scratch)
	}
	defer g.scratch.Put(sc)

	stride := strideFor(g.dims)
	sc.q = resize(sc.q, stride)
	qz, _ := quantize(sc.q, q) // q is finite: checked above

	g.mu.RLock()
	defer g.mu.RUnlock()
	s := g.cur
	n := s.rows()
	if n == 0 {
		return nil, 0
	}
	sc.dots = resize(sc.dots, n)
	scanDots(sc.q, s.codes, stride, sc.dots)

	b := newBounds(qz)
	dots, scale, errA, errB, owner := sc.dots[:n], s.scale[:n], s.errA[:n], s.errB[:n], s.owner[:n]

	// thr is a lower bound on the k-th best exact user score, raised to
	// minScore if that is higher: the k-th largest per-user lower bound.
	// At least k users score at least thr, so every user in the exact
	// answer does too, and its upper bound reaches thr.
	var users []int32
	if k <= maxHeapK {
		// One pass. The heap holds the k best lower bounds of distinct
		// users seen so far; bar, the k-th of them (or minScore), only
		// rises and ends as thr. A row whose upper bound is below bar can
		// neither be in the answer nor enter the heap; the rows kept are
		// a superset of the final candidates, and few, because bar rises
		// fast.
		h := sc.heap[:0]
		cand := sc.cand[:0]
		bar := float64(minScore)
		for r, d := range dots {
			a, e := b.row(d, scale[r], errA[r], errB[r])
			if a+e < bar {
				continue
			}
			cand = append(cand, int32(r))
			if lo := a - e; len(h) < k || lo > h[0].lo {
				h = pushLo(h, k, lo, owner[r])
				if len(h) == k {
					bar = max(bar, h[0].lo)
				}
			}
		}
		sc.heap = h
		users = cand[:0] // filtering in place
		for _, r := range cand {
			if a, e := b.row(dots[r], scale[r], errA[r], errB[r]); a+e >= bar {
				users = append(users, owner[r])
			}
		}
	} else {
		// Large k: the lower bounds per user, then the k-th largest.
		thr := float64(minScore)
		if k < len(s.users) {
			lo := resize(sc.lo, len(s.users))
			sc.lo = lo
			for i := range lo {
				lo[i] = math.Inf(-1)
			}
			for r, d := range dots {
				a, e := b.row(d, scale[r], errA[r], errB[r])
				if a-e > lo[owner[r]] {
					lo[owner[r]] = a - e
				}
			}
			thr = max(thr, kthLargest(lo, k))
		}
		users = sc.cand[:0]
		for r, d := range dots {
			if a, e := b.row(d, scale[r], errA[r], errB[r]); a+e >= thr {
				users = append(users, owner[r])
			}
		}
	}
	slices.Sort(users)
	users = slices.Compact(users)
	sc.cand = users

	var out []faceauth.Match
	for _, slot := range users {
		if score := s.userScore(slot, q); score >= minScore {
			out = append(out, faceauth.Match{UserID: s.users[slot].id, Similarity: score})
		}
	}
	return topK(out, k), len(users)
}

// bounds turns a row's integer dot product into its approximate score a
// and error bound e: the exact score lies in [a−e, a+e] (see quant.go).
type bounds struct{ sq, c0, c1, c2 float64 }

func newBounds(q quantized) bounds {
	return bounds{
		sq: float64(q.scale),
		c0: absMargin * (1 + q.norm),
		c1: q.norm * (1 + relMargin),
		c2: q.errNorm * (1 + relMargin),
	}
}

func (b bounds) row(dot int32, scale, errA, errB float32) (a, e float64) {
	a = b.sq * float64(scale) * float64(dot)
	e = b.c1*float64(errA) + b.c2*float64(errB) + b.c0
	return a, e
}

// maxHeapK is the largest k that Search handles in one pass: pushLo's
// search for a user already in the heap is linear in k.
const maxHeapK = 32

// userLo is a lower bound on a user's score.
type userLo struct {
	lo   float64
	user int32
}

// pushLo adds a lower bound for user to h, a min-heap by lo of at most k
// distinct users, and returns h. It keeps the larger bound of a user that
// is already there, and otherwise, when h is full, replaces the root;
// the caller has checked that lo beats the root then.
func pushLo(h []userLo, k int, lo float64, user int32) []userLo {
	less := func(a, b userLo) bool { return a.lo < b.lo }
	for i := range h {
		if h[i].user == user {
			if lo > h[i].lo {
				h[i].lo = lo
				siftDown(h, i, less) // a larger key moves toward the leaves
			}
			return h
		}
	}
	if len(h) < k {
		h = append(h, userLo{lo, user})
		for i := len(h) - 1; i > 0; { // sift up
			p := (i - 1) / 2
			if !less(h[i], h[p]) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
		return h
	}
	h[0] = userLo{lo, user}
	siftDown(h, 0, less)
	return h
}

// kthLargest returns the k-th largest value of v (1 ≤ k ≤ len(v)), keeping
// a min-heap of the k largest seen: O(len(v)·log k), and it reorders the
// first k values of v.
func kthLargest(v []float64, k int) float64 {
	less := func(a, b float64) bool { return a < b }
	h := v[:k]
	heapify(h, less)
	for _, x := range v[k:] {
		if x > h[0] {
			h[0] = x
			siftDown(h, 0, less)
		}
	}
	return h[0]
}

// heapify makes h a heap whose root is its least element by less.
func heapify[T any](h []T, less func(a, b T) bool) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(h, i, less)
	}
}

func siftDown[T any](h []T, i int, less func(a, b T) bool) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && less(h[c+1], h[c]) {
			c++
		}
		if !less(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
