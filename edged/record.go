package edged

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// A stored user is one bbolt value, laid out so that loading 100k users
// needs no protobuf decoding and no per-field allocation:
//
//	byte     format (recordFormat)
//	8 bytes  revision, little-endian
//	1 byte   len(model), then the model id the vectors come from
//	1 byte   number of refused models, then each as 1 byte length + name
//	2 bytes  dims, little-endian
//	2 bytes  number of vectors, little-endian
//	         vectors: count*dims float32, little-endian
//
// A user whose change carried no embedding of the edge's model is stored
// with no vectors and the names of the models it did carry, so that its
// revision is still tracked and the refusal survives a restart.
const recordFormat = 1

// record is a decoded stored user.
type record struct {
	Revision uint64
	Model    string
	Refused  []string // models of the change the edge does not run; set only when Vecs is empty
	Vecs     [][]float32
}

// encodeRecord appends r's encoding to dst.
func encodeRecord(dst []byte, r *record) ([]byte, error) {
	if len(r.Model) > math.MaxUint8 {
		return nil, fmt.Errorf("model id %.20q... is longer than %d bytes", r.Model, math.MaxUint8)
	}
	if len(r.Refused) > math.MaxUint8 {
		return nil, fmt.Errorf("%d refused models, more than %d", len(r.Refused), math.MaxUint8)
	}
	dims := 0
	if len(r.Vecs) > 0 {
		dims = len(r.Vecs[0])
	}
	if dims > math.MaxUint16 || len(r.Vecs) > math.MaxUint16 {
		return nil, fmt.Errorf("%d vectors of %d dimensions is over the limit of %d", len(r.Vecs), dims, math.MaxUint16)
	}
	dst = append(dst, recordFormat)
	dst = binary.LittleEndian.AppendUint64(dst, r.Revision)
	dst = append(dst, byte(len(r.Model)))
	dst = append(dst, r.Model...)
	dst = append(dst, byte(len(r.Refused)))
	for _, m := range r.Refused {
		if len(m) > math.MaxUint8 {
			return nil, fmt.Errorf("refused model id %.20q... is longer than %d bytes", m, math.MaxUint8)
		}
		dst = append(dst, byte(len(m)))
		dst = append(dst, m...)
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(dims))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(r.Vecs)))
	for _, v := range r.Vecs {
		if len(v) != dims {
			return nil, fmt.Errorf("vectors of %d and %d dimensions in one user", dims, len(v))
		}
		for _, f := range v {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
		}
	}
	return dst, nil
}

// recordHeader is the part of a record before the vectors.
type recordHeader struct {
	Revision uint64
	Model    string
	Refused  []string
	Dims     int
	Count    int
	vecs     []byte // the raw vector bytes, aliasing the input
}

// decodeHeader parses b's header without copying the vectors. The strings
// are copied, since b may be bbolt's memory map.
func decodeHeader(b []byte) (recordHeader, error) {
	var h recordHeader
	if len(b) < 1+8+1 || b[0] != recordFormat {
		return h, fmt.Errorf("stored user record has an unknown format or is truncated (%d bytes)", len(b))
	}
	h.Revision = binary.LittleEndian.Uint64(b[1:9])
	b = b[9:]
	str := func() (string, bool) {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return "", false
		}
		s := string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
		return s, true
	}
	var ok bool
	if h.Model, ok = str(); !ok || len(b) < 1 {
		return h, fmt.Errorf("stored user record is truncated")
	}
	n := int(b[0])
	b = b[1:]
	for range n {
		m, ok := str()
		if !ok {
			return h, fmt.Errorf("stored user record is truncated")
		}
		h.Refused = append(h.Refused, m)
	}
	if len(b) < 4 {
		return h, fmt.Errorf("stored user record is truncated")
	}
	h.Dims = int(binary.LittleEndian.Uint16(b))
	h.Count = int(binary.LittleEndian.Uint16(b[2:]))
	b = b[4:]
	if len(b) != 4*h.Dims*h.Count {
		return h, fmt.Errorf("stored user record has %d vector bytes, want %d", len(b), 4*h.Dims*h.Count)
	}
	h.vecs = b
	return h, nil
}

// vectors copies the header's vectors out of the raw bytes into one
// allocation.
func (h *recordHeader) vectors() [][]float32 {
	if h.Count == 0 {
		return nil
	}
	var flat []float32
	return h.vectorsInto(&flat, nil)
}

// vectorsInto is vectors reusing flat and out when they are large enough,
// so that a bulk load allocates nothing per user. The result aliases them.
func (h *recordHeader) vectorsInto(buf *[]float32, out [][]float32) [][]float32 {
	n := h.Dims * h.Count
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	flat := (*buf)[:n]
	if littleEndian {
		// The stored bytes are the memory image of the floats: one copy.
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(flat))), 4*n), h.vecs)
	} else {
		for i := range flat {
			flat[i] = math.Float32frombits(binary.LittleEndian.Uint32(h.vecs[4*i:]))
		}
	}
	out = out[:0]
	for i := range h.Count {
		out = append(out, flat[i*h.Dims:(i+1)*h.Dims:(i+1)*h.Dims])
	}
	return out
}

// littleEndian reports whether float32 values are stored little-endian in
// memory, as they are in the file.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// decodeRecord decodes a whole record.
func decodeRecord(b []byte) (*record, error) {
	h, err := decodeHeader(b)
	if err != nil {
		return nil, err
	}
	return &record{Revision: h.Revision, Model: h.Model, Refused: h.Refused, Vecs: h.vectors()}, nil
}
