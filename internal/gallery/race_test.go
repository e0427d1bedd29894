//go:build race

package gallery

// raceEnabled shrinks the single-goroutine exactness tests, which the race
// detector slows tenfold without checking anything more in them.
const raceEnabled = true
