// Package onnxgraph holds the ONNX protobuf types (generated from
// onnx.proto) and graph rewrites that make models faster on ONNX Runtime's
// CPU provider without changing what they compute.
package onnxgraph

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/proto"
)

// RewritePReLU returns the model with every per-channel PRelu expressed
// with operators that ONNX Runtime's blocked (NCHWc) convolution layout
// runs natively, and the number of PRelu nodes rewritten.
//
// Why: the NCHWc layout has no PRelu kernel, so ONNX Runtime converts the
// tensor back to plain NCHW before each PRelu and into NCHWc again after
// it. In MobileFaceNet-style models (a PRelu after most convolutions) that
// costs more than the PRelus themselves.
//
// PRelu(x) = max(x,0) + a*min(x,0) = (1-a)*Relu(x) + a*x. When x comes
// straight from a convolution whose weights nothing else uses and every
// 1-a is positive, the convolution is scaled by 1-a (giving z = (1-a)*x)
// and the PRelu becomes Relu(z) + c*z with c = a/(1-a): one Relu, one
// BatchNormalization (which ONNX Runtime turns into a per-channel NCHWc
// convolution) and one Add. Otherwise it becomes Relu, two
// BatchNormalizations and an Add. The results equal the original up to
// float32 rounding.
//
// Only opsets 9 to 13 of the default domain are rewritten (where
// BatchNormalization-9 is current), and only PRelus that follow a 2-D
// convolution and have one constant slope per channel; other models and
// nodes are left as they are.
func RewritePReLU(model []byte) ([]byte, int, error) {
	var m ModelProto
	if err := proto.Unmarshal(model, &m); err != nil {
		return nil, 0, fmt.Errorf("parse onnx model: %w", err)
	}
	g := m.GetGraph()
	if g == nil {
		return nil, 0, fmt.Errorf("parse onnx model: it has no graph")
	}
	if v := defaultOpset(&m); v < 9 || v > 13 {
		return model, 0, nil
	}
	r := newRewriter(g)
	var nodes []*NodeProto
	for _, n := range g.Node {
		if n.GetOpType() == "PRelu" && n.GetDomain() == "" {
			if repl := r.prelu(n); repl != nil {
				nodes = append(nodes, repl...)
				r.count++
				continue
			}
		}
		nodes = append(nodes, n)
	}
	if r.count == 0 {
		return model, 0, nil
	}
	g.Node = nodes
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(&m)
	if err != nil {
		return nil, 0, fmt.Errorf("encode onnx model: %w", err)
	}
	return out, r.count, nil
}

