package face

import (
	"fmt"
	"math"

	"github.com/xplore/faceauth/models"
)

// geometry says where an embedder wants the face in its input: each
// reference point dst[i], in this package's continuous coordinates of the
// size x size input, is where the mean of landmarks src[i] must land. The
// alignment is the least-squares similarity from those landmark means to
// dst (see similarity), or for dlib's chips exactly what dlib computes
// (see dlibMap).
type geometry struct {
	src [][]int
	dst []pt
	// dlib, when set, is the chip size of a dlib geometry: dst then holds
	// dlib's own pixel-index coordinates.
	dlib int
	// five are the five ArcFace-order points (eyes, nose tip, mouth
	// corners) in the input, for the face's size and the landmark
	// consistency measure whatever the geometry.
	five [5]pt
}

// fiveIdx are the landmarks whose means give the five points, as in
// fivePoints.
var fiveIdx = [5][]int{{37, 38, 40, 41}, {43, 44, 46, 47}, {30}, {48, 60}, {54, 64}}

// dlibMeanFace is dlib's mean face shape for the 68-point layout, points
// 17 to 67, in [0, 1] of the face's extent (get_face_chip_details in
// dlib/image_transforms/interpolation.h).
var dlibMeanFace = [68 - 17]pt{
	{0.000213256, 0.106454}, {0.0752622, 0.038915}, {0.18113, 0.0187482}, {0.29077, 0.0344891},
	{0.393397, 0.0773906}, {0.586856, 0.0773906}, {0.689483, 0.0344891}, {0.799124, 0.0187482},
	{0.904991, 0.038915}, {0.98004, 0.106454}, {0.490127, 0.203352}, {0.490127, 0.307009},
	{0.490127, 0.409805}, {0.490127, 0.515625}, {0.36688, 0.587326}, {0.426036, 0.609345},
	{0.490127, 0.628106}, {0.554217, 0.609345}, {0.613373, 0.587326}, {0.121737, 0.216423},
	{0.187122, 0.178758}, {0.265825, 0.179852}, {0.334606, 0.231733}, {0.260918, 0.245099},
	{0.182743, 0.244077}, {0.645647, 0.231733}, {0.714428, 0.179852}, {0.793132, 0.178758},
	{0.858516, 0.216423}, {0.79751, 0.244077}, {0.719335, 0.245099}, {0.254149, 0.780233},
	{0.340985, 0.745405}, {0.428858, 0.727388}, {0.490127, 0.742578}, {0.551395, 0.727388},
	{0.639268, 0.745405}, {0.726104, 0.780233}, {0.642159, 0.864805}, {0.556721, 0.902192},
	{0.490127, 0.909281}, {0.423532, 0.902192}, {0.338094, 0.864805}, {0.290379, 0.784792},
	{0.428096, 0.778746}, {0.490127, 0.785343}, {0.552157, 0.778746}, {0.689874, 0.784792},
	{0.553364, 0.824182}, {0.490127, 0.831803}, {0.42689, 0.824182},
}

// dlibChipPoint is where dlib's chip of the given size and padding puts
// landmark i (17 to 67), in dlib's pixel-index coordinates.
func dlibChipPoint(i, size int, padding float64) pt {
	p := dlibMeanFace[i-17]
	s := float64(size) / (2*padding + 1)
	return pt{(padding + p.x) * s, (padding + p.y) * s}
}

// dlibUses reports whether dlib's get_face_chip_details fits landmark i:
// points 17 to 67 except the eyebrows (17-26) and the lower lip (55-59,
// 65-67), which vary most between faces.
func dlibUses(i int) bool {
	return i >= 27 && !(i >= 55 && i <= 59) && !(i >= 65 && i <= 67)
}

