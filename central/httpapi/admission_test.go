package httpapi

import (
	"testing"
	"time"

	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/internal/api"
)

// TestImageRoutesAdmitted: every route that takes an image goes through
// the admission gate, so a burst of uploads is shed with 503 busy before
// its bodies are read, however many arrive (docs/configuration.md,
// PIPELINE_QUEUE). A route that skipped it would hold every request's
// body in memory and run its pipeline past the bound.
func TestImageRoutesAdmitted(t *testing.T) {
	crops := centraltest.FaceCrops(t)
	adm := api.NewAdmission(api.AdmitConfig{Slots: 1, Queue: 0, Wait: time.Hour})
	ts := newTestServer(t, func(c *Config) { c.Admission = adm })
	if r := ts.do(t, "POST", "/api/register", ts.admin, part{name: "user_id", value: "alice"}, part{name: "image", file: crops[0]}); r.status != 201 {
		t.Fatalf("setup: %d %s", r.status, r.raw)
	}
	img := part{name: "image", file: crops[0]}
	tests := []struct {
		name, method, path string
		parts              []part
	}{
		{"register", "POST", "/api/register", []part{{name: "user_id", value: "bob"}, img}},
		{"add images", "POST", "/api/users/alice/images", []part{img}},
		{"verify", "POST", "/api/verify", []part{{name: "user_id", value: "alice"}, img}},
		{"identify", "POST", "/api/identify", []part{img}},
		{"analyse", "POST", "/api/analyse", []part{img}},
	}
	// The one place is taken, as by an upload in the pipeline.
	leave, err := adm.Enter("test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, tt.method, tt.path, ts.admin, tt.parts...)
			if r.status != 503 || r.str("code") != "busy" || r.header.Get("Retry-After") == "" {
				t.Errorf("with the admission full: %d %s, want 503 busy with Retry-After", r.status, r.raw)
			}
		})
	}
	leave()
	for _, tt := range tests {
		if r := ts.do(t, tt.method, tt.path, ts.admin, tt.parts...); r.status >= 300 {
			t.Errorf("%s with the admission free: %d %s", tt.name, r.status, r.raw)
		}
	}
}
