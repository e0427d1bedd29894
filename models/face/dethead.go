package face

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/models/onnxgraph"
)

// The detector graph ends in about forty small nodes that turn the four
// heads' convolution outputs into softmaxed scores and corner boxes for
// all 4420 anchors: transposes, reshapes, concatenations, a softmax and
// the prior-box decode. In ONNX Runtime they cost about 0.3 ms of the
// detector's 2.6 ms, for boxes of which a handful pass the score
// threshold. So the engine cuts the graph after the heads' convolutions
// (cutDetector) and decodes in Go only the anchors whose score passes
// (detDecoder.decode), with the priors and variances read from the graph,
// computing the same float32 operations the graph did.

// detHead is one detector head: its classification and regression
// convolution outputs (NCHW, 2 and 4 channels per anchor) over an h x w
// feature map.
type detHead struct {
	cls, reg   string
	anchors    int
	h, w       int
	priorStart int // index of the head's first anchor in the priors
}

// detDecoder decodes the cut detector's outputs.
type detDecoder struct {
	heads     []detHead
	priors    []float32 // per anchor: centre x, centre y, width, height (fractions of the input)
	centerVar float32
	sizeVar   float32
}

// outputs lists the cut graph's outputs in the order the engine binds
// them: each head's classification, then its regression.
func (d *detDecoder) outputs() []tensorSpec {
	var out []tensorSpec
	for _, h := range d.heads {
		out = append(out,
			tensorSpec{h.cls, shape4(1, 2*h.anchors, h.h, h.w)},
			tensorSpec{h.reg, shape4(1, 4*h.anchors, h.h, h.w)})
	}
	return out
}

// candidates appends to dst the boxes, as fractions of the input, of
// every anchor whose face score (the softmax of its two logits) is at
// least thresh. outs are the cut graph's outputs in the order of outputs.
// The anchors are visited in the order of the original graph's output
// (head by head; row, column, anchor).
func (d *detDecoder) candidates(outs func(i int) []float32, thresh float32, dst []box) []box {
	for hi, h := range d.heads {
		cls, reg := outs(2*hi), outs(2*hi+1)
		hw := h.h * h.w
		k := h.priorStart
		for p := 0; p < hw; p++ {
			for a := 0; a < h.anchors; a, k = a+1, k+1 {
				l0, l1 := cls[2*a*hw+p], cls[(2*a+1)*hw+p]
				if l1 <= l0 && thresh > 0.5 { // a score of at most 0.5: no exp needed
					continue
				}
				// As ONNX Runtime's softmax, in float32: each exp(x - max),
				// their sum, then the face's exp times 1/sum. Scores that
				// round to exactly 1 tie, and the order of tied boxes
				// decides which box NMS keeps, so this rounding matters.
				mx := max(l0, l1)
				e0, e1 := float32(math.Exp(float64(l0-mx))), float32(math.Exp(float64(l1-mx)))
				s := e1 * (1 / (e0 + e1))
				if s < thresh {
					continue
				}
				pr := d.priors[4*k : 4*k+4 : 4*k+4]
				// As the graph: centre = loc * centerVar * prior size +
				// prior centre; size = exp(loc * sizeVar) * prior size;
				// corners = centre -+ size / 2.
				cx := float32(float32(reg[4*a*hw+p]*d.centerVar)*pr[2]) + pr[0]
				cy := float32(float32(reg[(4*a+1)*hw+p]*d.centerVar)*pr[3]) + pr[1]
				bw := float32(math.Exp(float64(float32(reg[(4*a+2)*hw+p]*d.sizeVar)))) * pr[2]
				bh := float32(math.Exp(float64(float32(reg[(4*a+3)*hw+p]*d.sizeVar)))) * pr[3]
				dst = append(dst, box{
					x1: float64(cx - bw/2), y1: float64(cy - bh/2),
					x2: float64(cx + bw/2), y2: float64(cy + bh/2),
					score: s,
				})
			}
		}
	}
	return dst
}

func shape4(a, b, c, d int) []int64 { return []int64{int64(a), int64(b), int64(c), int64(d)} }

