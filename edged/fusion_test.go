package edged

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models/face"
	pb "github.com/xplore/faceauth/proto"
)

// TestFusedModelEdge runs an edge on the fused model ArcFace+dlib: it
// holds the fused embeddings central sends (both models' embeddings in
// one vector), answers verify and identify with the fused score, the
// fusion's threshold and its model id, and refuses a user whose
// reference was made by another model.
func TestFusedModelEdge(t *testing.T) {
	fused, err := face.New(context.Background(), face.Config{ModelsDir: testenv.ModelsDir(t), Model: "ArcFace+dlib", Workers: 1, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer fused.Close()
	arc, err := face.New(context.Background(), face.Config{ModelsDir: testenv.ModelsDir(t), Model: "ArcFace", Workers: 1, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer arc.Close()
	embedWith := func(eng *face.Engine, img []byte) []float32 {
		a, err := eng.Analyze(context.Background(), img, faceauth.Request{})
		if err != nil {
			t.Fatal(err)
		}
		return a.Embedding
	}
	signer, err := auth.SignerFromSecret("edge fusion test secret")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := signer.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())
	alice := faceJPEG(t, "sample1.jpg", 640, 480)
	bob := faceJPEG(t, "sample2.jpg", 640, 480)

	n := startNATS(t)
	js := n.client(t)
	publishConfig(t, js, pb.TokenKeySubject, pb.KindTokenKey, &pb.TokenKey{KeyId: signer.KeyID(), PublicKey: signer.PublicKey()}, 1)
	publish(t, js, upsert("alice", 1, fused.Info().Model, embedWith(fused, alice)),
		upsert("dave", 2, arc.Info().Model, embedWith(arc, bob)))
	e := startEdge(t, t.TempDir(), n.url, func(c *Config) { c.Engine, c.Info = fused, fused.Info() })
	waitFor(t, 20*time.Second, "the edge to sync", func() bool {
		r := e.Ready()
		return r.Synced && r.Users == 1 && r.TokenKeyID == signer.KeyID()
	})
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()

	var v api.VerifyResponse
	if status, body := post(t, srv.URL+"/api/verify", tok, map[string]string{"user_id": "alice"}, alice); status != 200 || json.Unmarshal(body, &v) != nil ||
		!v.Verified || v.Model != fused.Info().Model || v.Threshold != fused.Info().Threshold || v.Similarity == nil || *v.Similarity < 0.99 {
		t.Fatalf("verify alice: %d %+v", status, v)
	}
	v = api.VerifyResponse{}
	if status, body := post(t, srv.URL+"/api/verify", tok, map[string]string{"user_id": "alice"}, bob); status != 200 || json.Unmarshal(body, &v) != nil ||
		v.Verified || v.Model != fused.Info().Model {
		t.Fatalf("verify bob as alice: %d %+v", status, v)
	}
	if status, body := post(t, srv.URL+"/api/verify", tok, map[string]string{"user_id": "dave"}, bob); status != 503 {
		t.Fatalf("verify a user of another model: %d %s, want 503", status, body)
	}
	var id api.IdentifyResponse
	if status, body := post(t, srv.URL+"/api/identify", tok, nil, alice); status != 200 || json.Unmarshal(body, &id) != nil ||
		len(id.Matches) != 1 || id.Matches[0].UserID != "alice" || id.Matches[0].Similarity < fused.Info().Threshold {
		t.Fatalf("identify alice: %d %+v", status, id)
	}
}