func defaultOpset(m *ModelProto) int64 {
	for _, o := range m.OpsetImport {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// rewriter indexes a graph's initializers, producers and uses.
type rewriter struct {
	g        *GraphProto
	inits    map[string]*TensorProto
	producer map[string]*NodeProto
	uses     map[string]int // node inputs and graph outputs naming a value
	prefix   string         // starts every name the rewrite adds; no existing name does
	count    int
}

func newRewriter(g *GraphProto) *rewriter {
	r := &rewriter{g: g, inits: map[string]*TensorProto{}, producer: map[string]*NodeProto{}, uses: map[string]int{}}
	for _, t := range g.Initializer {
		r.inits[t.GetName()] = t
	}
	for _, n := range g.Node {
		for _, o := range n.Output {
			r.producer[o] = n
		}
		for _, i := range n.Input {
			r.uses[i]++
		}
	}
	for _, o := range g.Output {
		r.uses[o.GetName()]++
	}
	r.prefix = "prelu_rw"
	for taken := true; taken; {
		taken = false
		for name := range r.uses {
			taken = taken || strings.HasPrefix(name, r.prefix)
		}
		for name := range r.inits {
			taken = taken || strings.HasPrefix(name, r.prefix)
		}
		for name := range r.producer {
			taken = taken || strings.HasPrefix(name, r.prefix)
		}
		if taken {
			r.prefix += "_"
		}
	}
	return r
}

// prelu returns the nodes that replace n, or nil to keep it.
func (r *rewriter) prelu(n *NodeProto) []*NodeProto {
	if len(n.Input) != 2 || len(n.Output) != 1 {
		return nil
	}
	x, y := n.Input[0], n.Output[0]
	// BatchNormalization scales axis 1, which is the slope's channel axis
	// only for NCHW input: require the output of a 2-D convolution.
	conv, wT := r.conv2D(x)
	if conv == nil {
		return nil
	}
	slope, ok := r.inits[n.Input[1]]
	if !ok || !perChannel(slope.Dims) {
		return nil
	}
	a, ok := floats(slope)
	if !ok || int64(len(a)) != wT.Dims[0] {
		return nil
	}
	ch := len(a)
	p := fmt.Sprintf("%s%d_", r.prefix, r.count) // one prefix per rewritten node
	zeros, ones := make([]float32, ch), make([]float32, ch)
	for i := range ones {
		ones[i] = 1
	}
	r.addInit(p+"zero", zeros)
	r.addInit(p+"one", ones)
	bn := func(in, scale, out string) *NodeProto {
		return &NodeProto{
			OpType: proto.String("BatchNormalization"), Name: proto.String(out),
			Input:     []string{in, scale, p + "zero", p + "zero", p + "one"},
			Output:    []string{out},
			Attribute: []*AttributeProto{{Name: proto.String("epsilon"), Type: AttributeProto_FLOAT.Enum(), F: proto.Float32(0)}},
		}
	}
	relu := &NodeProto{OpType: proto.String("Relu"), Name: proto.String(p + "relu"), Input: []string{x}, Output: []string{p + "relu"}}
	add := func(l, rr string) *NodeProto {
		return &NodeProto{OpType: proto.String("Add"), Name: proto.String(p + "add"), Input: []string{l, rr}, Output: []string{y}}
	}

	if r.foldIntoConv(x, conv, wT, a, p) {
		c := make([]float32, ch)
		for i, v := range a {
			c[i] = float32(float64(v) / (1 - float64(v)))
		}
		r.addInit(p+"c", c)
		return []*NodeProto{relu, bn(x, p+"c", p+"lin"), add(p+"lin", p+"relu")}
	}
	pos := make([]float32, ch)
	for i, v := range a {
		pos[i] = 1 - v
	}
	r.addInit(p+"a", a)
	r.addInit(p+"1ma", pos)
	return []*NodeProto{relu, bn(x, p+"a", p+"lin"), bn(p+"relu", p+"1ma", p+"pos"), add(p+"lin", p+"pos")}
}

// conv2D returns the default-domain Conv that produces x and its constant
// 4-D (OIHW) weights, so that x is an NCHW tensor; nil when x is not such
// a convolution's output.
func (r *rewriter) conv2D(x string) (*NodeProto, *TensorProto) {
	conv, ok := r.producer[x]
	if !ok || conv.GetOpType() != "Conv" || conv.GetDomain() != "" || len(conv.Input) < 2 {
		return nil, nil
	}
	w, ok := r.inits[conv.Input[1]]
	if !ok || len(w.Dims) != 4 {
		return nil, nil
	}
	return conv, w
}

// foldIntoConv scales conv, which produces x with weights wT (one output
// channel per slope in a, as conv2D and prelu checked), by 1-a per output
// channel, when x is used only by the PRelu, the weights and bias are
// float32 constants used by nothing else, and every 1-a is positive. A
// missing bias is added (as zeros, named with prefix p).
func (r *rewriter) foldIntoConv(x string, conv *NodeProto, wT *TensorProto, a []float32, p string) bool {
	if r.uses[x] != 1 || r.uses[conv.Input[1]] != 1 {
		return false
	}
	for _, v := range a {
		if !(1-float64(v) > 0) {
			return false
		}
	}
	w, ok := floats(wT)
	if !ok {
		return false
	}
	var bT *TensorProto
	var b []float32
	if len(conv.Input) >= 3 && conv.Input[2] != "" {
		if bT, ok = r.inits[conv.Input[2]]; !ok || r.uses[conv.Input[2]] != 1 {
			return false
		}
		if b, ok = floats(bT); !ok || len(b) != len(a) {
			return false
		}
	} else {
		b = make([]float32, len(a))
		r.addInit(p+"bias", b)
		bT = r.inits[p+"bias"]
		conv.Input = append(conv.Input[:2], p+"bias")
	}
	per := len(w) / len(a)
	for o, v := range a {
		s := 1 - float64(v)
		for i := o * per; i < (o+1)*per; i++ {
			w[i] = float32(float64(w[i]) * s)
		}
		b[o] = float32(float64(b[o]) * s)
	}
	setFloats(wT, w)
	setFloats(bT, b)
	return true
}

func (r *rewriter) addInit(name string, v []float32) {
	t := &TensorProto{Name: proto.String(name), Dims: []int64{int64(len(v))}, DataType: proto.Int32(int32(TensorProto_FLOAT))}
	setFloats(t, v)
	r.g.Initializer = append(r.g.Initializer, t)
	r.inits[name] = t
}

// perChannel reports whether a slope of these dimensions holds one value
// per channel of an NCHW tensor: [C,1,1] or [1,C,1,1].
func perChannel(d []int64) bool {
	switch len(d) {
	case 3:
		return d[1] == 1 && d[2] == 1
	case 4:
		return d[0] == 1 && d[2] == 1 && d[3] == 1
	}
	return false
}

// floats returns a float32 tensor's values, or false when it is not a
// float32 tensor stored in the model with as many values as its shape says.
func floats(t *TensorProto) ([]float32, bool) {
	if t.GetDataType() != int32(TensorProto_FLOAT) || t.GetDataLocation() == TensorProto_EXTERNAL {
		return nil, false
	}
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	if raw := t.GetRawData(); raw != nil {
		if int64(len(raw)) != 4*n {
			return nil, false
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return v, true
	}
	if int64(len(t.FloatData)) != n {
		return nil, false
	}
	return append([]float32(nil), t.FloatData...), true
}

// setFloats stores v as t's values, in raw little-endian form.
func setFloats(t *TensorProto, v []float32) {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	t.RawData, t.FloatData = raw, nil
}
