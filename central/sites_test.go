package central

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/internal/centraltest"
	pb "github.com/xplore/faceauth/proto"
)

// msgText names a published message: "up A@3", "del A@2 moved->B,C",
// "del @4" (the scope of no site is empty).
func msgText(c *pb.UserChange) string {
	if u := c.GetUpsert(); u != nil {
		return "up " + u.Site
	}
	d := c.GetDelete()
	s := "del " + d.Site
	if d.Moved {
		s += " moved->" + strings.Join(d.RemainingSites, ",")
	}
	return s
}

func msgTexts(cs []*pb.UserChange) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = msgText(c)
	}
	return out
}

// TestSetSites changes a user's sites from one set to another and checks
// the record, the deletion record (the scopes left, where the user
// remains) and the messages published: a tombstone per scope left at one
// revision, then an upsert per scope at the next, each revision's messages
// saying how many it has.
func TestSetSites(t *testing.T) {
	crops := centraltest.FaceCrops(t)
	for _, tt := range []struct {
		name     string
		from, to []string
		msgs     []string // published by SetSites, in order
		deletion *pb.Deletion
	}{
		{name: "unchanged", from: []string{"A", "B"}, to: []string{"B", "A"}},
		{name: "add a site", from: []string{"A"}, to: []string{"A", "B"}, msgs: []string{"up A", "up B"}},
		{name: "move", from: []string{"A"}, to: []string{"B"}, msgs: []string{"up B", "del A moved->B"},
			deletion: &pb.Deletion{Sites: []string{"A"}, Moved: true, RemainingSites: []string{"B"}}},
		{name: "remove one of two", from: []string{"A", "B"}, to: []string{"B"}, msgs: []string{"up B", "del A moved->B"},
			deletion: &pb.Deletion{Sites: []string{"A"}, Moved: true, RemainingSites: []string{"B"}}},
		{name: "two to two others", from: []string{"A", "B"}, to: []string{"C", "D"}, msgs: []string{"up C", "up D", "del A moved->C,D", "del B moved->C,D"},
			deletion: &pb.Deletion{Sites: []string{"A", "B"}, Moved: true, RemainingSites: []string{"C", "D"}}},
		{name: "sites to every edge", from: []string{"A", "B"}, to: nil, msgs: []string{"up ", "del A moved->", "del B moved->"},
			deletion: &pb.Deletion{Sites: []string{"A", "B"}, Moved: true}},
		{name: "every edge to sites", from: nil, to: []string{"A", "B"}, msgs: []string{"up A", "up B", "del  moved->A,B"},
			deletion: &pb.Deletion{Moved: true, RemainingSites: []string{"A", "B"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			pub := &centraltest.Recorder{}
			r := newTestRegistry(t, centraltest.NewMemStore(), pub)
			reg, err := r.RegisterAt(ctx, "u", "", tt.from, []Image{{Data: crops[0]}})
			if err != nil {
				t.Fatal(err)
			}
			if got := msgTexts(pub.All()); !slices.Equal(got, msgTexts(upsertChanges(reg.Record))) || len(got) != max(1, len(tt.from)) {
				t.Fatalf("register in %v published %v", tt.from, got)
			}
			before := len(pub.All())
			res, err := r.SetSites(ctx, "u", tt.to)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Sorted(slices.Values(tt.to))
			if !slices.Equal(res.Record.Sites, want) || res.Changed != (len(tt.msgs) > 0) {
				t.Fatalf("SetSites: %+v, want sites %v", res, want)
			}
			if got, _ := r.Get(ctx, "u"); !slices.Equal(got.Sites, want) {
				t.Fatalf("stored sites %v, want %v", got.Sites, want)
			}
			pubd := pub.All()[before:]
			if got := msgTexts(pubd); !slices.Equal(got, tt.msgs) {
				t.Fatalf("published %v, want %v", got, tt.msgs)
			}
			for _, c := range pubd {
				n := 0
				for _, o := range pubd {
					if pb.ChangeRevision(o) == pb.ChangeRevision(c) {
						n++
					}
				}
				if int(max(c.Parts, 1)) != n {
					t.Errorf("%s at revision %d says %d parts, its revision has %d messages", msgText(c), pb.ChangeRevision(c), c.Parts, n)
				}
				if u := c.GetUpsert(); u != nil && u.Revision != res.Record.Revision {
					t.Errorf("upsert at revision %d, the record is at %d", u.Revision, res.Record.Revision)
				}
			}
			dels, _, err := r.DeletionRecords(ctx, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			if tt.deletion == nil {
				if len(dels) != 0 {
					t.Fatalf("deletion records %v, want none", dels)
				}
				return
			}
			if len(dels) != 1 {
				t.Fatalf("deletion records %v, want one", dels)
			}
			d := dels[0]
			if d.UserId != "u" || !slices.Equal(d.Sites, tt.deletion.Sites) || d.Moved != tt.deletion.Moved || !slices.Equal(d.RemainingSites, tt.deletion.RemainingSites) || d.Revision >= res.Record.Revision {
				t.Fatalf("deletion record %v, want %v before revision %d", d, tt.deletion, res.Record.Revision)
			}
			// A reconciliation publishes exactly the same messages.
			var snap []*pb.UserChange
			if err := r.Snapshot(ctx, nil, func(c *pb.UserChange) error { snap = append(snap, c); return nil }); err != nil {
				t.Fatal(err)
			}
			if got := msgTexts(snap); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tt.msgs))) {
				t.Fatalf("snapshot %v, want %v", got, tt.msgs)
			}
		})
	}
}

