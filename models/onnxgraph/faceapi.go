package onnxgraph

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"
)

// FaceRecognitionNet input and output: an RGB 150x150 chip, already
// normalised ((pixel - mean) / std, done by the caller as for every
// embedder), in NCHW order; a 128-d descriptor (not normalised).
const (
	FaceRecognitionNetInput  = "input"
	FaceRecognitionNetOutput = "output"
	FaceRecognitionNetSize   = 150
	FaceRecognitionNetDims   = 128
)

// tfjsWeightGroup is one entry of a TF.js weights manifest
// (model-weights_manifest.json): shard files and the tensors stored in
// them, in order.
type tfjsWeightGroup struct {
	Paths   []string `json:"paths"`
	Weights []struct {
		Name         string  `json:"name"`
		Shape        []int64 `json:"shape"`
		DType        string  `json:"dtype"`
		Quantization *struct {
			DType string  `json:"dtype"`
			Scale float64 `json:"scale"`
			Min   float64 `json:"min"`
		} `json:"quantization"`
	} `json:"weights"`
}

// tfjsTensor is a decoded float32 tensor in TF.js layout.
type tfjsTensor struct {
	shape []int64
	v     []float32
}

// decodeTFJSWeights decodes a TF.js weights manifest whose tensors are
// all in the given shards (concatenated in the manifest's path order) into
// float32 tensors by name. Quantised tensors are dequantised as TF.js does
// (io.decodeWeights): value = min + scale * q for uint8 and uint16.
func decodeTFJSWeights(manifest []byte, shards ...[]byte) (map[string]tfjsTensor, error) {
	var groups []tfjsWeightGroup
	if err := json.Unmarshal(manifest, &groups); err != nil {
		return nil, fmt.Errorf("parse TF.js weights manifest: %w", err)
	}
	var data []byte
	for _, s := range shards {
		data = append(data, s...)
	}
	out := map[string]tfjsTensor{}
	off := 0
	for _, g := range groups {
		for _, w := range g.Weights {
			n := int64(1)
			for _, d := range w.Shape {
				if d <= 0 {
					return nil, fmt.Errorf("TF.js weight %s has shape %v", w.Name, w.Shape)
				}
				n *= d
			}
			if w.DType != "float32" {
				return nil, fmt.Errorf("TF.js weight %s has dtype %s; only float32 is supported", w.Name, w.DType)
			}
			size := 4
			if q := w.Quantization; q != nil {
				switch q.DType {
				case "uint8":
					size = 1
				case "uint16":
					size = 2
				default:
					return nil, fmt.Errorf("TF.js weight %s is quantised as %s; only uint8 and uint16 are supported", w.Name, q.DType)
				}
			}
			end := off + int(n)*size
			if end > len(data) {
				return nil, fmt.Errorf("TF.js weights end at byte %d, but %s needs bytes %d to %d", len(data), w.Name, off, end)
			}
			b := data[off:end]
			v := make([]float32, n)
			for i := range v {
				switch size {
				case 1:
					v[i] = float32(w.Quantization.Min + w.Quantization.Scale*float64(b[i]))
				case 2:
					v[i] = float32(w.Quantization.Min + w.Quantization.Scale*float64(binary.LittleEndian.Uint16(b[2*i:])))
				default:
					v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
				}
			}
			if _, dup := out[w.Name]; dup {
				return nil, fmt.Errorf("TF.js weight %s is listed twice", w.Name)
			}
			out[w.Name] = tfjsTensor{shape: w.Shape, v: v}
			off = end
		}
	}
	if off != len(data) {
		return nil, fmt.Errorf("TF.js weights manifest describes %d bytes, the shards hold %d", off, len(data))
	}
	return out, nil
}

