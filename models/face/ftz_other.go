//go:build !amd64

package face

// withFlushToZero runs f. Only amd64 sets flush-to-zero (see
// ftz_amd64.go); elsewhere the models run with IEEE denormals, slower.
func withFlushToZero(f func() error) error { return f() }