// cutDetector returns the detector graph without its decoding tail, and
// the decoder that replaces it. It recognises the tail of fr_detect.onnx
// (the Ultra-Light-Fast-Generic-Face-Detector layout) and fails on any
// other graph.
func cutDetector(model []byte) ([]byte, *detDecoder, error) {
	var m onnxgraph.ModelProto
	if err := proto.Unmarshal(model, &m); err != nil {
		return nil, nil, fmt.Errorf("parse detector: %w", err)
	}
	g := m.GetGraph()
	if g == nil {
		return nil, nil, fmt.Errorf("parse detector: no graph")
	}
	c := newGraphIndex(g)
	bad := func(what string) error { return fmt.Errorf("detector graph: %s", what) }

	// scores = Softmax(Concat(cls heads)); the regression Concat is the
	// other one whose inputs are reshaped, transposed convolutions.
	var clsCat, regCat *onnxgraph.NodeProto
	for _, n := range g.Node {
		if n.GetOpType() == "Softmax" && len(n.Input) == 1 {
			clsCat = c.producer[n.Input[0]]
		}
	}
	if clsCat == nil || clsCat.GetOpType() != "Concat" {
		return nil, nil, bad("no softmax over concatenated heads")
	}
	for _, n := range g.Node {
		if n != clsCat && n.GetOpType() == "Concat" && len(n.Input) == len(clsCat.Input) && c.headConv(n.Input[0]) != "" {
			regCat = n
		}
	}
	if regCat == nil {
		return nil, nil, bad("no concatenated regression heads")
	}
	d := &detDecoder{}
	for i := range clsCat.Input {
		cls, reg := c.headConv(clsCat.Input[i]), c.headConv(regCat.Input[i])
		cc, rc := c.convChannels(cls), c.convChannels(reg)
		if cls == "" || reg == "" || cc%2 != 0 || rc != 2*cc {
			return nil, nil, bad(fmt.Sprintf("head %d is not a pair of convolutions with 2 and 4 channels per anchor", i))
		}
		d.heads = append(d.heads, detHead{cls: cls, reg: reg, anchors: cc / 2})
	}

	// The decode: Add(Mul(Mul(loc, centerVar), priorSize), priorCentre)
	// and Mul(Exp(Mul(loc, sizeVar)), priorSize).
	var centres, sizes []float32
	for _, n := range g.Node {
		switch n.GetOpType() {
		case "Add":
			for j, in := range n.Input {
				v, ok := c.constant(in)
				if !ok || len(v) < 2 {
					continue
				}
				centres = v
				mul := c.producer[n.Input[1-j]]
				if mul == nil || mul.GetOpType() != "Mul" {
					return nil, nil, bad("prior centres not added to scaled offsets")
				}
				for k, x := range mul.Input {
					if s, ok := c.constant(x); ok && len(s) > 1 {
						sizes = s
						inner := c.producer[mul.Input[1-k]]
						if inner == nil || inner.GetOpType() != "Mul" {
							return nil, nil, bad("centre variance not found")
						}
						for _, x := range inner.Input {
							if s, ok := c.constant(x); ok && len(s) == 1 {
								d.centerVar = s[0]
							}
						}
					}
				}
			}
		case "Exp":
			if mul := c.producer[n.Input[0]]; mul != nil && mul.GetOpType() == "Mul" {
				for _, x := range mul.Input {
					if s, ok := c.constant(x); ok && len(s) == 1 {
						d.sizeVar = s[0]
					}
				}
			}
		}
	}
	if centres == nil || len(centres) != len(sizes) || len(centres)%2 != 0 || d.centerVar == 0 || d.sizeVar == 0 {
		return nil, nil, bad("prior boxes and variances not found")
	}
	n := len(centres) / 2
	d.priors = make([]float32, 4*n)
	for k := 0; k < n; k++ {
		d.priors[4*k], d.priors[4*k+1] = centres[2*k], centres[2*k+1]
		d.priors[4*k+2], d.priors[4*k+3] = sizes[2*k], sizes[2*k+1]
	}
	// Each head's feature map size from its first prior, centred on the
	// first cell: (0.5/w, 0.5/h), where w and h are the input size over
	// the stride (7.5 for 240/32, whose map has 8 rows).
	k := 0
	for i := range d.heads {
		h := &d.heads[i]
		if k >= n {
			return nil, nil, bad("fewer priors than anchors")
		}
		h.priorStart = k
		h.w = int(math.Round(0.5 / float64(d.priors[4*k])))
		h.h = int(math.Round(0.5 / float64(d.priors[4*k+1])))
		if h.w <= 0 || h.h <= 0 {
			return nil, nil, bad("prior centres do not start at the first cell")
		}
		k += h.w * h.h * h.anchors
	}
	if k != n {
		return nil, nil, bad(fmt.Sprintf("%d anchors in the heads, %d priors", k, n))
	}

	// Keep what the heads need; the outputs are the heads' convolutions.
	g.Output = nil
	var keep []string
	for _, s := range d.outputs() {
		keep = append(keep, s.name)
		g.Output = append(g.Output, &onnxgraph.ValueInfoProto{
			Name: proto.String(s.name),
			Type: &onnxgraph.TypeProto{Value: &onnxgraph.TypeProto_TensorType{TensorType: &onnxgraph.TypeProto_Tensor{
				ElemType: proto.Int32(int32(onnxgraph.TensorProto_FLOAT)),
				Shape:    shapeProto(s.shape),
			}}},
		})
	}
	c.prune(keep)
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(&m)
	if err != nil {
		return nil, nil, fmt.Errorf("encode detector: %w", err)
	}
	return out, d, nil
}