// TestSitesRefused: a set of sites with an invalid site or one listed
// twice is refused with a sentence, by register and by SetSites, and
// writes nothing; registering an existing user with other sites is a
// conflict.
func TestSitesRefused(t *testing.T) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	r := newTestRegistry(t, centraltest.NewMemStore(), nil)
	if _, err := r.RegisterAt(ctx, "u", "", []string{"A"}, []Image{{Data: crops[0]}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sites []string
		code  string
	}{
		{[]string{"A", "A"}, "duplicate_site"},
		{[]string{"A", "b c"}, "invalid_site"},
		{[]string{""}, "invalid_site"},
		{[]string{"a.b"}, "invalid_site"},
		{[]string{"_all"}, "invalid_site"},
		{manySites(pb.MaxUserSites + 1), "too_many_sites"},
	} {
		if _, err := r.SetSites(ctx, "u", tt.sites); !hasCode(err, tt.code) || faceauth.KindOf(err) != faceauth.KindInvalid {
			t.Errorf("SetSites(%q): %v, want %s", tt.sites, err, tt.code)
		}
		if _, err := r.RegisterAt(ctx, "v", "", tt.sites, []Image{{Data: crops[0]}}); !hasCode(err, tt.code) {
			t.Errorf("RegisterAt(%q): %v, want %s", tt.sites, err, tt.code)
		}
	}
	if _, err := r.Get(ctx, "v"); faceauth.KindOf(err) != faceauth.KindNotFound {
		t.Fatalf("a refused register wrote the user: %v", err)
	}
	if _, err := r.RegisterAt(ctx, "u", "", []string{"A", "B"}, []Image{{Data: crops[1]}}); !hasCode(err, "user_in_other_site") {
		t.Fatalf("register of a user of site A into A and B: %v", err)
	}
	if res, err := r.RegisterAt(ctx, "u", "", []string{"A"}, []Image{{Data: crops[1]}}); err != nil || len(res.Record.References) != 2 {
		t.Fatalf("register of a user of site A into A again: %+v %v", res, err)
	}
	if res, err := r.SetSites(ctx, "u", manySites(pb.MaxUserSites)); err != nil || len(res.Record.Sites) != pb.MaxUserSites {
		t.Fatalf("SetSites with the most sites: %v", err)
	}
	if _, err := r.SetSites(ctx, "nobody", []string{"A"}); faceauth.KindOf(err) != faceauth.KindNotFound {
		t.Fatalf("SetSites of an unknown user: %v", err)
	}
}

