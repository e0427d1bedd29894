package central

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/internal/centraltest"
	pb "github.com/xplore/faceauth/proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestDirectoryPage: the directory's pages, searches and cursors, in the
// store's key order.
func TestDirectoryPage(t *testing.T) {
	d := newDirectory()
	for _, id := range []string{"bob", "alice-b", "alice", "Carol", "dave", "eve"} {
		d.set(&pb.UserRecord{Id: id, Name: "Name of " + id, Revision: 1, References: []*pb.Reference{{}}, CreatedAt: timestamppb.Now()})
	}
	d.set(&pb.UserRecord{Id: "dave", Name: "David", Revision: 2, References: []*pb.Reference{{}, {}}})
	d.remove("eve")
	d.remove("nobody")
	tests := []struct {
		q, after string
		limit    int
		want     []string
		next     string
	}{
		{"", "", 10, []string{"Carol", "alice-b", "alice", "bob", "dave"}, ""},
		{"", "", 2, []string{"Carol", "alice-b"}, "alice-b"},
		{"", "alice-b", 2, []string{"alice", "bob"}, "bob"},
		{"", "bob", 2, []string{"dave"}, ""},
		{"", "dave", 2, []string{}, ""},
		{"", "b", 10, []string{"bob", "dave"}, ""}, // a cursor that is no user
		{"ALICE", "", 10, []string{"alice-b", "alice"}, ""},
		{"alice", "", 1, []string{"alice-b"}, "alice-b"},
		{"alice", "alice-b", 1, []string{"alice"}, ""},
		{"david", "", 10, []string{"dave"}, ""},
		{"name of", "", 10, []string{"Carol", "alice-b", "alice", "bob"}, ""},
		{"eve", "", 10, []string{}, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("q=%s,after=%s,limit=%d", tt.q, tt.after, tt.limit), func(t *testing.T) {
			users, next := d.page(tt.q, "", tt.after, tt.limit)
			var got []string
			for _, u := range users {
				got = append(got, u.UserID)
			}
			if !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if next != tt.next {
				t.Errorf("next %q, want %q", next, tt.next)
			}
		})
	}
	if u, _ := d.page("david", "", "", 1); u[0].References != 2 || u[0].Revision != 2 {
		t.Errorf("dave after the update: %+v", u[0])
	}
}

// TestListReadsNoRecords: once the users are in memory, paging and
// searching the listing read no user record from the store, so a page
// costs the same with 100 users or 100,000 (BenchmarkListUsers100k has the
// times). Reading the store for each page, as the listing did before, fails.
func TestListReadsNoRecords(t *testing.T) {
	ctx := t.Context()
	st := &countingStore{Store: centraltest.Backends[0].Open(t), gets: map[string]int{}}
	reg := NewRegistry(Config{Store: st, Engine: centraltest.Engine(t), Info: centraltest.Engine(t).Info(), Log: quiet})
	const n = 300
	now := timestamppb.Now()
	for i := range n {
		rec := &pb.UserRecord{Id: fmt.Sprintf("u%05d", i), Name: fmt.Sprintf("Person %d", i), Revision: uint64(i + 1), CreatedAt: now, UpdatedAt: now,
			References: []*pb.Reference{{ImageId: strings.Repeat("a", 64), Embedding: &pb.Embedding{Model: "Other@00000000", Vector: []float32{1, 0}}}}}
		data, err := proto.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(ctx, recordKey(rec.Id), data, faceauth.Cond{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.WarmIndex(ctx); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	clear(st.gets)
	st.mu.Unlock()
	seen, after := 0, ""
	for {
		users, next, err := reg.List(ctx, "", "", after, 50)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(users)
		if next == "" {
			break
		}
		after = next
	}
	if seen != n {
		t.Fatalf("paged through %d users, want %d", seen, n)
	}
	for _, q := range []string{"person 7", "u0119", "nobody"} {
		if _, _, err := reg.List(ctx, q, "", "", 50); err != nil {
			t.Fatal(err)
		}
	}
	if got := st.count(recordsPrefix); got != 0 {
		t.Fatalf("paging and searching %d users read the store's records %d times, want 0", n, got)
	}
}
