package gallery

import (
	"math"
	"slices"
)

// Search returns the k users whose exact scores against q are highest and
// at least minScore, best first (1:N); users with equal scores come in
// user id order. The result is exactly what SearchExact returns, found
// through the int8 scan described in the package documentation. A query
// that does not have Dims finite values matches nothing.
func (g *Gallery) Search(q []float32, k int, minScore float32) []Match {
	m, _ := g.search(q, k, minScore)
	return m
}

// search is Search that also reports how many users it re-ranked exactly.
func (g *Gallery) search(q []float32, k int, minScore float32) ([]Match, int) {
	if k <= 0 || !g.checkQuery(q) {
		return nil, 0
	}
	sc, _ := g.scratch.Get().(*scratch)
	if sc == nil {
		sc = new(scratch)
	}
	defer g.scratch.Put(sc)

	stride := (g.dims + 31) &^ 31
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

	// thr is a lower bound on the k-th best exact user score (or minScore
	// if higher): the k-th largest per-user lower bound. Every user in the
	// exact answer scores at least thr, so its upper bound reaches thr.
	thr := float64(minScore)
	switch {
	case k == 1:
		// The best user lower bound is the best row lower bound.
		best := math.Inf(-1)
		for r, d := range dots {
			a, e := b.row(d, scale[r], errA[r], errB[r])
			best = max(best, a-e)
		}
		thr = max(thr, best)
	case k < len(s.users):
		lo := resize(sc.lo, len(s.users))
		sc.lo = lo
		for i := range lo {
			lo[i] = math.Inf(-1)
		}
		for r, d := range dots {
			a, e := b.row(d, scale[r], errA[r], errB[r])
			lo[owner[r]] = max(lo[owner[r]], a-e)
		}
		thr = max(thr, kthLargest(lo, k))
	}

	cand := sc.cand[:0]
	for r, d := range dots {
		a, e := b.row(d, scale[r], errA[r], errB[r])
		if a+e >= thr {
			cand = append(cand, owner[r])
		}
	}
	slices.Sort(cand)
	cand = slices.Compact(cand)
	sc.cand = cand

	var out []Match
	for _, slot := range cand {
		u := s.users[slot]
		if score := s.userScore(u, q); score >= minScore {
			out = append(out, Match{u.id, score})
		}
	}
	return topK(out, k), len(cand)
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

// kthLargest returns the k-th largest value of v (1 ≤ k ≤ len(v)), keeping
// a min-heap of the k largest seen: O(len(v)·log k), and it reorders the
// first k values of v.
func kthLargest(v []float64, k int) float64 {
	h := v[:k]
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	for _, x := range v[k:] {
		if x > h[0] {
			h[0] = x
			siftDown(h, 0)
		}
	}
	return h[0]
}

func siftDown(h []float64, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1] < h[c] {
			c++
		}
		if h[i] <= h[c] {
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
