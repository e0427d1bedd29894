package pb_test

import (
	"testing"

	"github.com/xplore/faceauth"
	pb "github.com/xplore/faceauth/proto"
)

func TestBoxRoundTrip(t *testing.T) {
	b := faceauth.Box{X1: 1.5, Y1: 2, X2: 30.25, Y2: 41}
	if got := pb.BoxOf(b).Face(); got != b {
		t.Fatalf("BoxOf(%+v).Face() = %+v", b, got)
	}
	var none *pb.Box // a reference stored before boxes were kept
	if got := none.Face(); got != (faceauth.Box{}) {
		t.Fatalf("nil box = %+v, want the zero Box", got)
	}
}
