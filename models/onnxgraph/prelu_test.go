package onnxgraph

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/internal/testenv"
)

const ch, side = 4, 3 // channels and spatial side of the test tensors

// TestRewritePReLU rewrites small Conv -> PRelu graphs and checks, with a
// reference interpreter, that the result computes the same values and
// has the expected shape.
func TestRewritePReLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	slopes := func(vals ...float32) []float32 { return vals }
	tests := []struct {
		name       string
		build      func() *ModelProto
		rewritten  int
		wantOps    map[string]int // op counts after the rewrite
		wantFolded bool           // the PRelu slope went into the Conv
	}{
		{"foldable", func() *ModelProto { return convPReLU(rng, slopes(-0.5, 0.1, 0.25, 0.9), true, 9) }, 1,
			map[string]int{"Conv": 1, "Relu": 1, "BatchNormalization": 1, "Add": 1}, true},
		{"conv without bias", func() *ModelProto { return convPReLU(rng, slopes(-0.5, 0.1, 0.25, 0.9), false, 11) }, 1,
			map[string]int{"Conv": 1, "Relu": 1, "BatchNormalization": 1, "Add": 1}, true},
		{"slope of 1 or more", func() *ModelProto { return convPReLU(rng, slopes(-0.5, 1, 1.25, 0.3), true, 13) }, 1,
			map[string]int{"Conv": 1, "Relu": 1, "BatchNormalization": 2, "Add": 1}, false},
		{"conv output used twice", func() *ModelProto {
			m := convPReLU(rng, slopes(0.1, 0.2, 0.3, 0.4), true, 9)
			m.Graph.Output = append(m.Graph.Output, &ValueInfoProto{Name: proto.String("x")})
			return m
		}, 1, map[string]int{"Conv": 1, "Relu": 1, "BatchNormalization": 2, "Add": 1}, false},
		{"weights shared", func() *ModelProto {
			m := convPReLU(rng, slopes(0.1, 0.2, 0.3, 0.4), true, 9)
			g := m.Graph
			g.Node = append(g.Node, &NodeProto{OpType: proto.String("Conv"), Input: []string{"in", "w", "b"}, Output: []string{"x2"}})
			g.Output = append(g.Output, &ValueInfoProto{Name: proto.String("x2")})
			return m
		}, 1, map[string]int{"Conv": 2, "Relu": 1, "BatchNormalization": 2, "Add": 1}, false},
		{"scalar slope kept", func() *ModelProto {
			m := convPReLU(rng, slopes(0.1, 0.2, 0.3, 0.4), true, 9)
			m.Graph.Initializer = append(m.Graph.Initializer, tensor("s1", []int64{1}, []float32{0.2}))
			m.Graph.Node[1].Input[1] = "s1"
			return m
		}, 0, map[string]int{"Conv": 1, "PRelu": 1}, false},
		{"not after a convolution kept", func() *ModelProto {
			m := convPReLU(rng, slopes(0.1, 0.2, 0.3, 0.4), true, 9)
			g := m.Graph
			g.Node = append([]*NodeProto{{OpType: proto.String("Relu"), Input: []string{"in"}, Output: []string{"r"}}}, g.Node...)
			g.Node[2].Input[0] = "r" // the PRelu now reads the Relu
			g.Output = append(g.Output, &ValueInfoProto{Name: proto.String("x")})
			return m
		}, 0, map[string]int{"Conv": 1, "Relu": 1, "PRelu": 1}, false},
		{"names already taken", func() *ModelProto {
			m := convPReLU(rng, slopes(-0.5, 0.1, 0.25, 0.9), true, 9)
			m.Graph.Node[0].Output[0] = "prelu_rw0_relu" // the conv output takes a name the rewrite would use
			m.Graph.Node[1].Input[0] = "prelu_rw0_relu"
			return m
		}, 1, map[string]int{"Conv": 1, "Relu": 1, "BatchNormalization": 1, "Add": 1}, true},
		{"opset 14 kept", func() *ModelProto { return convPReLU(rng, slopes(0.1, 0.2, 0.3, 0.4), true, 14) }, 0,
			map[string]int{"Conv": 1, "PRelu": 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.build()
			in, err := proto.Marshal(orig)
			if err != nil {
				t.Fatal(err)
			}
			out, n, err := RewritePReLU(in)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.rewritten {
				t.Fatalf("rewrote %d PRelu nodes, want %d", n, tt.rewritten)
			}
			var got ModelProto
			if err := proto.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			ops := map[string]int{}
			for _, nd := range got.Graph.Node {
				ops[nd.GetOpType()]++
			}
			if !equalCounts(ops, tt.wantOps) {
				t.Errorf("ops after the rewrite %v, want %v", ops, tt.wantOps)
			}
			if n == 0 {
				return
			}
			x := make([]float32, ch*side*side)
			for i := range x {
				x[i] = rng.Float32()*4 - 2
			}
			for _, name := range outputNames(orig) {
				want, have := eval(t, orig, x)[name], eval(t, &got, x)[name]
				for i := range want {
					if d := math.Abs(float64(want[i] - have[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s[%d] = %g after the rewrite, %g before", name, i, have[i], want[i])
					}
				}
			}
			folded := false
			for name := range evalInits(&got) {
				folded = folded || strings.HasPrefix(name, "prelu_rw") && strings.HasSuffix(name, "0_c")
			}
			if folded != tt.wantFolded {
				t.Errorf("slope folded into the convolution: %v, want %v", folded, tt.wantFolded)
			}
		})
	}
}

func TestRewritePReLURejectsGarbage(t *testing.T) {
	if _, _, err := RewritePReLU([]byte("not a model")); err == nil {
		t.Fatal("no error for bytes that are not an ONNX model")
	}
	if _, _, err := RewritePReLU(nil); err == nil {
		t.Fatal("no error for an empty model")
	}
}

// convPReLU builds in -> Conv(1x1) -> x -> PRelu -> y.
func convPReLU(rng *rand.Rand, slope []float32, bias bool, opset int64) *ModelProto {
	w := make([]float32, ch*ch)
	for i := range w {
		w[i] = rng.Float32()*2 - 1
	}
	b := make([]float32, ch)
	for i := range b {
		b[i] = rng.Float32() - 0.5
	}
	conv := &NodeProto{OpType: proto.String("Conv"), Input: []string{"in", "w"}, Output: []string{"x"}}
	inits := []*TensorProto{tensor("w", []int64{ch, ch, 1, 1}, w), tensor("slope", []int64{ch, 1, 1}, slope)}
	if bias {
		conv.Input = append(conv.Input, "b")
		inits = append(inits, tensor("b", []int64{ch}, b))
	}
	return &ModelProto{
		IrVersion:   proto.Int64(7),
		OpsetImport: []*OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		Graph: &GraphProto{
			Name: proto.String("test"),
			Node: []*NodeProto{conv,
				{OpType: proto.String("PRelu"), Input: []string{"x", "slope"}, Output: []string{"y"}}},
			Initializer: inits,
			Input:       []*ValueInfoProto{{Name: proto.String("in")}},
			Output:      []*ValueInfoProto{{Name: proto.String("y")}},
		},
	}
}

func tensor(name string, dims []int64, v []float32) *TensorProto {
	return &TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(TensorProto_FLOAT)), FloatData: v}
}

