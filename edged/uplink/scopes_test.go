package uplink_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/central/publish"
	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

func TestPlanScopes(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	st := uplink.StreamState{FirstSeq: 5, LastSeq: 20, Created: t0}
	scopes := []string{pb.NoSite, "A", "B"}
	tests := []struct {
		name     string
		pos      map[string]uint64
		created  time.Time
		st       uplink.StreamState
		wantFull bool
		wantFrom []uint64 // per scope, in scopes' order
	}{
		{"fresh edge", nil, time.Time{}, st, true, []uint64{5, 5, 5}},
		{"a file from before scopes", map[string]uint64{}, t0, st, true, []uint64{5, 5, 5}},
		{"each scope from its own position", map[string]uint64{pb.NoSite: 12, "A": 7, "B": 20}, t0, st, false, []uint64{13, 8, 21}},
		{"a scope empty so far is read from the start", map[string]uint64{pb.NoSite: 12, "A": 7}, t0, st, false, []uint64{13, 8, 5}},
		{"one scope's unseen messages removed", map[string]uint64{pb.NoSite: 12, "A": 3, "B": 20}, t0, st, true, []uint64{5, 5, 5}},
		{"stream re-created", map[string]uint64{pb.NoSite: 12, "A": 7, "B": 20}, t1, st, true, []uint64{5, 5, 5}},
		{"stream reset", map[string]uint64{pb.NoSite: 12, "A": 25}, t0, st, true, []uint64{5, 5, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := uplink.PlanScopes(tc.pos, tc.created, tc.st, scopes)
			var names []string
			var from []uint64
			for _, sc := range r.Scopes {
				names, from = append(names, sc.Name), append(from, sc.From)
			}
			if r.Full != tc.wantFull || !slices.Equal(from, tc.wantFrom) || !slices.Equal(names, scopes) || r.Reason == "" {
				t.Fatalf("PlanScopes = %+v, want full=%v from=%v", r, tc.wantFull, tc.wantFrom)
			}
		})
	}
}

// TestConsumeScopes: one consumer per scope, merged. An edge of site A
// gets the users of no site and of A, each delivery naming its scope, never
// a user of B; it is caught up (Pending 0) with every scope, an empty one
// included; and it resumes each scope from its own sequence.
func TestConsumeScopes(t *testing.T) {
	n := natstest.Start(t)
	src := natstest.NewSource()
	nc, js := natstest.Connect(t, n.URL())
	p, _ := runPublisher(t, nc, src, publish.Options{Signer: testSigner})
	site := func(id, s string) *pb.UserChange {
		return src.Set(func(rev uint64) *pb.UserChange {
			return &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{
				UserId: id, Revision: rev, Site: s, UpdatedAt: timestamppb.Now(),
				Embeddings: []*pb.Embedding{{Model: "m1", Vector: []float32{1, 2}}},
			}}}
		})
	}
	want := map[string]string{} // user -> scope an edge of A reads it in
	for i, id := range []string{"all-1", "a-1", "b-1", "all-2", "a-2", "b-2", "a-3"} {
		s := []string{"", "A", "B"}[i%3]
		if id == "a-3" {
			s = "A"
		}
		p.Publish(site(id, s))
		if s != "B" {
			want[id] = pb.Scope(s)
		}
	}
	waitStreamMsgs(t, js, 7)

	// C is one of the edge's sites with no user yet.
	scopes := []uplink.Scope{{Name: pb.NoSite}, {Name: "A"}, {Name: "C"}}
	got := map[string]string{}
	last := map[string]uint64{}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := errors.New("done")
	err := uplink.Consume(ctx, js, uplink.ConsumeOptions{Keys: testKeys, Scopes: scopes}, func(ds []uplink.Delivery) error {
		for _, d := range ds {
			if d.Err != nil {
				t.Fatalf("message %d: %v", d.Seq, d.Err)
			}
			if d.Seq <= last[d.Scope] {
				t.Fatalf("scope %s delivered %d after %d", d.Scope, d.Seq, last[d.Scope])
			}
			last[d.Scope] = d.Seq
			got[pb.ChangeUserID(d.Change)] = d.Scope
		}
		if ds[len(ds)-1].Pending == 0 {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("Consume: %v, having read %v", err, got)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("caught up having read %v, want %v", got, want)
	}

	// Resuming: each scope from past its own last message gets only what
	// came since, in its scope.
	p.Publish(site("a-4", "A"))
	p.Publish(site("b-4", "B"))
	p.Publish(site("all-3", ""))
	waitStreamMsgs(t, js, 10)
	for i := range scopes {
		scopes[i].From = last[scopes[i].Name] + 1
	}
	live := natstest.Collect(t, js, uplink.ConsumeOptions{Keys: testKeys, Scopes: scopes}, 2)
	var ids []string
	for _, d := range live {
		ids = append(ids, d.Scope+":"+pb.ChangeUserID(d.Change))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"A:a-4", "_all:all-3"}) {
		t.Fatalf("resumed with %v", ids)
	}
}

// waitStreamMsgs waits until the users stream holds n messages.
func waitStreamMsgs(t *testing.T, js jetstream.JetStream, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := uplink.ReadStreamState(t.Context(), js)
		if err == nil && st.Msgs == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the users stream holds %+v (%v), want %d messages", st, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