// BuildFaceRecognitionNet builds an ONNX model of face-api.js's
// FaceRecognitionNet (dlib's ResNet-29 face descriptor, as ported to TF.js
// by Vincent Mühler and kept in @vladmandic/face-api) from its TF.js
// weights manifest and shard. The layers follow the package's
// src/faceRecognitionNet (FaceRecognitionNet.ts, residualLayer.ts,
// convLayer.ts, scaleLayer.ts):
//
//	convDown 7x7/2 (valid) 3->32, max pool 3/2 (valid)
//	3 x residual 32, residualDown 64, 3 x residual 64,
//	residualDown 128, 2 x residual 128, residualDown 256,
//	2 x residual 256, residualDown 256, global mean, fc 256->128
//
// where every conv layer is conv + bias, then a per-channel scale layer
// (x*weights + biases), then ReLU unless it is the second of a block; a
// residual block adds its input; a residualDown block adds its input
// average-pooled 2/2 (valid), zero-padded in channels, and pads its own
// output with a zero row and column where the two sizes differ. The scale
// layers are folded into the convolutions (w*s, b*s + t), which changes
// results only by float32 rounding.
//
// The result is deterministic: the same weights give the same bytes.
func BuildFaceRecognitionNet(manifest, shard []byte) ([]byte, error) {
	ws, err := decodeTFJSWeights(manifest, shard)
	if err != nil {
		return nil, err
	}
	b := &graphBuilder{w: ws, used: map[string]bool{}}
	x, size, ch := FaceRecognitionNetInput, int64(FaceRecognitionNetSize), int64(3)
	x, size, ch, err = b.conv(x, "conv32_down", size, ch, 2, true)
	if err != nil {
		return nil, err
	}
	x = b.node("MaxPool", "pool1", []string{x}, intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2))
	size = (size-3)/2 + 1
	blocks := []struct {
		name string
		down bool
	}{
		{"conv32_1", false}, {"conv32_2", false}, {"conv32_3", false},
		{"conv64_down", true}, {"conv64_1", false}, {"conv64_2", false}, {"conv64_3", false},
		{"conv128_down", true}, {"conv128_1", false}, {"conv128_2", false},
		{"conv256_down", true}, {"conv256_1", false}, {"conv256_2", false},
		{"conv256_down_out", true},
	}
	for _, blk := range blocks {
		if x, size, ch, err = b.residual(x, blk.name, size, ch, blk.down); err != nil {
			return nil, err
		}
	}
	x = b.node("GlobalAveragePool", "mean", []string{x})
	x = b.node("Flatten", "flatten", []string{x})
	fc, ok := ws["fc"]
	if !ok || len(fc.shape) != 2 || fc.shape[0] != ch || fc.shape[1] != FaceRecognitionNetDims {
		return nil, fmt.Errorf("TF.js weights: fc must be [%d,%d]", ch, FaceRecognitionNetDims)
	}
	b.used["fc"] = true
	b.init("fc", fc.shape, fc.v)
	b.nodes = append(b.nodes, &NodeProto{OpType: proto.String("MatMul"), Name: proto.String("fc"),
		Input: []string{x, "fc"}, Output: []string{FaceRecognitionNetOutput}})
	for name := range ws {
		if !b.used[name] {
			return nil, fmt.Errorf("TF.js weights: %s is not part of FaceRecognitionNet", name)
		}
	}

	float := TensorProto_FLOAT
	vi := func(name string, dims ...int64) *ValueInfoProto {
		var shape TensorShapeProto
		for _, d := range dims {
			shape.Dim = append(shape.Dim, &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &ValueInfoProto{Name: proto.String(name), Type: &TypeProto{Value: &TypeProto_TensorType{
			TensorType: &TypeProto_Tensor{ElemType: proto.Int32(int32(float)), Shape: &shape}}}}
	}
	m := &ModelProto{
		IrVersion:       proto.Int64(7),
		ProducerName:    proto.String("xplore-faceauth"),
		ProducerVersion: proto.String("1"),
		DocString:       proto.String("dlib ResNet-29 face descriptor (weights public domain, Davis King), from @vladmandic/face-api face_recognition_model (MIT), converted by models/onnxgraph.BuildFaceRecognitionNet"),
		OpsetImport:     []*OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &GraphProto{
			Name:        proto.String("face_recognition_net"),
			Node:        b.nodes,
			Initializer: b.inits,
			Input:       []*ValueInfoProto{vi(FaceRecognitionNetInput, 1, 3, FaceRecognitionNetSize, FaceRecognitionNetSize)},
			Output:      []*ValueInfoProto{vi(FaceRecognitionNetOutput, 1, FaceRecognitionNetDims)},
		},
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode onnx model: %w", err)
	}
	return out, nil
}

// graphBuilder collects the nodes and initializers of a model being built.
type graphBuilder struct {
	w     map[string]tfjsTensor
	used  map[string]bool
	nodes []*NodeProto
	inits []*TensorProto
}

func (b *graphBuilder) node(op, name string, in []string, attrs ...*AttributeProto) string {
	b.nodes = append(b.nodes, &NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: in, Output: []string{name}, Attribute: attrs})
	return name
}

func (b *graphBuilder) init(name string, dims []int64, v []float32) {
	t := &TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(TensorProto_FLOAT))}
	setFloats(t, v)
	b.inits = append(b.inits, t)
}

func (b *graphBuilder) initInt64(name string, v ...int64) {
	b.inits = append(b.inits, &TensorProto{Name: proto.String(name), Dims: []int64{int64(len(v))},
		DataType: proto.Int32(int32(TensorProto_INT64)), Int64Data: v})
}

