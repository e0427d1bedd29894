package gallery

import (
	"fmt"
	"math"
	"syscall"
	"testing"
	"time"
)

const benchDims = 512

// fixture is a gallery of synthetic users and probes to search it with.
type fixture struct {
	g       *Gallery
	queries [][]float32
}

// newFixture builds a gallery of users one-reference users of the kind:
//
//   - random: independent random unit vectors; the probes are half
//     genuine (a user's vector plus noise, cosine ≈ 0.8) and half random.
//   - clustered: closer to face embeddings. Users are normalised(centre +
//     noise) around users/100 centres (cosine ≈ 0.7 to the centre, ≈ 0.5
//     between cluster mates); the probes are half genuine and half
//     impostors near a centre, who score about the same against a hundred
//     cluster mates: near-ties that the re-rank has to settle.
func newFixture(tb testing.TB, kind string, users int) *fixture {
	rng := newRand(uint64(users))
	var centres [][]float32
	if kind == "clustered" {
		centres = make([][]float32, users/100)
		for i := range centres {
			centres[i] = randUnit(rng, benchDims)
		}
	}
	// The probes' genuine users, chosen before building, so that the
	// vectors need not be kept.
	const nq = 64
	genuine := map[int]int{}
	for len(genuine) < nq/2 {
		genuine[rng.IntN(users)] = len(genuine)
	}
	f := &fixture{g: New(benchDims), queries: make([][]float32, nq)}
	err := f.g.Reset(func(add func(string, [][]float32) error) error {
		for i := range users {
			var v []float32
			if centres != nil {
				v = near(rng, centres[i%len(centres)], 1.0)
			} else {
				v = randUnit(rng, benchDims)
			}
			if j, ok := genuine[i]; ok {
				f.queries[2*j] = near(rng, v, 0.7)
			}
			if err := add(uid(i), [][]float32{v}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	for j := range nq / 2 {
		if centres != nil {
			f.queries[2*j+1] = near(rng, centres[rng.IntN(len(centres))], 1.0)
		} else {
			f.queries[2*j+1] = randUnit(rng, benchDims)
		}
	}
	return f
}

// checkExact fails unless Search's top-1 (and top-k) equals brute force
// for every probe.
func (f *fixture) checkExact(tb testing.TB, k int) {
	for i, q := range f.queries {
		got, want := f.g.Search(q, k, -1), f.g.SearchExact(q, k, -1)
		if !sameMatches(got, want) || got[0] != want[0] {
			tb.Fatalf("probe %d: Search = %v, exact search = %v", i, got, want)
		}
	}
}

func benchSearch(b *testing.B, users int) {
	for _, kind := range []string{"random", "clustered"} {
		f := newFixture(b, kind, users)
		for _, k := range []int{1, 10} {
			f.checkExact(b, k)
			b.Run(fmt.Sprintf("%s/k=%d", kind, k), func(b *testing.B) {
				b.ReportAllocs()
				reranked, i := 0, 0
				cpu := cpuTime()
				for b.Loop() {
					_, n := f.g.search(f.queries[i%len(f.queries)], k, float32(math.Inf(-1)))
					reranked += n
					i++
				}
				reportCPU(b, cpu, i)
				b.ReportMetric(float64(reranked)/float64(i), "reranked/op")
			})
		}
		b.Run(kind+"/exact", func(b *testing.B) {
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				f.g.SearchExact(f.queries[i%len(f.queries)], 1, float32(math.Inf(-1)))
				i++
			}
			reportCPU(b, cpu, i)
		})
	}
}

// cpuTime is the process's user+system CPU time. On a machine shared with
// other busy processes, wall time per op (ns/op) includes waiting for a
// core; CPU time per op (cpu-ns/op) does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration, ops int) {
	if ops > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(ops), "cpu-ns/op")
	}
}

// BenchmarkSearch10k is 1:N identification over 10,000 users.
func BenchmarkSearch10k(b *testing.B) { benchSearch(b, 10_000) }

