package edged

import (
	"cmp"
	"fmt"
	"testing"

	pb "github.com/xplore/faceauth/proto"
)

// scoped is a user's message on the subject of one scope ("" no site).
func scopedUp(site string, rev uint64) *pb.UserChange {
	c := upsert("u", rev, testModel, vec(4, rev))
	c.GetUpsert().Site = site
	return c
}

func scopedDel(site string, rev uint64, moved bool, remaining ...string) *pb.UserChange {
	return &pb.UserChange{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{
		UserId: "u", Revision: rev, Site: site, Moved: moved, RemainingSites: remaining}}}
}

// interleavings returns every merge of the sequences that keeps each
// sequence's own order: the orders in which an edge's consumers, one per
// scope, may deliver them.
func interleavings(seqs [][]*pb.UserChange) [][]*pb.UserChange {
	var out [][]*pb.UserChange
	var walk func(pos []int, acc []*pb.UserChange)
	walk = func(pos []int, acc []*pb.UserChange) {
		done := true
		for i, s := range seqs {
			if pos[i] < len(s) {
				done = false
				next := append([]int(nil), pos...)
				next[i]++
				walk(next, append(append([]*pb.UserChange(nil), acc...), s[pos[i]]))
			}
		}
		if done {
			out = append(out, acc)
		}
	}
	walk(make([]int, len(seqs)), nil)
	return out
}

// TestSiteOrders applies a user's messages of several scopes, as a
// registry publishes them for each change of its sites, in every order
// the per-scope consumers of an edge may deliver them (whole histories,
// and what a bootstrapping edge reads: each subject's last message), at
// edges serving different sites. Every order must converge on the same
// state: the user held at its last revision where the edge serves one of
// its sites, else erased with one receipt owed when the edge held it.
func TestSiteOrders(t *testing.T) {
	const A, B = "site-a", "site-b"
	type outcome struct {
		held    uint64 // the revision held at the end; 0: erased or never held
		receipt bool   // the edge held the user and applied one delete (a receipt)
	}
	erased, absent := outcome{receipt: true}, outcome{}
	tests := []struct {
		name   string
		scopes map[string][]*pb.UserChange // each scope's messages in stream order
		// the outcome at an edge of A, of B, of A and B, of no site
		a, b, ab, none outcome
	}{
		{name: "move from A to B", scopes: map[string][]*pb.UserChange{
			A: {scopedUp(A, 1), scopedDel(A, 2, true, B)},
			B: {scopedUp(B, 3)},
		}, a: erased, b: outcome{held: 3}, ab: outcome{held: 3}, none: absent},
		{name: "add site B", scopes: map[string][]*pb.UserChange{
			A: {scopedUp(A, 1), scopedUp(A, 2)},
			B: {scopedUp(B, 2)},
		}, a: outcome{held: 2}, b: outcome{held: 2}, ab: outcome{held: 2}, none: absent},
		{name: "remove A of A and B", scopes: map[string][]*pb.UserChange{
			A: {scopedUp(A, 1), scopedDel(A, 2, true, B)},
			B: {scopedUp(B, 1), scopedUp(B, 3)},
		}, a: erased, b: outcome{held: 3}, ab: outcome{held: 3}, none: absent},
		{name: "erase a user of A and B", scopes: map[string][]*pb.UserChange{
			A: {scopedUp(A, 1), scopedDel(A, 2, false)},
			B: {scopedUp(B, 1), scopedDel(B, 2, false)},
		}, a: erased, b: erased, ab: erased, none: absent},
		{name: "erase a user of A and B, register again in A", scopes: map[string][]*pb.UserChange{
			A: {scopedUp(A, 1), scopedDel(A, 2, false), scopedUp(A, 4)},
			B: {scopedUp(B, 1), scopedDel(B, 2, false)},
		}, a: outcome{held: 4, receipt: true}, b: erased, ab: outcome{held: 4, receipt: true}, none: absent},
		{name: "from A to every edge", scopes: map[string][]*pb.UserChange{
			A:  {scopedUp(A, 1), scopedDel(A, 2, true)},
			"": {scopedUp("", 3)},
		}, a: outcome{held: 3}, b: outcome{held: 3}, ab: outcome{held: 3}, none: outcome{held: 3}},
		{name: "from every edge to A", scopes: map[string][]*pb.UserChange{
			"": {scopedUp("", 1), scopedDel("", 2, true, A)},
			A:  {scopedUp(A, 3)},
		}, a: outcome{held: 3}, b: erased, ab: outcome{held: 3}, none: erased},
	}
	for _, tt := range tests {
		for _, edge := range []struct {
			sites []string
			want  outcome
		}{{[]string{A}, tt.a}, {[]string{B}, tt.b}, {[]string{A, B}, tt.ab}, {nil, tt.none}} {
			sites, wantHeld, wantReceipt := edge.sites, edge.want.held, edge.want.receipt
			for _, bootstrap := range []bool{false, true} {
				var seqs [][]*pb.UserChange
				for scope, msgs := range tt.scopes {
					if !pb.InScope(sites, scope) {
						continue // the server never sends it
					}
					if bootstrap {
						msgs = msgs[len(msgs)-1:]
					}
					seqs = append(seqs, msgs)
				}
				for i, order := range interleavings(seqs) {
					name := fmt.Sprintf("%s/sites %v/bootstrap %v/order %d", tt.name, sites, bootstrap, i)
					d := openTestDB(t, t.TempDir())
					if _, err := d.setSites(sites); err != nil {
						t.Fatal(err)
					}
					deletes, rejects, users := 0, 0, 0
					for n, c := range order {
						// Each scope's consumer delivers it; stream sequences
						// grow in every scope as they do across the stream.
						scope := cmp.Or(c.GetUpsert().GetSite()+c.GetDelete().GetSite(), pb.NoSite)
						out, err := d.apply(0, []entry{{Scope: scope, Seq: uint64(n + 1), Change: c}}, 4)
						if err != nil {
							t.Fatal(err)
						}
						deletes += out.Deletes
						rejects += len(out.Invalid)
						users += out.UsersDelta
					}
					got, counts := loaded(t, d)
					v, ok := got["u"]
					switch {
					case users != len(got) || counts.Users != len(got):
						// An edge of both sites holds the user once, and
						// counts it once (the heartbeat's user_count).
						t.Errorf("%s: %d users counted while applying, %d on load, %d held", name, users, counts.Users, len(got))
					case wantHeld == 0 && ok:
						t.Errorf("%s: the user is held, want erased", name)
					case wantHeld > 0 && (!ok || v != vec(4, wantHeld)[0]):
						t.Errorf("%s: held %v (%v), want revision %d", name, ok, v, wantHeld)
					case wantReceipt && !bootstrap && deletes != 1:
						// (A bootstrapping edge never held the user: a
						// tombstone it applies still owes nothing new.)
						t.Errorf("%s: %d deletes applied, want 1", name, deletes)
					case !wantReceipt && deletes != 0:
						t.Errorf("%s: %d deletes applied, want none", name, deletes)
					case bootstrap && rejects != 0:
						// What the stream holds, read in any order, is
						// never taken for a replay (which the edge reports
						// as feed_rejected).
						t.Errorf("%s: %d messages rejected, want none", name, rejects)
					}
				}
			}
		}
	}
}
