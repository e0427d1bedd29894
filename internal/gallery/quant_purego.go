//go:build !cgo

package gallery

// quantize is quantizeGo: without cgo there is no faster one.
func quantize(dst []int8, v []float32) (quantized, bool) { return quantizeGo(dst, v) }

// quantizeImpls lists the implementations this build can run, by name.
func quantizeImpls() map[string]func(dst []int8, v []float32) (quantized, bool) {
	return map[string]func(dst []int8, v []float32) (quantized, bool){"go": quantizeGo}
}