// TestOldSiteRecords: a record and a deletion record written when a user
// had one site (string site = 20, string moved_to = 22) read as one-site
// sets.
func TestOldSiteRecords(t *testing.T) {
	var old []byte
	old = protowire.AppendTag(old, 1, protowire.BytesType)
	old = protowire.AppendString(old, "u")
	old = protowire.AppendTag(old, 20, protowire.BytesType)
	old = protowire.AppendString(old, "site-a")
	var rec pb.UserRecord
	if err := proto.Unmarshal(old, &rec); err != nil || rec.Id != "u" || !slices.Equal(rec.Sites, []string{"site-a"}) {
		t.Fatalf("old record read as %v (%v)", &rec, err)
	}
	var oldDel []byte
	oldDel = protowire.AppendTag(oldDel, 1, protowire.BytesType)
	oldDel = protowire.AppendString(oldDel, "u")
	oldDel = protowire.AppendTag(oldDel, 20, protowire.BytesType)
	oldDel = protowire.AppendString(oldDel, "site-a")
	oldDel = protowire.AppendTag(oldDel, 21, protowire.VarintType)
	oldDel = protowire.AppendVarint(oldDel, 1)
	oldDel = protowire.AppendTag(oldDel, 22, protowire.BytesType)
	oldDel = protowire.AppendString(oldDel, "site-b")
	var d pb.Deletion
	if err := proto.Unmarshal(oldDel, &d); err != nil || !slices.Equal(d.Sites, []string{"site-a"}) || !d.Moved || !slices.Equal(d.RemainingSites, []string{"site-b"}) {
		t.Fatalf("old deletion record read as %v (%v)", &d, err)
	}

	// Through the registry: the old record's user is in site-a, and a
	// change of its sites starts from that set.
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	st := centraltest.NewMemStore()
	pub := &centraltest.Recorder{}
	r := newTestRegistry(t, st, pub)
	res, err := r.Register(ctx, "u", "", []Image{{Data: crops[0]}})
	if err != nil {
		t.Fatal(err)
	}
	data, ver, err := st.Get(ctx, recordKey("u"))
	if err != nil {
		t.Fatal(err)
	}
	data = protowire.AppendTag(data, 20, protowire.BytesType)
	data = protowire.AppendString(data, "site-a")
	if _, err := st.Put(ctx, recordKey("u"), data, faceauth.Cond{IfMatch: ver}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(ctx, "u"); err != nil || !slices.Equal(got.Sites, []string{"site-a"}) || got.Revision != res.Record.Revision {
		t.Fatalf("the old record through the registry: %v %v", got, err)
	}
	before := len(pub.All())
	if _, err := r.SetSites(ctx, "u", []string{"site-b"}); err != nil {
		t.Fatal(err)
	}
	if got := msgTexts(pub.All()[before:]); !slices.Equal(got, []string{"up site-b", "del site-a moved->site-b"}) {
		t.Fatalf("moving the old record's user published %v", got)
	}
}

// TestListBySite filters the users listing by a site.
func TestListBySite(t *testing.T) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	r := newTestRegistry(t, centraltest.NewMemStore(), nil)
	for id, sites := range map[string][]string{"ab": {"B", "A"}, "a": {"A"}, "b": {"B"}, "all": nil} {
		if _, err := r.RegisterAt(ctx, id, "", sites, []Image{{Data: crops[0]}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		site string
		want string
	}{{"", "a:A ab:A,B all: b:B"}, {"A", "a:A ab:A,B"}, {"B", "ab:A,B b:B"}, {"C", ""}} {
		users, _, err := r.List(ctx, "", tt.site, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, u := range users {
			got = append(got, u.UserID+":"+strings.Join(u.Sites, ","))
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("site %q: %v, want %s", tt.site, got, tt.want)
		}
	}
	if _, _, err := r.List(ctx, "", "a b", "", 100); !hasCode(err, "invalid_site") {
		t.Fatalf("a bad site filter: %v", err)
	}
}

// TestDeleteInSites: erasing a user of two sites writes a deletion record
// of both (so receipts are expected from the edges of either) and
// publishes a tombstone on each site's subject, at one revision.
func TestDeleteInSites(t *testing.T) {
	ctx := t.Context()
	crops := centraltest.FaceCrops(t)
	pub := &centraltest.Recorder{}
	r := newTestRegistry(t, centraltest.NewMemStore(), pub)
	if _, err := r.RegisterAt(ctx, "u", "", []string{"B", "A"}, []Image{{Data: crops[0]}}); err != nil {
		t.Fatal(err)
	}
	before := len(pub.All())
	res, err := r.Delete(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	got := pub.All()[before:]
	if texts := msgTexts(got); !slices.Equal(texts, []string{"del A", "del B"}) {
		t.Fatalf("the erasure published %v", texts)
	}
	for _, c := range got {
		if c.GetDelete().Revision != res.Revision || c.Parts != 2 {
			t.Errorf("tombstone %v, want revision %d of 2 parts", c, res.Revision)
		}
	}
	dels, _, err := r.DeletionRecords(ctx, 0, 10)
	if err != nil || len(dels) != 1 || !slices.Equal(dels[0].Sites, []string{"A", "B"}) || dels[0].Moved {
		t.Fatalf("deletion records %v %v", dels, err)
	}
}

// manySites returns n distinct sites.
func manySites(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("site-%d", i)
	}
	return out
}