func outputNames(m *ModelProto) []string {
	var s []string
	for _, o := range m.Graph.Output {
		s = append(s, o.GetName())
	}
	return s
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func evalInits(m *ModelProto) map[string][]float32 {
	vals := map[string][]float32{}
	for _, t := range m.Graph.Initializer {
		v, _ := floats(t)
		vals[t.GetName()] = v
	}
	return vals
}

// eval interprets the graph on a [1,ch,side,side] input with the few
// operators these tests use (1x1 Conv, PRelu, Relu, BatchNormalization,
// Add), returning every value by name.
func eval(t *testing.T, m *ModelProto, in []float32) map[string][]float32 {
	t.Helper()
	vals := evalInits(m)
	vals["in"] = in
	const hw = side * side
	for _, n := range m.Graph.Node {
		arg := func(i int) []float32 {
			if i >= len(n.Input) || n.Input[i] == "" {
				return nil
			}
			v, ok := vals[n.Input[i]]
			if !ok {
				t.Fatalf("%s reads %q, which nothing produced", n.GetOpType(), n.Input[i])
			}
			return v
		}
		out := make([]float32, ch*hw)
		switch n.GetOpType() {
		case "Conv":
			x, w, b := arg(0), arg(1), arg(2)
			for o := 0; o < ch; o++ {
				for p := 0; p < hw; p++ {
					var s float64
					if b != nil {
						s = float64(b[o])
					}
					for i := 0; i < ch; i++ {
						s += float64(w[o*ch+i]) * float64(x[i*hw+p])
					}
					out[o*hw+p] = float32(s)
				}
			}
		case "PRelu":
			x, a := arg(0), arg(1)
			for i, v := range x {
				if v < 0 {
					v *= a[i/hw]
				}
				out[i] = v
			}
		case "Relu":
			for i, v := range arg(0) {
				out[i] = max(v, 0)
			}
		case "BatchNormalization":
			x, sc, b, mean, vr := arg(0), arg(1), arg(2), arg(3), arg(4)
			eps := n.Attribute[0].GetF()
			for i, v := range x {
				c := i / hw
				out[i] = sc[c]*(v-mean[c])/float32(math.Sqrt(float64(vr[c]+eps))) + b[c]
			}
		case "Add":
			x, y := arg(0), arg(1)
			for i := range out {
				out[i] = x[i] + y[i]
			}
		default:
			t.Fatalf("the test interpreter has no %s", n.GetOpType())
		}
		vals[n.Output[0]] = out
	}
	return vals
}

// The bundled embedder and liveness model have a PRelu after 33
// convolutions each; all of them are rewritten.
func TestRewritePReLUBundledModels(t *testing.T) {
	dir := testenv.ModelsDir(t)
	for _, f := range []string{"fr_feature.onnx", "fr_liveness.onnx"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out, n, err := RewritePReLU(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var m ModelProto
		if err := proto.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		left := 0
		for _, nd := range m.Graph.Node {
			if nd.GetOpType() == "PRelu" {
				left++
			}
		}
		if n != 33 || left != 0 {
			t.Errorf("%s: %d PRelu rewritten, %d left; want 33 and 0", f, n, left)
		}
	}
}
