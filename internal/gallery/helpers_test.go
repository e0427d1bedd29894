package gallery

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/xplore/faceauth"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

func normalize(v []float32) []float32 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	n = math.Sqrt(n)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
	return v
}

func randUnit(rng *rand.Rand, dims int) []float32 {
	v := make([]float32, dims)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return normalize(v)
}

// near returns normalize(c + sigma·noise) with noise ~ N(0, 1/dims) per value,
// so that sigma is the noise's length relative to the unit vector c.
func near(rng *rand.Rand, c []float32, sigma float64) []float32 {
	v := make([]float32, len(c))
	s := sigma / math.Sqrt(float64(len(c)))
	for i := range v {
		v[i] = c[i] + float32(s*rng.NormFloat64())
	}
	return normalize(v)
}

// model is the test's reference: users and their vectors in a map, searched
// by brute force with the same float32 dot product.
type model map[string][][]float32

func (m model) score(id string, q []float32) float32 {
	best := float32(math.Inf(-1))
	for _, v := range m[id] {
		best = max(best, dot(q, v))
	}
	return best
}

func (m model) search(q []float32, k int, minScore float32) []faceauth.Match {
	var out []faceauth.Match
	for id := range m {
		if s := m.score(id, q); s >= minScore {
			out = append(out, faceauth.Match{UserID: id, Similarity: s})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Similarity != out[j].Similarity {
			return out[i].Similarity > out[j].Similarity
		}
		return out[i].UserID < out[j].UserID
	})
	if len(out) > k {
		out = out[:k]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (m model) gallery(dims int) *Gallery {
	g := New(dims)
	for id, vs := range m {
		if err := g.Upsert(id, vs); err != nil {
			panic(err)
		}
	}
	return g
}

func uid(i int) string { return fmt.Sprintf("u%06d", i) }

func sameMatches(a, b []faceauth.Match) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UserID != b[i].UserID || math.Float32bits(a[i].Similarity) != math.Float32bits(b[i].Similarity) {
			return false
		}
	}
	return true
}
