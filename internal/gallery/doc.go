// Package gallery holds the enrolled face embeddings in memory and searches
// them: 1:1 (Verify: does the face match the claimed user) and 1:N (Search:
// who is this). Both the central service and the edge daemon use it.
//
// Embeddings are L2-normalised float32 vectors, so a score is a cosine, the
// dot product. A user has one or more reference embeddings and scores the
// best of them.
//
// # Quantised scan, exact re-rank
//
// Scanning 100k users × 512 float32 values moves 200 MB per query, 20 ms
// or more on one core even when vectorised. So each reference also has an
// int8 copy (one symmetric scale per vector, max|v_i|/127) in one
// contiguous slab, a quarter of the bytes, and Search makes one cgo call to
// an AVX2 loop (scan.c; a scalar C loop on CPUs without AVX2, and pure Go
// when built without cgo) that computes every row's integer dot product
// with the quantised query. The integer sums are exact.
//
// Every row also stores two numbers that bound its quantisation error
// (quant.go). With v = v̂ + ev and q = q̂ + eq, where v̂ and q̂ are the
// de-quantised vectors,
//
//	|q·v − q̂·v̂| = |q·ev + eq·v̂| ≤ ‖q‖‖ev‖ + ‖eq‖‖v̂‖,
//
// and the float32 rounding of the exact score is bounded too, so each row's
// exact score lies in a known interval [lo, hi] around its approximate one.
// Search takes thr, the k-th largest lower bound over users (or minScore if
// higher), and re-ranks exactly, in float32, every user whose upper bound
// reaches thr.
//
// # Exactness guarantee
//
// Search returns exactly what SearchExact (brute force over every user with
// the same float32 dot product) returns: the same users, the same scores to
// the bit, in the same order, ties broken by user id; in particular the
// same top-1. Proof: at least k users score at least thr, since each of the
// k users with the largest lower bounds scores at least its own lower
// bound. So every user in the exact top k scores at least thr, its upper
// bound is at least that, and it is among the re-ranked users, whose
// scores are then exact. The bounds are rigorous, not statistical: no data
// distribution can break them. Near-ties only make the re-ranked set
// larger (slower, never wrong).
//
// # Cost
//
// Measured with -cpu 1 on the 2-core development VM (AVX2, shared with
// other busy processes, about 7 GB/s of memory bandwidth for one core):
// Search over 100k one-reference users, k = 1, takes about 6–7 ms of CPU
// time, nearly all of it the scan of the 51 MB int8 slab, and re-ranks
// about 6 users; SearchExact takes about 100 ms. See bench_test.go; the
// benchmarks fail unless Search agrees with SearchExact on every probe.
// Memory is the float32 references plus a quarter as much again for the
// int8 slab (100k × 512: 205 MB + 51 MB).
//
// A bulk load (Reset) of the same 100k users takes about 0.2 s of CPU time
// given its size (ResetSized) and about 0.25 s without, in under a
// thousand allocations; about 0.3 s as the first work of a fresh process,
// whose new memory the kernel must map page by page. Most of it is copying
// the references and quantising them, which quant.c does with AVX2; the
// pure-Go quantisation makes a load about 0.1 s slower.
//
// # Concurrency
//
// A Gallery is safe for concurrent use. Searches hold a read lock for one
// scan. Writers are serialised among themselves and prepare their work
// (checking, quantising, growing the slab) without blocking searches; they
// hold the write lock only for the in-place change of a user's few rows,
// so a search waits at most about one other search's scan. Reset builds a
// whole new set off to the side and swaps it in at the end.
package gallery
