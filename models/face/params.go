package face

import (
	"github.com/xplore/faceauth/models"
)

// params are the pipeline's tunable numbers, from the model manifest where
// it has them.
type params struct {
	detectThreshold float32 // minimum detector score
	nmsIoU          float64 // boxes overlapping more are one face
	detectBGR       bool    // detector channel order

	embedSize  int
	embedDims  int
	embedMean  [3]float32 // R, G, B
	embedNorm  float32    // 1/std
	embedBGR   bool
	embedTaps  int      // supersampling when the face is larger than the input
	embedGeom  geometry // where the landmarks go in the input
	embedTempl [5]pt    // the five points in the input (embedGeom.five)

	livenessSize  int
	livenessBGR   bool
	livenessMean  [3]float32
	livenessNorm  float32 // 1/std
	livenessClass int     // index of the "live" output
	livenessScale float64
	livenessTaps  int

	smallImage int     // longest side (decoded pixels) up to which images get the border at once
	borderFrac float64 // border added around crops, as a fraction of the longer side

	uprightNorm      float64 // below it a face is checked in every orientation
	shiftTol         float64 // landmark consistency, as a fraction of the crop side
	flipTol          float64
	strictShift      float64 // very consistent
	strictFlip       float64
	clearNorm        float64 // below it, the best orientation must lead by orientMargin
	turnedNormMax    float64 // about the highest norm a turned face gives
	orientMargin     float64
	mirrorWeight     float64 // norm units per unit of mirror inconsistency, when orientations are compared
	soleNorm         float64 // a face found in one orientation only, with gross landmarks, needs this norm
	minEyeDist       float64 // smallest usable eye distance, in decoded pixels
	dominance        float64 // box area ratio by which one face dominates another
	minEnrollQuality float64 // smallest Quality accepted for enrollment
}

func newParams(m *models.Manifest, emb *models.Embedder) (params, error) {
	f, l := &m.Face, &m.Liveness
	geom, err := newGeometry(emb)
	if err != nil {
		return params{}, err
	}
	mean := uniform(emb.Mean)
	if len(emb.MeanRGB) == 3 {
		mean = [3]float32(emb.MeanRGB)
	}
	return params{
		detectThreshold:  f.DetectThreshold,
		nmsIoU:           float64(f.NMSIoU),
		detectBGR:        f.DetectChannels == "BGR",
		embedSize:        emb.Size,
		embedDims:        emb.Dims,
		embedMean:        mean,
		embedNorm:        1 / emb.Std,
		embedBGR:         emb.Channels == "BGR",
		embedTaps:        maxTaps,
		embedGeom:        geom,
		embedTempl:       geom.five,
		livenessSize:     l.Size,
		livenessBGR:      l.Channels == "BGR",
		livenessMean:     uniform(l.Mean),
		livenessNorm:     1 / l.Std,
		livenessClass:    l.LiveClass,
		livenessScale:    l.CropScale,
		livenessTaps:     1,
		smallImage:       400,
		borderFrac:       0.3,
		uprightNorm:      2.6,
		shiftTol:         0.045,
		flipTol:          0.025,
		strictShift:      0.02,
		strictFlip:       0.012,
		clearNorm:        3.0,
		turnedNormMax:    3.6,
		orientMargin:     0.3,
		mirrorWeight:     5,
		soleNorm:         2.0,
		minEyeDist:       10,
		dominance:        4,
		minEnrollQuality: 0.25,
	}, nil
}
