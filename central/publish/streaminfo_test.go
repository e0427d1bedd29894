package publish

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xplore/faceauth/central/natsd"
	"github.com/xplore/faceauth/internal/natsconn"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

// TestEdgeStreamInfoHidesUserIDs: an edge key may ask for the users
// stream's info with a subjects filter (NATS cannot refuse it by
// permission, and edges need stream info to resume), which lists every
// subject of the stream. The subjects must not give away who the users
// are: no user id, plain or in base64, appears in them or decodes from
// them.
func TestEdgeStreamInfoHidesUserIDs(t *testing.T) {
	n := natstest.New(t)
	cp, ep := pb.CentralPermissions(), pb.EdgePermissions("door-1", []string{"site-b"})
	n.Opts.Users = []natsd.User{
		{Name: "central", Password: "c", Publish: cp.Publish, Subscribe: cp.Subscribe},
		{Name: "door-1", Password: "e", Publish: ep.Publish, Subscribe: ep.Subscribe},
	}
	n.Start()
	cnc, err := natsconn.Connect(t.Context(), natsconn.ConnectOptions{URL: n.URL(), User: "central", Password: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer cnc.Close()
	src := natstest.NewSource()
	ids := append([]string{"jane.doe@corp.example", "john.roe@corp.example"}, natstest.TrickyIDs...)
	for _, id := range ids {
		src.Upsert(id, 8)
	}
	runPublisher(t, cnc, src, Options{Signer: testSigner})
	cjs, err := jetstream.New(cnc)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitStream(t, cjs, src)

	enc, err := natsconn.Connect(t.Context(), natsconn.ConnectOptions{URL: n.URL(), User: "door-1", Password: "e", InboxPrefix: pb.EdgeInboxPrefix("door-1")})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	m, err := enc.Request("$JS.API.STREAM.INFO."+pb.UsersStream, []byte(`{"subjects_filter":">"}`), 10*time.Second)
	if err != nil {
		t.Fatalf("the edge key's stream info: %v", err)
	}
	var info struct {
		State struct {
			Subjects map[string]uint64 `json:"subjects"`
		} `json:"state"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &info); err != nil || info.Error != nil {
		t.Fatalf("the edge key's stream info: %v %s", err, m.Data)
	}
	// The control: the call does list every subject (it is the leak the
	// user tokens close), one per user.
	if len(info.State.Subjects) != len(src.Want()) {
		t.Fatalf("stream info listed %d subjects, want the %d users': %v", len(info.State.Subjects), len(src.Want()), info.State.Subjects)
	}
	for subj := range info.State.Subjects {
		if _, _, err := pb.ParseUserSubject(subj); err != nil {
			t.Errorf("stream info lists %s: %v", subj, err)
		}
		tok := strings.Split(subj, ".")[2]
		raw, _ := base64.RawURLEncoding.DecodeString(tok)
		for _, id := range ids {
			// (A short id such as "Z" may occur in a hash by chance.)
			if tok == base64.RawURLEncoding.EncodeToString([]byte(id)) || string(raw) == id || (len(id) > 4 && strings.Contains(subj, id)) {
				t.Errorf("an edge key's stream info shows user %q in %s", id, subj)
			}
		}
	}
}
