package central

import (
	"context"
	"fmt"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models/face"
	"github.com/xplore/faceauth/models/face/realface"
)

// TestSwitchToFusedModel switches a registry enrolled with ArcFace to the
// fused model ArcFace+dlib, as setting VERIFICATION_MODEL does: every
// user is re-embedded from the stored photos into the fused embedding
// (both models' embeddings in one vector), the 1:N search finds each user
// by a fused probe with a score at or above the fusion's threshold, and a
// probe of the old model is refused as a model mismatch.
func TestSwitchToFusedModel(t *testing.T) {
	ctx := t.Context()
	s := centraltest.Backends[0].Open(t)
	crops := realface.Crops(t)
	arc := NewRegistry(Config{Store: s, Engine: realface.Engine(t), Info: realface.Engine(t).Info(), Log: quiet})
	for i := range 4 {
		if _, err := arc.Register(ctx, fmt.Sprintf("p%d", i), "", []Image{{Data: crops[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	fused, err := face.New(context.Background(), face.Config{ModelsDir: testenv.ModelsDir(t), Model: "ArcFace+dlib", Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fused.Close()
	r := NewRegistry(Config{Store: s, Engine: fused, Info: fused.Info(), Log: quiet})
	if r.Model() == arc.Model() {
		t.Fatalf("the fused registry reports the old model %s", r.Model())
	}
	if n, err := r.Reembed(ctx); err != nil || n != 4 {
		t.Fatalf("Reembed = %d, %v; want all 4 users", n, err)
	}
	for i := range 4 {
		vecs, err := r.Embeddings(ctx, fmt.Sprintf("p%d", i), r.Model())
		if err != nil || len(vecs) != 1 || len(vecs[0]) != 512+128 {
			t.Fatalf("p%d after the switch: %d vectors, %v", i, len(vecs), err)
		}
		a, err := fused.Analyze(ctx, centraltest.Variant(t, crops[i], 75), faceauth.Request{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Search(ctx, a.Embedding, a.Model, fused.Info().Threshold, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 || m[0].UserID != fmt.Sprintf("p%d", i) || m[0].Similarity < fused.Info().Threshold {
			t.Fatalf("search for p%d with the fused model: %+v (threshold %v)", i, m, fused.Info().Threshold)
		}
	}
	old, err := realface.Engine(t).Analyze(ctx, crops[0], faceauth.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Search(ctx, old.Embedding, old.Model, fused.Info().Threshold, 3); !hasCode(err, "model_mismatch") {
		t.Fatalf("an ArcFace probe against the fused registry: %v, want model_mismatch", err)
	}
}
