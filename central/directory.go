package central

import (
	"cmp"
	"slices"
	"strings"
	"time"

	pb "github.com/xplore/faceauth/proto"
)

// directory is the in-memory list of live users behind GET /api/users:
// what a listing shows of each, sorted by record key (the order the store
// lists them in, so a cursor from before it existed still works). A page
// without a search costs a binary search and the page; a search scans from
// the cursor until the page is full, at worst every user once, with no
// store request (BenchmarkListUsers100k). The index keeps it current.
type directory struct {
	byID   map[string]*dirEntry
	sorted []*dirEntry // by key
}

// dirEntry is one user in the directory.
type dirEntry struct {
	key    string // recordKey(id): the sort key
	folded string // lower-case id and name, what a search matches
	sum    UserSummary
}

func newDirectory() *directory { return &directory{byID: map[string]*dirEntry{}} }

func newDirEntry(rec *pb.UserRecord) *dirEntry {
	s := Summary(rec)
	return &dirEntry{key: recordKey(rec.Id), folded: strings.ToLower(rec.Id + "\x00" + rec.Name), sum: s}
}

// set adds or replaces a user.
func (d *directory) set(rec *pb.UserRecord) {
	e := newDirEntry(rec)
	if old := d.byID[rec.Id]; old != nil {
		*old = *e
		return
	}
	i, _ := slices.BinarySearchFunc(d.sorted, e.key, func(x *dirEntry, k string) int { return cmp.Compare(x.key, k) })
	d.sorted = slices.Insert(d.sorted, i, e)
	d.byID[rec.Id] = e
}

// remove drops a user.
func (d *directory) remove(id string) {
	e := d.byID[id]
	if e == nil {
		return
	}
	delete(d.byID, id)
	if i, ok := slices.BinarySearchFunc(d.sorted, e.key, func(x *dirEntry, k string) int { return cmp.Compare(x.key, k) }); ok {
		d.sorted = slices.Delete(d.sorted, i, i+1)
	}
}

// reset replaces the whole directory with recs.
func (d *directory) reset(recs []*pb.UserRecord) {
	d.byID = make(map[string]*dirEntry, len(recs))
	d.sorted = make([]*dirEntry, 0, len(recs))
	for _, rec := range recs {
		e := newDirEntry(rec)
		d.byID[rec.Id] = e
		d.sorted = append(d.sorted, e)
	}
	slices.SortFunc(d.sorted, func(a, b *dirEntry) int { return cmp.Compare(a.key, b.key) })
}

// page returns up to limit users after user id after ("" from the start)
// whose id or name contains q, ignoring case ("" matches all), and that
// are in site ("" any), and the cursor of the next page ("" when this one
// is the last).
func (d *directory) page(q, site, after string, limit int) ([]UserSummary, string) {
	start := 0
	if after != "" {
		start, _ = slices.BinarySearchFunc(d.sorted, recordKey(after), func(x *dirEntry, k string) int { return cmp.Compare(x.key, k) })
		if start < len(d.sorted) && d.sorted[start].key == recordKey(after) {
			start++
		}
	}
	q = strings.ToLower(q)
	out := []UserSummary{}
	for i := start; i < len(d.sorted); i++ {
		e := d.sorted[i]
		if q != "" && !strings.Contains(e.folded, q) {
			continue
		}
		if site != "" && !slices.Contains(e.sum.Sites, site) {
			continue
		}
		if len(out) == limit {
			// One more match exists, so there is a next page.
			return out, out[len(out)-1].UserID
		}
		out = append(out, e.sum)
	}
	return out, ""
}

// UserSummary is a user in a listing.
type UserSummary struct {
	UserID     string `json:"user_id"`
	Name       string `json:"name,omitempty"`
	Revision   uint64 `json:"revision"`
	References int    `json:"references"`
	// Sites are the sites whose edges receive the user; none: every edge.
	Sites     []string  `json:"sites,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Summary is what a listing shows of rec.
func Summary(rec *pb.UserRecord) UserSummary {
	return UserSummary{
		UserID:     rec.Id,
		Name:       rec.Name,
		Revision:   rec.Revision,
		References: len(rec.References),
		Sites:      rec.Sites,
		CreatedAt:  rec.CreatedAt.AsTime(),
		UpdatedAt:  rec.UpdatedAt.AsTime(),
	}
}
