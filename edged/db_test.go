package edged

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	pb "github.com/xplore/faceauth/proto"
)

const testModel = "test-model"

// vec returns a deterministic unit vector for seed.
func vec(dims int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, dims)
	var n float64
	for i := range v {
		v[i] = float32(r.NormFloat64())
		n += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(n))
	}
	return v
}

func upsert(id string, rev uint64, model string, vecs ...[]float32) *pb.UserChange {
	u := &pb.UserUpsert{UserId: id, Revision: rev}
	for _, v := range vecs {
		u.Embeddings = append(u.Embeddings, &pb.Embedding{Model: model, Vector: v})
	}
	return &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: u}}
}

func del(id string, rev uint64) *pb.UserChange {
	return &pb.UserChange{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{UserId: id, Revision: rev}}}
}

func openTestDB(t *testing.T, dir string) *db {
	t.Helper()
	d, err := openDB(filepath.Join(dir, "edge.db"), testModel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close() })
	return d
}

// loaded returns the served set as id -> first vector's first value.
func loaded(t *testing.T, d *db) (map[string]float32, loadCounts) {
	t.Helper()
	got := map[string]float32{}
	c, err := d.load(func(id string, vecs [][]float32) error {
		got[id] = vecs[0][0]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, c
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []record{
		{Revision: 1, Model: "m", Vecs: [][]float32{vec(4, 1), vec(4, 2)}},
		{Revision: math.MaxUint64, Refused: []string{"a", "bb"}},
		{Revision: 3, Model: "m"},
	} {
		b, err := encodeRecord(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Revision != r.Revision || got.Model != r.Model || !slices.Equal(got.Refused, r.Refused) || len(got.Vecs) != len(r.Vecs) {
			t.Fatalf("round trip of %+v gave %+v", r, got)
		}
		for i := range r.Vecs {
			if !slices.Equal(got.Vecs[i], r.Vecs[i]) {
				t.Fatalf("vector %d differs", i)
			}
		}
		for n := range len(b) - 1 {
			if _, err := decodeRecord(b[:n]); err == nil {
				t.Fatalf("truncated to %d of %d bytes: no error", n, len(b))
			}
		}
	}
	if _, err := encodeRecord(nil, &record{Vecs: [][]float32{{1, 2}, {1}}}); err == nil {
		t.Fatal("ragged vectors encoded")
	}
}

func TestApply(t *testing.T) {
	a1, a2, b1 := vec(4, 1), vec(4, 2), vec(4, 3)
	tests := []struct {
		name    string
		changes []*pb.UserChange
		want    map[string]float32 // id -> first value of the first vector
		refused map[string]int
		ignored int
		invalid int
		deletes int
	}{
		{name: "upserts", changes: []*pb.UserChange{upsert("alice", 1, testModel, a1), upsert("bob", 2, testModel, b1)},
			want: map[string]float32{"alice": a1[0], "bob": b1[0]}},
		{name: "newer replaces", changes: []*pb.UserChange{upsert("alice", 1, testModel, a1), upsert("alice", 3, testModel, a2)},
			want: map[string]float32{"alice": a2[0]}},
		// An older revision is a replay: refused (a reject), not applied.
		{name: "older refused", changes: []*pb.UserChange{upsert("alice", 3, testModel, a2), upsert("alice", 1, testModel, a1)},
			want: map[string]float32{"alice": a2[0]}, invalid: 1},
		{name: "same revision ignored", changes: []*pb.UserChange{upsert("alice", 3, testModel, a2), upsert("alice", 3, testModel, a1)},
			want: map[string]float32{"alice": a2[0]}, ignored: 1},
		{name: "delete", changes: []*pb.UserChange{upsert("alice", 1, testModel, a1), upsert("bob", 2, testModel, b1), del("alice", 3)},
			want: map[string]float32{"bob": b1[0]}, deletes: 1},
		{name: "older than delete refused", changes: []*pb.UserChange{upsert("alice", 1, testModel, a1), del("alice", 3), upsert("alice", 2, testModel, a2)},
			want: map[string]float32{}, deletes: 1, invalid: 1},
		// An older tombstone is ignored: another scope's, read late.
		{name: "older delete ignored", changes: []*pb.UserChange{upsert("alice", 5, testModel, a1), del("alice", 3)},
			want: map[string]float32{"alice": a1[0]}, ignored: 1},
		{name: "re-register after delete", changes: []*pb.UserChange{upsert("alice", 1, testModel, a1), del("alice", 2), upsert("alice", 4, testModel, a2)},
			want: map[string]float32{"alice": a2[0]}, deletes: 1},
		{name: "other model refused", changes: []*pb.UserChange{upsert("alice", 1, "other", a1), upsert("bob", 2, testModel, b1)},
			want: map[string]float32{"bob": b1[0]}, refused: map[string]int{"other": 1}},
		{name: "own model kept among others", changes: []*pb.UserChange{upsert("alice", 1, "other", a1), upsert("alice", 2, testModel, a2)},
			want: map[string]float32{"alice": a2[0]}},
		{name: "refused after update", changes: []*pb.UserChange{upsert("alice", 1, testModel, a1), upsert("alice", 2, "other", a2)},
			want: map[string]float32{}, refused: map[string]int{"other": 1}},
		{name: "wrong dims", changes: []*pb.UserChange{upsert("alice", 1, testModel, []float32{1, 0})},
			want: map[string]float32{}, invalid: 1},
		{name: "NaN", changes: []*pb.UserChange{upsert("alice", 1, testModel, []float32{float32(math.NaN()), 0, 0, 0})},
			want: map[string]float32{}, invalid: 1},
		{name: "not normalised", changes: []*pb.UserChange{upsert("alice", 1, testModel, []float32{1, 1, 0, 0})},
			want: map[string]float32{}, invalid: 1},
		{name: "bad id", changes: []*pb.UserChange{upsert("../x", 1, testModel, a1), del("", 2)},
			want: map[string]float32{}, invalid: 2},
		{name: "empty change", changes: []*pb.UserChange{{}},
			want: map[string]float32{}, invalid: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openTestDB(t, t.TempDir())
			var es []entry
			for i, c := range tt.changes {
				es = append(es, entry{Seq: uint64(i + 1), Change: c})
			}
			// Apply one at a time and all at once: both must agree.
			var ignored, invalid, deletes, users int
			refused := map[string]int{}
			for _, e := range es {
				out, err := d.apply(0, []entry{e}, 4)
				if err != nil {
					t.Fatal(err)
				}
				ignored += out.Ignored
				invalid += len(out.Invalid)
				deletes += out.Deletes
				users += out.UsersDelta
				for m, n := range out.RefusedDelta {
					refused[m] += n
				}
			}
			got, c := loaded(t, d)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("set = %v, want %v", got, tt.want)
			}
			if ignored != tt.ignored || invalid != tt.invalid || deletes != tt.deletes {
				t.Errorf("ignored %d invalid %d deletes %d, want %d %d %d", ignored, invalid, deletes, tt.ignored, tt.invalid, tt.deletes)
			}
			if users != len(tt.want) || c.Users != len(tt.want) {
				t.Errorf("user count delta %d, loaded %d, want %d", users, c.Users, len(tt.want))
			}
			for m, n := range refused {
				if n == 0 {
					delete(refused, m)
				}
			}
			if tt.refused == nil {
				tt.refused = map[string]int{}
			}
			if fmt.Sprint(refused) != fmt.Sprint(tt.refused) || fmt.Sprint(c.Refused) != fmt.Sprint(tt.refused) {
				t.Errorf("refused deltas %v, loaded %v, want %v", refused, c.Refused, tt.refused)
			}
			st, err := d.state()
			if err != nil {
				t.Fatal(err)
			}
			if st.Seq != uint64(len(es)) {
				t.Errorf("seq = %d, want %d", st.Seq, len(es))
			}

			d2 := openTestDB(t, t.TempDir())
			if _, err := d2.apply(0, es, 4); err != nil {
				t.Fatal(err)
			}
			if got2, _ := loaded(t, d2); fmt.Sprint(got2) != fmt.Sprint(got) {
				t.Errorf("one batch gave %v, one by one %v", got2, got)
			}
		})
	}
}

func TestApplySkipsRedelivered(t *testing.T) {
	d := openTestDB(t, t.TempDir())
	if _, err := d.apply(0, []entry{{Seq: 5, Change: upsert("alice", 1, testModel, vec(4, 1))}}, 4); err != nil {
		t.Fatal(err)
	}
	out, err := d.apply(0, []entry{{Seq: 5, Change: del("alice", 2)}, {Seq: 6, Change: upsert("bob", 3, testModel, vec(4, 2))}}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if out.Ignored != 1 || out.Deletes != 0 || out.State.Seq != 6 || out.State.Revision != 3 {
		t.Fatalf("outcome %+v", out)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	d := openTestDB(t, dir)
	v := vec(4, 1)
	if _, err := d.apply(0, []entry{{Seq: 1, Change: upsert("alice", 7, testModel, v)}}, 4); err != nil {
		t.Fatal(err)
	}
	if err := d.setTokenKey(&pb.TokenKey{KeyId: "k1", PublicKey: []byte{1, 2, 3}}, 5); err != nil {
		t.Fatal(err)
	}
	d.close()
	// A second process cannot open it while the first holds it.
	d = openTestDB(t, dir)
	if _, err := openDB(filepath.Join(dir, "edge.db"), testModel); err == nil {
		t.Fatal("second open of a held file succeeded")
	}
	r, err := d.lookup("alice")
	if err != nil || r == nil || r.Revision != 7 || !slices.Equal(r.Vecs[0], v) {
		t.Fatalf("after reopen: %+v, %v", r, err)
	}
	k, rev, err := d.tokenKey()
	if err != nil || k.GetKeyId() != "k1" || rev != 5 {
		t.Fatalf("token key after reopen: %v, %v", k, err)
	}
	st, _ := d.state()
	if st.Seq != 1 || st.Revision != 7 {
		t.Fatalf("state %+v", st)
	}
	d.close()

	// Another model: the set is dropped, the token key kept.
	d2, err := openDB(filepath.Join(dir, "edge.db"), "other-model")
	if err != nil {
		t.Fatal(err)
	}
	defer d2.close()
	if got, _ := loaded(t, d2); len(got) != 0 {
		t.Fatalf("set of another model kept: %v", got)
	}
	if st, _ := d2.state(); st.Seq != 0 {
		t.Fatalf("state kept after a model change: %+v", st)
	}
	if k, _, _ := d2.tokenKey(); k.GetKeyId() != "k1" {
		t.Fatal("token key lost")
	}
	if dirty, _ := d2.dirty(); !dirty {
		t.Fatal("dropped set not marked for compaction")
	}
}

func TestResync(t *testing.T) {
	d := openTestDB(t, t.TempDir())
	if _, err := d.apply(0, []entry{
		{Seq: 1, Change: upsert("alice", 1, testModel, vec(4, 1))},
		{Seq: 2, Change: upsert("bob", 2, testModel, vec(4, 2))},
	}, 4); err != nil {
		t.Fatal(err)
	}
	g, err := d.beginResync()
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.apply(g, []entry{
		{Seq: 1, Change: upsert("bob", 2, testModel, vec(4, 2))},
		{Seq: 2, Change: del("alice", 3)},
		{Seq: 3, Change: upsert("carol", 4, testModel, vec(4, 3))},
	}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Ops) != 0 {
		t.Fatal("a resync batch produced gallery operations")
	}
	// Until the swap, the old set is served.
	if got, _ := loaded(t, d); len(got) != 2 || got["alice"] == 0 {
		t.Fatalf("served during resync: %v", got)
	}
	created := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := d.finishResync(g, created); err != nil {
		t.Fatal(err)
	}
	got, _ := loaded(t, d)
	if _, ok := got["alice"]; ok || len(got) != 2 {
		t.Fatalf("after resync: %v", got)
	}
	st, _ := d.state()
	if st.Seq != 3 || st.Revision != 4 || !st.Created.Equal(created) {
		t.Fatalf("state %+v", st)
	}
	if dirty, _ := d.dirty(); !dirty {
		t.Fatal("old set not marked for compaction")
	}
	owed, err := d.compact()
	if err != nil {
		t.Fatal(err)
	}
	if len(owed) != 1 || owed[0] != (receipt{UserID: "alice", Revision: 3}) {
		t.Fatalf("owed receipts %v", owed)
	}

	// An unfinished resync is dropped on reopen.
	g, err = d.beginResync()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.apply(g, []entry{{Seq: 1, Change: upsert("dave", 1, testModel, vec(4, 4))}}, 4); err != nil {
		t.Fatal(err)
	}
	d.close()
	d = openTestDB(t, filepath.Dir(d.path))
	if got, _ := loaded(t, d); len(got) != 2 {
		t.Fatalf("after reopen: %v", got)
	}
	if dirty, _ := d.dirty(); !dirty {
		t.Fatal("half-built set not marked for compaction")
	}
}

// TestEraseFromFile checks that a deleted user's id and vectors leave the
// bytes of the file, not only the index.
func TestEraseFromFile(t *testing.T) {
	dir := t.TempDir()
	d := openTestDB(t, dir)
	const dims = 512
	var es []entry
	for i := range 200 {
		es = append(es, entry{Seq: uint64(i + 1), Change: upsert(fmt.Sprintf("user-%03d", i), uint64(i+1), testModel, vec(dims, uint64(i)))})
	}
	victim := "erase-me@example.org"
	vv := vec(dims, 999)
	es = append(es, entry{Seq: 201, Change: upsert(victim, 201, testModel, vv, vec(dims, 1000))})
	if _, err := d.apply(0, es, dims); err != nil {
		t.Fatal(err)
	}
	raw := func() []byte {
		b, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	vb := binary.LittleEndian.AppendUint32(nil, math.Float32bits(vv[0]))
	for _, f := range vv[1:16] {
		vb = binary.LittleEndian.AppendUint32(vb, math.Float32bits(f))
	}
	if b := raw(); !bytes.Contains(b, []byte(victim)) || !bytes.Contains(b, vb) {
		t.Fatal("the test's byte patterns are not in the file before the delete")
	}
	if _, err := d.apply(0, []entry{{Seq: 202, Change: del(victim, 202)}}, dims); err != nil {
		t.Fatal(err)
	}
	if b := raw(); !bytes.Contains(b, vb) {
		t.Log("note: the delete alone already dropped the vector bytes")
	}
	owed, err := d.compact()
	if err != nil {
		t.Fatal(err)
	}
	if len(owed) != 1 || owed[0].UserID != victim {
		t.Fatalf("owed %v", owed)
	}
	if b := raw(); bytes.Contains(b, vb) {
		t.Fatal("the deleted user's vector bytes are still in the file after compaction")
	}
	// The owed receipt still names the user until it is sent.
	if err := d.receiptsSent(owed); err != nil {
		t.Fatal(err)
	}
	if dirty, _ := d.dirty(); !dirty {
		t.Fatal("sent receipts not marked for compaction")
	}
	if owed, err := d.compact(); err != nil || len(owed) != 0 {
		t.Fatalf("second compaction: %v, %v", owed, err)
	}
	if b := raw(); bytes.Contains(b, []byte(victim)) || bytes.Contains(b, vb) {
		t.Fatal("the deleted user is still in the file")
	}
	if dirty, _ := d.dirty(); dirty {
		t.Fatal("still dirty after compaction")
	}
	// The rest survived, in a usable file.
	got, _ := loaded(t, d)
	if len(got) != 200 {
		t.Fatalf("%d users after compaction, want 200", len(got))
	}
	if _, err := d.apply(0, []entry{{Seq: 203, Change: upsert(victim, 203, testModel, vv)}}, dims); err != nil {
		t.Fatal(err)
	}
}

// TestEraseReplacedVectors: an upsert that drops a stored vector (a photo
// removed, new photos, a switch to a model the edge does not run) leaves
// the old bytes in a freed page, so it marks the file for the erasing
// compaction as a delete does; one that keeps every old vector does not.
func TestEraseReplacedVectors(t *testing.T) {
	const dims = 512
	v1, v2, v3 := vec(dims, 11), vec(dims, 12), vec(dims, 13)
	cases := []struct {
		name  string
		old   [][]float32
		next  *pb.UserChange
		gone  [][]float32 // vectors that must leave the file
		dirty bool
	}{
		{"a photo removed", [][]float32{v1, v2}, upsert("victim", 2, testModel, v2), [][]float32{v1}, true},
		{"registered again with new photos", [][]float32{v1, v2}, upsert("victim", 2, testModel, v3), [][]float32{v1, v2}, true},
		{"a model switch", [][]float32{v1}, upsert("victim", 2, "Other@00000000", v3), [][]float32{v1}, true},
		{"a photo added", [][]float32{v1}, upsert("victim", 2, testModel, v1, v3), nil, false},
		{"the same photos again", [][]float32{v1, v2}, upsert("victim", 2, testModel, v2, v1), nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := openTestDB(t, t.TempDir())
			var es []entry
			for i := range 50 {
				es = append(es, entry{Seq: uint64(i + 1), Change: upsert(fmt.Sprintf("user-%03d", i), 1, testModel, vec(dims, uint64(100+i)))})
			}
			es = append(es, entry{Seq: 51, Change: upsert("victim", 1, testModel, tc.old...)})
			if _, err := d.apply(0, es, dims); err != nil {
				t.Fatal(err)
			}
			if _, err := d.compact(); err != nil {
				t.Fatal(err)
			}
			out, err := d.apply(0, []entry{{Seq: 52, Change: tc.next}}, dims)
			if err != nil {
				t.Fatal(err)
			}
			if out.Applied != 1 {
				t.Fatalf("outcome %+v", out)
			}
			raw := mustRead(t, d.path)
			for _, v := range tc.gone {
				// bbolt frees the old page without overwriting it: the
				// bytes are there until a compaction.
				if !bytes.Contains(raw, floatBytes(v)) {
					t.Fatal("the replaced vector is not in the file before the compaction: the test proves nothing")
				}
			}
			if dirty, err := d.dirty(); err != nil || dirty != tc.dirty {
				t.Fatalf("marked for compaction: %v (%v), want %v", dirty, err, tc.dirty)
			}
			if !tc.dirty {
				return
			}
			if _, err := d.compact(); err != nil {
				t.Fatal(err)
			}
			raw = mustRead(t, d.path)
			for _, v := range tc.gone {
				if bytes.Contains(raw, floatBytes(v)) {
					t.Fatal("a replaced vector is still in the file after the compaction")
				}
			}
			r, err := d.lookup("victim")
			if err != nil || r == nil || r.Revision != 2 {
				t.Fatalf("victim after the compaction: %+v, %v", r, err)
			}
		})
	}
}

// TestApplyScopes: each scope is applied from its own sequence (the scopes'
// consumers interleave, so a lower sequence of another scope is not a
// redelivery), the positions survive a reopen, and a user moved from site A
// to site B converges on the newer state whichever of A's tombstone and B's
// upsert arrives first.
func TestApplyScopes(t *testing.T) {
	inSite := func(c *pb.UserChange, site string) *pb.UserChange {
		if u := c.GetUpsert(); u != nil {
			u.Site = site
		} else {
			c.GetDelete().Site = site
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		order []string // scopes, in the order their entries arrive
	}{
		{"tombstone first", []string{"A", "B"}},
		{"upsert first", []string{"B", "A"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := openTestDB(t, dir)
			// alice in A at sequence 10; bob of no site at 11.
			if _, err := d.apply(0, []entry{{Scope: "A", Seq: 10, Change: inSite(upsert("alice", 5, testModel, vec(4, 1)), "A")}}, 4); err != nil {
				t.Fatal(err)
			}
			if _, err := d.apply(0, []entry{{Scope: pb.NoSite, Seq: 11, Change: upsert("bob", 6, testModel, vec(4, 2))}}, 4); err != nil {
				t.Fatal(err)
			}
			// The move: A's tombstone at 12 (revision 7), B's upsert at
			// 13 (revision 8), each on its own scope's consumer.
			move := map[string]entry{
				"A": {Scope: "A", Seq: 12, Change: inSite(del("alice", 7), "A")},
				"B": {Scope: "B", Seq: 13, Change: inSite(upsert("alice", 8, testModel, vec(4, 3)), "B")},
			}
			for _, s := range tc.order {
				out, err := d.apply(0, []entry{move[s]}, 4)
				if err != nil {
					t.Fatal(err)
				}
				if out.State.Scopes[s] != move[s].Seq {
					t.Fatalf("scope %s's entry at %d was taken for a redelivery: %+v", s, move[s].Seq, out)
				}
			}
			got, _ := loaded(t, d)
			if want := map[string]float32{"alice": vec(4, 3)[0], "bob": vec(4, 2)[0]}; !maps.Equal(got, want) {
				t.Fatalf("after the move the set is %v, want %v", got, want)
			}
			d.close()
			d = openTestDB(t, dir)
			st, err := d.state()
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]uint64{"A": 12, "B": 13, pb.NoSite: 11}; !maps.Equal(st.Scopes, want) || st.Seq != 13 {
				t.Fatalf("positions after a reopen %v (max %d), want %v", st.Scopes, st.Seq, want)
			}
			// A redelivery within a scope is still skipped.
			out, err := d.apply(0, []entry{{Scope: "A", Seq: 12, Change: inSite(del("alice", 7), "A")}}, 4)
			if err != nil || out.Ignored != 1 {
				t.Fatalf("redelivered tombstone: %+v, %v", out, err)
			}
		})
	}
}