func shapeProto(s []int64) *onnxgraph.TensorShapeProto {
	sp := &onnxgraph.TensorShapeProto{}
	for _, v := range s {
		sp.Dim = append(sp.Dim, &onnxgraph.TensorShapeProto_Dimension{Value: &onnxgraph.TensorShapeProto_Dimension_DimValue{DimValue: v}})
	}
	return sp
}

// graphIndex finds producers, constants and initializers by name.
type graphIndex struct {
	g        *onnxgraph.GraphProto
	producer map[string]*onnxgraph.NodeProto
	inits    map[string]*onnxgraph.TensorProto
}

func newGraphIndex(g *onnxgraph.GraphProto) *graphIndex {
	c := &graphIndex{g: g, producer: map[string]*onnxgraph.NodeProto{}, inits: map[string]*onnxgraph.TensorProto{}}
	for _, n := range g.Node {
		for _, o := range n.Output {
			c.producer[o] = n
		}
	}
	for _, t := range g.Initializer {
		c.inits[t.GetName()] = t
	}
	return c
}

// headConv returns the convolution output that the value name reshapes
// from NCHW to (anchor, values) rows: Reshape(Transpose(conv, perm
// 0,2,3,1)), or "".
func (c *graphIndex) headConv(name string) string {
	r := c.producer[name]
	if r == nil || r.GetOpType() != "Reshape" {
		return ""
	}
	t := c.producer[r.Input[0]]
	if t == nil || t.GetOpType() != "Transpose" {
		return ""
	}
	for _, a := range t.Attribute {
		if a.GetName() == "perm" && !slices.Equal(a.Ints, []int64{0, 2, 3, 1}) {
			return ""
		}
	}
	conv := c.producer[t.Input[0]]
	if conv == nil || conv.GetOpType() != "Conv" {
		return ""
	}
	return t.Input[0]
}

// convChannels is the number of output channels of the convolution that
// produces name, from its weights, or 0.
func (c *graphIndex) convChannels(name string) int {
	conv := c.producer[name]
	if conv == nil || len(conv.Input) < 2 {
		return 0
	}
	w := c.inits[conv.Input[1]]
	if w == nil || len(w.GetDims()) != 4 {
		return 0
	}
	return int(w.GetDims()[0])
}

// constant returns the float values of a Constant node's output or an
// initializer.
func (c *graphIndex) constant(name string) ([]float32, bool) {
	var t *onnxgraph.TensorProto
	if n := c.producer[name]; n != nil && n.GetOpType() == "Constant" {
		for _, a := range n.Attribute {
			if a.GetName() == "value" {
				t = a.GetT()
			}
		}
	} else {
		t = c.inits[name]
	}
	if t == nil || t.GetDataType() != int32(onnxgraph.TensorProto_FLOAT) {
		return nil, false
	}
	if f := t.GetFloatData(); len(f) > 0 {
		return f, true
	}
	raw := t.GetRawData()
	if len(raw)%4 != 0 {
		return nil, false
	}
	v := make([]float32, len(raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v, true
}

// prune keeps the nodes and initializers that the named values depend
// on, in their order.
func (c *graphIndex) prune(outputs []string) {
	need := map[string]bool{}
	stack := slices.Clone(outputs)
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if need[v] {
			continue
		}
		need[v] = true
		if n := c.producer[v]; n != nil {
			stack = append(stack, n.Input...)
		}
	}
	var nodes []*onnxgraph.NodeProto
	for _, n := range c.g.Node {
		if slices.ContainsFunc(n.Output, func(o string) bool { return need[o] }) {
			nodes = append(nodes, n)
		}
	}
	c.g.Node = nodes
	var inits []*onnxgraph.TensorProto
	for _, t := range c.g.Initializer {
		if need[t.GetName()] {
			inits = append(inits, t)
		}
	}
	c.g.Initializer = inits
	var vi []*onnxgraph.ValueInfoProto
	for _, v := range c.g.ValueInfo {
		if need[v.GetName()] {
			vi = append(vi, v)
		}
	}
	c.g.ValueInfo = vi
}
