package photo

import (
	"encoding/binary"
	"image"
	"math"
	"syscall"
	"testing"
	"time"
)

// photoLike synthesises a w x h picture with roughly a photo's statistics:
// smooth shading, mid-scale texture and fine sensor noise, so that JPEG
// sizes and entropy-decoding costs are realistic (a 12 MP q90 file comes
// out at a few megabytes, like a phone photo). A flat gradient would make
// the benchmarks lie.
func photoLike(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	hash := func(x, y, c uint32) float64 {
		v := x*0x9E3779B1 ^ y*0x85EBCA77 ^ c*0xC2B2AE3D
		v ^= v >> 15
		v *= 0x2C1B3C6D
		v ^= v >> 12
		return float64(v&0xFFFF)/65535 - 0.5
	}
	// Value noise on a grid of cell pixels, bilinearly interpolated: the
	// "upscaled small image" part.
	const cell = 24
	texture := func(x, y int, c uint32) float64 {
		gx, gy := x/cell, y/cell
		fx, fy := float64(x%cell)/cell, float64(y%cell)/cell
		a := hash(uint32(gx), uint32(gy), c)
		b := hash(uint32(gx+1), uint32(gy), c)
		d := hash(uint32(gx), uint32(gy+1), c)
		e := hash(uint32(gx+1), uint32(gy+1), c)
		return (a*(1-fx)+b*fx)*(1-fy) + (d*(1-fx)+e*fx)*fy
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			u, v := float64(x)/float64(w), float64(y)/float64(h)
			o := m.PixOffset(x, y)
			for c := 0; c < 3; c++ {
				s := 110 + 60*math.Sin(6*u+float64(c)) + 40*math.Cos(9*v-2*u) // shading
				s += 70 * texture(x, y, uint32(c))                            // texture
				s += 14 * hash(uint32(x), uint32(y), uint32(c))               // noise
				m.Pix[o+c] = byte(max(0, min(255, s)))
			}
			m.Pix[o+3] = 255
		}
	}
	return m
}

// benchDecode times Decode. With b.Loop the benchmark function runs once,
// so the (slow) input synthesis before it is not repeated.
func benchDecode(b *testing.B, data []byte, opt Options) {
	b.Helper()
	im, err := Decode(data, opt)
	if err != nil {
		b.Fatal(err)
	}
	// CPU time as well as wall time: on a busy machine the wall time
	// includes waiting for a core, the CPU time does not.
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	for b.Loop() {
		if _, err := Decode(data, opt); err != nil {
			b.Fatal(err)
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(len(data))/1e6, "MB-in")
	b.ReportMetric(float64(max(im.W, im.H)), "px-out")
}

// BenchmarkDecode640JPEG: a VGA frame, decoded at full size.
func BenchmarkDecode640JPEG(b *testing.B) {
	data := encJPEG(b, photoLike(640, 480), 90)
	benchDecode(b, data, Options{})
}

// BenchmarkDecode12MPJPEG: a 4000x3000 phone photo, decoded at 3/8 scale
// (1500x1125) for the default TargetSide of 1280.
func BenchmarkDecode12MPJPEG(b *testing.B) {
	data := encJPEG(b, photoLike(4000, 3000), 90)
	benchDecode(b, data, Options{})
}

// BenchmarkDecode12MPJPEGExif6: the same photo taken in portrait, so the
// reduced decode is also turned upright.
func BenchmarkDecode12MPJPEGExif6(b *testing.B) {
	data := encJPEG(b, photoLike(4000, 3000), 90)
	benchDecode(b, withJPEGExif(data, 6, binary.LittleEndian), Options{})
}

// BenchmarkDecode12MPJPEGFull: the full-size decode the reduced one avoids.
func BenchmarkDecode12MPJPEGFull(b *testing.B) {
	data := encJPEG(b, photoLike(4000, 3000), 90)
	benchDecode(b, data, Options{TargetSide: -1})
}

// BenchmarkDecode640PNG: a VGA PNG, decoded at full size.
func BenchmarkDecode640PNG(b *testing.B) {
	data := encPNG(b, photoLike(640, 480))
	benchDecode(b, data, Options{})
}

// BenchmarkDecode4MPPNG: a 2400x1600 PNG, decoded and area-filtered to
// 1280 px.
func BenchmarkDecode4MPPNG(b *testing.B) {
	data := encPNG(b, photoLike(2400, 1600))
	benchDecode(b, data, Options{})
}
