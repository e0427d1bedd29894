package edged

import (
	"math"
	"slices"
	"testing"
)

// FuzzDecodeRecord feeds arbitrary bytes to the decoder of stored users
// (bbolt values, which a damaged or tampered file can hold): it must never
// panic nor read out of bounds, and what it accepts must survive a round
// trip through encodeRecord unchanged.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []*record{
		{Revision: 7, Model: "ArcFace@0123abcd", Vecs: [][]float32{{0.6, 0.8}, {1, 0}}},
		{Revision: 1, Refused: []string{"FaceNet@1", "Other@2"}},
		{Revision: math.MaxUint64, Model: "m", Vecs: [][]float32{{}}},
	} {
		b, err := encodeRecord(nil, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{recordFormat, 0, 0, 0, 0, 0, 0, 0, 0, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		h, err := decodeHeader(b)
		if err != nil || h.Count != len(r.Vecs) || h.Revision != r.Revision {
			t.Fatalf("header %+v, %v disagrees with record %+v", h, err, r)
		}
		again, err := encodeRecord(nil, r)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		r2, err := decodeRecord(again)
		if err != nil {
			t.Fatalf("a re-encoded record does not decode: %v", err)
		}
		if r2.Revision != r.Revision || r2.Model != r.Model || !slices.Equal(r2.Refused, r.Refused) || len(r2.Vecs) != len(r.Vecs) {
			t.Fatalf("round trip changed %+v into %+v", r, r2)
		}
		for i := range r.Vecs {
			if !slices.EqualFunc(r.Vecs[i], r2.Vecs[i], func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
				t.Fatalf("vector %d changed in the round trip", i)
			}
		}
	})
}
