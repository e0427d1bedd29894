package pb

import "github.com/xplore/faceauth"

// BoxOf returns b as it crosses the wire.
func BoxOf(b faceauth.Box) *Box {
	return &Box{X1: b.X1, Y1: b.Y1, X2: b.X2, Y2: b.Y2}
}

// Face returns the box as the services use it; a nil box is the zero Box.
func (x *Box) Face() faceauth.Box {
	return faceauth.Box{X1: x.GetX1(), Y1: x.GetY1(), X2: x.GetX2(), Y2: x.GetY2()}
}