func (b *graphBuilder) tensor(name string, shape ...int64) ([]float32, error) {
	t, ok := b.w[name]
	if !ok {
		return nil, fmt.Errorf("TF.js weights: %s is missing", name)
	}
	if fmt.Sprint(t.shape) != fmt.Sprint(shape) {
		return nil, fmt.Errorf("TF.js weights: %s has shape %v, want %v", name, t.shape, shape)
	}
	b.used[name] = true
	return t.v, nil
}

func intsAttr(name string, v ...int64) *AttributeProto {
	return &AttributeProto{Name: proto.String(name), Type: AttributeProto_INTS.Enum(), Ints: v}
}

// conv adds the conv layer called name (conv + bias + scale layer, then
// ReLU when relu) on x, an [1,inCh,size,size] tensor; stride 2 means a
// "valid" convolution, stride 1 a "same" one. It returns the output and
// its size and channel count.
func (b *graphBuilder) conv(x, name string, size, inCh, stride int64, relu bool) (string, int64, int64, error) {
	f, ok := b.w[name+"/conv/filters"]
	if !ok || len(f.shape) != 4 || f.shape[2] != inCh || f.shape[0] != f.shape[1] {
		return "", 0, 0, fmt.Errorf("TF.js weights: %s/conv/filters must be [k,k,%d,out]", name, inCh)
	}
	k, outCh := f.shape[0], f.shape[3]
	filters, err := b.tensor(name+"/conv/filters", k, k, inCh, outCh)
	if err != nil {
		return "", 0, 0, err
	}
	var bias, sw, sb []float32
	for _, p := range []struct {
		n string
		v *[]float32
	}{{"/conv/bias", &bias}, {"/scale/weights", &sw}, {"/scale/biases", &sb}} {
		if *p.v, err = b.tensor(name+p.n, outCh); err != nil {
			return "", 0, 0, err
		}
	}
	// TF.js filters are HWIO; ONNX wants OIHW. Fold the scale layer.
	w := make([]float32, len(filters))
	for h := int64(0); h < k; h++ {
		for ww := int64(0); ww < k; ww++ {
			for i := int64(0); i < inCh; i++ {
				for o := int64(0); o < outCh; o++ {
					src := ((h*k+ww)*inCh+i)*outCh + o
					dst := ((o*inCh+i)*k+h)*k + ww
					w[dst] = float32(float64(filters[src]) * float64(sw[o]))
				}
			}
		}
	}
	bb := make([]float32, outCh)
	for o := range bb {
		bb[o] = float32(float64(bias[o])*float64(sw[o]) + float64(sb[o]))
	}
	b.init(name+"/W", []int64{outCh, inCh, k, k}, w)
	b.init(name+"/B", []int64{outCh}, bb)
	pad := int64(0)
	if stride == 1 {
		pad = (k - 1) / 2 // TF "same" for odd k and stride 1
	}
	y := b.node("Conv", name, []string{x, name + "/W", name + "/B"},
		intsAttr("kernel_shape", k, k), intsAttr("strides", stride, stride), intsAttr("pads", pad, pad, pad, pad))
	if relu {
		y = b.node("Relu", name+"/relu", []string{y})
	}
	return y, (size+2*pad-k)/stride + 1, outCh, nil
}

// residual adds residual block name (residualDown when down) on x.
func (b *graphBuilder) residual(x, name string, size, ch int64, down bool) (string, int64, int64, error) {
	stride := int64(1)
	if down {
		stride = 2
	}
	y, ysize, ych, err := b.conv(x, name+"/conv1", size, ch, stride, true)
	if err != nil {
		return "", 0, 0, err
	}
	if y, ysize, ych, err = b.conv(y, name+"/conv2", ysize, ych, 1, false); err != nil {
		return "", 0, 0, err
	}
	short := x
	if down {
		short = b.node("AveragePool", name+"/pool", []string{x}, intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2))
		psize := (size-2)/2 + 1
		if ych != ch {
			b.initInt64(name+"/chpad", 0, 0, 0, 0, 0, ych-ch, 0, 0)
			short = b.node("Pad", name+"/pool/pad", []string{short, name + "/chpad"})
		}
		switch d := psize - ysize; {
		case d == 1:
			b.initInt64(name+"/hwpad", 0, 0, 0, 0, 0, 0, 1, 1)
			y = b.node("Pad", name+"/conv2/pad", []string{y, name + "/hwpad"})
			ysize = psize
		case d != 0:
			return "", 0, 0, fmt.Errorf("%s: pooled size %d and convolved size %d differ by more than one", name, psize, ysize)
		}
	} else if ych != ch || ysize != size {
		return "", 0, 0, fmt.Errorf("%s: a residual block must keep its shape", name)
	}
	sum := b.node("Add", name+"/add", []string{y, short})
	return b.node("Relu", name+"/relu", []string{sum}), ysize, ych, nil
}
