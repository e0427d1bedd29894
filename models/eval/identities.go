package eval

import (
	"fmt"
	"sort"

	"github.com/xplore/faceauth"
)

// AllPairs returns every unordered pair of the labelled images: same-person
// pairs and, far more of them, different-person pairs. A listed pairs file
// samples only a few hundred different-person pairs; the false-match rate at
// 1e-3 needs thousands. Pairs that listed marks as near-duplicates (two
// shots of one moment) keep that mark so callers can leave them out.
func AllPairs(items []Labelled, listed []Pair) []Pair {
	type key struct{ a, b string }
	near := map[key]bool{}
	for _, p := range listed {
		if p.NearDup {
			near[key{p.X, p.Y}] = true
			near[key{p.Y, p.X}] = true
		}
	}
	sorted := append([]Labelled(nil), items...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].File < sorted[j].File })
	var out []Pair
	for i := range sorted {
		for j := i + 1; j < len(sorted); j++ {
			x, y := sorted[i], sorted[j]
			out = append(out, Pair{
				X:       x.File,
				Y:       y.File,
				Same:    x.Identity == y.Identity,
				NearDup: near[key{x.File, y.File}],
			})
		}
	}
	return out
}

// IdentitiesFromPairs labels the images of a pairs list that has no
// manifest (DeepFace's master.csv): images joined by same-person pairs share
// an identity, every other image is its own. This relies on the list naming
// every same-person pair, which the shared sets promise; a different-person
// pair inside one group contradicts the list and is an error.
func IdentitiesFromPairs(pairs []Pair) ([]Labelled, error) {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		p, ok := parent[x]
		if !ok {
			parent[x] = x
			return x
		}
		if p == x {
			return x
		}
		r := find(p)
		parent[x] = r
		return r
	}
	for _, p := range pairs {
		a, b := find(p.X), find(p.Y)
		if p.Same && a != b {
			// Smaller name as root keeps identities stable across runs.
			if b < a {
				a, b = b, a
			}
			parent[b] = a
		}
	}
	for _, p := range pairs {
		if !p.Same && find(p.X) == find(p.Y) {
			return nil, faceauth.E(faceauth.KindInvalid, "bad_csv",
				"line %d: %s and %s are listed as different people, but other pairs link them as the same person", p.Line, p.X, p.Y)
		}
	}
	files := make([]string, 0, len(parent))
	for f := range parent {
		files = append(files, f)
	}
	sort.Strings(files)
	out := make([]Labelled, len(files))
	for i, f := range files {
		out[i] = Labelled{File: f, Identity: fmt.Sprintf("group:%s", find(f))}
	}
	return out, nil
}