// newGeometry returns the geometry of an embedder's chip.
func newGeometry(e *models.Embedder) (geometry, error) {
	var g geometry
	switch e.Alignment {
	case models.AlignArcFace, "":
		t := templatePoints(e.Size)
		for i := range t {
			g.src = append(g.src, fiveIdx[i])
			g.dst = append(g.dst, t[i])
		}
		g.five = t
	case models.AlignTemplate:
		for i, p := range e.Template {
			g.src = append(g.src, fiveIdx[i])
			g.dst = append(g.dst, pt{p[0] + 0.5, p[1] + 0.5})
			g.five[i] = g.dst[i]
		}
	case models.AlignDlib:
		g.dlib = e.Size
		mean := map[int]pt{}
		for i := 17; i < landmarkCount; i++ {
			q := dlibChipPoint(i, e.Size, e.Padding)
			mean[i] = pt{q.x + 0.5, q.y + 0.5} // dlib's pixel centres are integers, ours half-integers
			if dlibUses(i) {
				g.src = append(g.src, []int{i})
				g.dst = append(g.dst, q)
			}
		}
		for k, idx := range fiveIdx {
			var s pt
			for _, i := range idx {
				s.x += mean[i].x
				s.y += mean[i].y
			}
			g.five[k] = pt{s.x / float64(len(idx)), s.y / float64(len(idx))}
		}
	default:
		return g, fmt.Errorf("embedder %s: unknown alignment %q", e.ID, e.Alignment)
	}
	return g, nil
}

// fit returns the map from the coordinates of landmarks lm to the
// geometry's input, with the root mean square distance between the
// reference points and where the landmarks land (in input pixels).
func (g *geometry) fit(lm *[landmarkCount]pt) (affine, float64, bool) {
	var buf [landmarkCount]pt
	src := buf[:len(g.src)]
	for k, idx := range g.src {
		var s pt
		for _, i := range idx {
			s.x += lm[i].x
			s.y += lm[i].y
		}
		src[k] = pt{s.x / float64(len(idx)), s.y / float64(len(idx))}
	}
	if g.dlib == 0 {
		return similarity(src, g.dst)
	}
	for k := range src { // to dlib's pixel-index coordinates
		src[k].x -= 0.5
		src[k].y -= 0.5
	}
	m, ok := dlibMap(g.dst, src, g.dlib)
	if !ok {
		return affine{}, 0, false
	}
	m = m.invert()
	var ss float64
	for k := range src {
		x, y := m.apply(src[k].x+0.5, src[k].y+0.5)
		dx, dy := x-g.dst[k].x-0.5, y-g.dst[k].y-0.5
		ss += dx*dx + dy*dy
	}
	return m, math.Sqrt(ss / float64(len(src))), true
}

// dlibMap returns the map from continuous coordinates of a size x size
// chip to continuous image coordinates that dlib's
// get_face_chip_details and extract_image_chip use, for template points
// chip and landmarks img, both in dlib's pixel-index coordinates:
//
//	tform = find_similarity_transform(chip, img)   (chip to image)
//	rect  = centered_drect(tform(size/2, size/2), size*scale, size*scale)
//	chip pixel 0 and size-1 sit on rect's corners, turned by tform's angle
//
// centered_drect shortens each side by one, so chip pixels are
// (size*scale-1)/(size-1) image pixels apart rather than scale, about the
// image of the chip's centre. ok is false for degenerate points.
func dlibMap(chip, img []pt, size int) (affine, bool) {
	t, _, ok := similarity(chip, img)
	if !ok {
		return affine{}, false
	}
	n := float64(size)
	scale := math.Hypot(t.a, t.d)
	cos, sin := t.a/scale, t.d/scale
	step := (n*scale - 1) / (n - 1)
	cx, cy := t.apply(n/2, n/2)
	// Chip index j maps to c + R*step*(j - (n-1)/2); ours are index+0.5.
	m := affine{a: step * cos, b: -step * sin, d: step * sin, e: step * cos}
	h := 0.5 + (n-1)/2
	m.c = cx + 0.5 - (m.a*h + m.b*h)
	m.f = cy + 0.5 - (m.d*h + m.e*h)
	return m, true
}