// BenchmarkSearch100k is 1:N identification over 100,000 users; the target
// is at most 10 ms per search on one core.
func BenchmarkSearch100k(b *testing.B) { benchSearch(b, 100_000) }

// BenchmarkVerify is 1:1 verification against a user with 3 references.
func BenchmarkVerify(b *testing.B) {
	rng := newRand(1)
	g := New(benchDims)
	refs := [][]float32{randUnit(rng, benchDims), randUnit(rng, benchDims), randUnit(rng, benchDims)}
	if err := g.Upsert("alice", refs); err != nil {
		b.Fatal(err)
	}
	q := near(rng, refs[0], 0.7)
	for b.Loop() {
		g.Verify("alice", q)
	}
}

// BenchmarkUpsert replaces users' references in a 100k-user gallery.
func BenchmarkUpsert(b *testing.B) {
	const users = 100_000
	f := newFixture(b, "random", users)
	rng := newRand(2)
	vecs := make([][][]float32, 256)
	for i := range vecs {
		for range 1 + i%3 {
			vecs[i] = append(vecs[i], randUnit(rng, benchDims))
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := f.g.Upsert(uid(rng.IntN(users)), vecs[i%len(vecs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkReset100k is the bulk build of a 100k-user gallery.
func BenchmarkReset100k(b *testing.B) {
	const users = 100_000
	rng := newRand(3)
	vecs := make([][]float32, users)
	for i := range vecs {
		vecs[i] = randUnit(rng, benchDims)
	}
	ids := make([]string, users)
	for i := range ids {
		ids[i] = uid(i)
	}
	g := New(benchDims)
	b.ReportAllocs()
	for b.Loop() {
		err := g.Reset(func(add func(string, [][]float32) error) error {
			for i, v := range vecs {
				if err := add(ids[i], [][]float32{v}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if g.Len() != users {
		b.Fatalf("Len = %d", g.Len())
	}
}

// BenchmarkResetLoad100k is the edge daemon's warm start: 100k users with
// one 512-value reference each, passed to add through one reused slice
// header as edged's loader does, with and without a size hint. allocs/op
// counts Reset's own allocations: the loop here makes none.
func BenchmarkResetLoad100k(b *testing.B) {
	const users = 100_000
	rng := newRand(3)
	flat := make([]float32, users*benchDims)
	for i := range users {
		copy(flat[i*benchDims:], randUnit(rng, benchDims))
	}
	ids := make([]string, users)
	for i := range ids {
		ids[i] = uid(i)
	}
	for _, bc := range []struct {
		name string
		hint SizeHint
	}{
		{"hint=none", SizeHint{}},
		{"hint=exact", SizeHint{Users: users, Vectors: users}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := New(benchDims)
			rows := make([][]float32, 1)
			b.ReportAllocs()
			cpu, n := cpuTime(), 0
			for b.Loop() {
				err := g.ResetSized(bc.hint, func(add func(string, [][]float32) error) error {
					for i, id := range ids {
						rows[0] = flat[i*benchDims : (i+1)*benchDims]
						if err := add(id, rows); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			reportCPU(b, cpu, n)
			if g.Len() != users {
				b.Fatalf("Len = %d", g.Len())
			}
			for _, i := range []int{0, users / 2, users - 1} {
				v := flat[i*benchDims : (i+1)*benchDims]
				if s, ok := g.Verify(ids[i], v); !ok || s != dot(v, v) {
					b.Fatalf("Verify(%s) = %v, %v; want %v", ids[i], s, ok, dot(v, v))
				}
			}
		})
	}
}

// BenchmarkQuantize is the per-reference work of a bulk load, in each
// implementation this build has.
func BenchmarkQuantize(b *testing.B) {
	v := randUnit(newRand(4), benchDims)
	dst := make([]int8, strideFor(benchDims))
	for name, quantize := range quantizeImpls() {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				quantize(dst, v)
			}
		})
	}
}
