package publish

import (
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

// TestPartlyPublishedRevision: a revision is one message per subject it
// touches (an upsert per site of a user of several sites, a tombstone per
// site a move leaves). When the stream holds only some of them (central
// stopped between them, or a change was dropped), the reconciliation after
// a restart publishes the rest rather than taking the revision as held;
// otherwise an edge of the missing site would never receive the user, or
// never erase it.
func TestPartlyPublishedRevision(t *testing.T) {
	ctx := t.Context()
	n := natstest.Start(t)
	nc, js := natstest.Connect(t, n.URL())
	eng := centraltest.Engine(t)
	rec := &centraltest.Recorder{}
	reg := central.NewRegistry(central.Config{Store: centraltest.NewMemStore(), Engine: eng, Info: eng.Info(), Publisher: rec, Log: slog.New(slog.DiscardHandler)})
	crops := centraltest.FaceCrops(t)
	// The stream with only some of what the registry published: the rest
	// was lost with the central that published it.
	put := func(c *pb.UserChange) {
		t.Helper()
		m, err := pb.ChangeMsg(testSigner, c, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := pb.EnsureStreams(ctx, js, pb.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	// want waits until the stream holds exactly these revisions on the
	// user's subjects of these sites (read without a consumer, so that
	// polling leaves none behind).
	want := func(what string, w map[string]uint64) {
		t.Helper()
		have := map[string]uint64{}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			s, err := js.Stream(ctx, pb.UsersStream)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			clear(have)
			for site := range w {
				if m, err := s.GetLastMsgForSubject(ctx, testSigner.UserSubject("u", site)); err == nil {
					have[site], _ = pb.HeaderRevision(m.Header)
				}
			}
			if maps.Equal(have, w) && info.State.NumSubjects == uint64(len(w)) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: the stream holds %v, want %v", what, have, w)
	}

	// A user of two sites: only site-a's upsert reached the stream.
	res, err := reg.RegisterAt(ctx, "u", "", []string{"site-a", "site-b"}, []central.Image{{Data: crops[0]}})
	if err != nil {
		t.Fatal(err)
	}
	reg1 := rec.All()
	if len(reg1) != 2 || reg1[0].GetUpsert().GetSite() != "site-a" || reg1[0].GetParts() != 2 {
		t.Fatalf("register in two sites published %v", reg1)
	}
	put(reg1[0])
	_, stop := runPublisher(t, nc, reg, Options{Signer: testSigner})
	r1 := res.Record.Revision
	want("a user of two sites, one message lost", map[string]uint64{"site-a": r1, "site-b": r1})
	stop()

	// Moved to site-c: of the tombstones of site-a and site-b and the
	// upsert of site-c, only the first tombstone and the upsert reached
	// the stream.
	before := len(rec.All())
	res, err = reg.SetSites(ctx, "u", []string{"site-c"})
	if err != nil {
		t.Fatal(err)
	}
	moved := rec.All()[before:]
	var kinds []string
	for _, c := range moved {
		kinds = append(kinds, fmt.Sprintf("%s on %s", map[bool]string{true: "upsert", false: "tombstone"}[c.GetUpsert() != nil], testSigner.ChangeSubject(c)))
	}
	if len(moved) != 3 || moved[0].GetUpsert() == nil || moved[1].GetDelete().GetSite() != "site-a" || moved[2].GetDelete().GetSite() != "site-b" {
		t.Fatalf("the move published %v", kinds)
	}
	put(moved[0])
	put(moved[1])
	r2 := moved[1].GetDelete().GetRevision()
	runPublisher(t, nc, reg, Options{Signer: testSigner})
	want("a move, one tombstone lost", map[string]uint64{"site-a": r2, "site-b": r2, "site-c": res.Record.Revision})
}
