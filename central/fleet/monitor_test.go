package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/central/natsd"
	"github.com/xplore/faceauth/central/publish"
	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natsconn"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	offlineAfter := 30 * time.Second
	tests := []struct {
		name     string
		es       EdgeState
		required uint64
		want     string
	}{
		{"in sync", EdgeState{LastSeen: now.Add(-5 * time.Second), Model: "m1", AppliedRevision: 9}, 9, StateInSync},
		{"ahead of the sample it is judged by", EdgeState{LastSeen: now, Model: "m1", AppliedRevision: 12, Lag: 0}, 9, StateInSync},
		{"lag from a change after its heartbeat", EdgeState{LastSeen: now, Model: "m1", AppliedRevision: 9, Lag: 3}, 9, StateInSync},
		{"behind", EdgeState{LastSeen: now, Model: "m1", AppliedRevision: 6, Lag: 3}, 9, StateBehind},
		{"resyncing", EdgeState{LastSeen: now, Model: "m1", AppliedRevision: 9, Resyncing: true}, 9, StateBehind},
		{"other model", EdgeState{LastSeen: now, Model: "m2", AppliedRevision: 9}, 9, StateModelMismatch},
		{"refused models", EdgeState{LastSeen: now, Model: "m1", AppliedRevision: 9, RefusedModels: []string{"m0"}}, 9, StateModelMismatch},
		{"mismatch wins over behind", EdgeState{LastSeen: now, Model: "m2"}, 9, StateModelMismatch},
		{"three heartbeats missed", EdgeState{LastSeen: now.Add(-31 * time.Second), Model: "m1", AppliedRevision: 9}, 9, StateOffline},
		{"offline wins over all", EdgeState{LastSeen: now.Add(-time.Hour), Model: "m2"}, 9, StateOffline},
		{"known only from receipts", EdgeState{Model: "m1"}, 0, StateOffline},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.es, now, offlineAfter, "m1", tc.required, 0); got != tc.want {
				t.Fatalf("classify = %s, want %s", got, tc.want)
			}
		})
	}
	if got := classify(EdgeState{LastSeen: now, Model: "anything"}, now, offlineAfter, "", 0, 0); got != StateInSync {
		t.Fatalf("with no central model: %s", got)
	}
	// The token revocation list the edge must hold.
	for _, tc := range []struct {
		held, required uint64
		want           string
	}{
		{0, 0, StateInSync},
		{5, 5, StateInSync},
		{6, 5, StateInSync}, // a list published after the sample
		{4, 5, StateBehind},
		{0, 5, StateBehind}, // an edge that never got one
	} {
		es := EdgeState{LastSeen: now, Model: "m1", AppliedRevision: 9, TokenRevocations: tc.held}
		if got := classify(es, now, offlineAfter, "m1", 9, tc.required); got != tc.want {
			t.Errorf("holding revocations %d, %d required: %s, want %s", tc.held, tc.required, got, tc.want)
		}
	}
}

// TestMonitorRevocations: an edge that keeps reporting an older token
// revocation list than the one on the config stream becomes behind; one
// that holds it stays in sync.
func TestMonitorRevocations(t *testing.T) {
	n := natstest.Start(t)
	nc, _ := natstest.Connect(t, n.URL())
	src := natstest.NewSource()
	src.Upsert("u0", 4)
	p, err := publish.New(nc, publish.Options{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	hb := 300 * time.Millisecond
	m, _ := runMonitor(t, nc, Options{Model: "m1", HeartbeatInterval: hb})
	held := map[string]uint64{"current": 0, "stale": 0}
	send := func() {
		for id, v := range held {
			if err := uplink.PublishStatus(nc, status(id, "m1", 1, func(s *pb.EdgeStatus) { s.TokenRevocations = v })); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitEdges(t, m, send, statesAre(map[string]string{"current": StateInSync, "stale": StateInSync}))

	p.PublishRevocations(&pb.TokenRevocations{Version: 7, Revocations: []*pb.TokenRevocation{{Subject: "door-1"}}})
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	held["current"] = 7
	es := waitEdges(t, m, send, statesAre(map[string]string{"current": StateInSync, "stale": StateBehind}))
	for _, e := range es {
		if e.ID == "stale" && e.TokenRevocations != 0 || e.ID == "current" && e.TokenRevocations != 7 {
			t.Fatalf("%s reports revocations %d", e.ID, e.TokenRevocations)
		}
	}
	held["stale"] = 7
	waitEdges(t, m, send, statesAre(map[string]string{"current": StateInSync, "stale": StateInSync}))
}

// testSigner signs what the tests' publishers write; testKeys trusts it.
var testSigner, testKeys = natstest.Signer(), natstest.Keys()

func runPublisher(t testing.TB, nc *nats.Conn, src publish.Source, o publish.Options) (*publish.Publisher, func()) {
	t.Helper()
	p, err := publish.New(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	return p, natstest.Go(t, func(ctx context.Context) error { return p.Run(ctx, src) })
}

func runMonitor(t *testing.T, nc *nats.Conn, o Options) (*Monitor, context.CancelFunc) {
	t.Helper()
	m, err := New(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	select {
	case <-m.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("monitor never ready")
	}
	return m, stop
}

func status(id, model string, applied uint64, extra func(*pb.EdgeStatus)) *pb.EdgeStatus {
	st := &pb.EdgeStatus{
		EdgeId: id, Version: "v1", Model: model, AppliedRevision: applied, UserCount: 42,
		SentAt: timestamppb.Now(), LastSync: timestamppb.Now(), VerifyTotal: 7, VerifyAccepted: 5, VerifyRejected: 2,
	}
	if extra != nil {
		extra(st)
	}
	return st
}

// waitEdges polls until pred holds for the monitor's edges, calling each
// (to send heartbeats) before every look.
func waitEdges(t *testing.T, m *Monitor, each func(), pred func([]EdgeState) bool) []EdgeState {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if each != nil {
			each()
		}
		es := m.Edges(time.Now())
		if pred(es) {
			return es
		}
		if time.Now().After(deadline) {
			t.Fatalf("edges never reached the expected states: %+v", es)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statesAre(want map[string]string) func([]EdgeState) bool {
	return func(es []EdgeState) bool { return maps.Equal(states(es), want) }
}

func states(es []EdgeState) map[string]string {
	m := map[string]string{}
	for _, e := range es {
		m[e.ID] = e.State
	}
	return m
}

func TestMonitor(t *testing.T) {
	n := natstest.Start(t)
	nc, js := natstest.Connect(t, n.URL())
	src := natstest.NewSource()
	for i := range 10 {
		src.Upsert(fmt.Sprintf("u%d", i), 4)
	}
	p, err := publish.New(nc, publish.Options{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	hb := 500 * time.Millisecond
	m, stop := runMonitor(t, nc, Options{Model: "m1", HeartbeatInterval: hb})

	const central = 10
	inSyncAt := uint64(central)
	send := func() {
		for _, st := range []*pb.EdgeStatus{
			status("in-sync", "m1", inSyncAt, nil),
			status("behind", "m1", 7, nil),
			status("other-model", "m2", central, nil),
			status("refuses", "m1", central, func(s *pb.EdgeStatus) { s.RefusedModels = []string{"m0"} }),
		} {
			if err := uplink.PublishStatus(nc, st); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One heartbeat from an edge that then goes quiet.
	if err := uplink.PublishStatus(nc, status("gone", "m1", central, nil)); err != nil {
		t.Fatal(err)
	}
	// The others keep sending until "gone" has missed three heartbeats and
	// "behind" has lagged for longer than the grace period.
	es := waitEdges(t, m, send, statesAre(map[string]string{
		"in-sync": StateInSync, "behind": StateBehind, "other-model": StateModelMismatch,
		"refuses": StateModelMismatch, "gone": StateOffline,
	}))
	for _, e := range es {
		switch e.ID {
		case "behind":
			if e.Lag != 3 || e.AppliedRevision != 7 || e.CentralRevision != central {
				t.Fatalf("behind: %+v", e)
			}
		case "in-sync":
			if e.Lag != 0 || e.UserCount != 42 || e.Version != "v1" || e.VerifyTotal != 7 || e.LastSync.IsZero() || e.LastSeen.IsZero() {
				t.Fatalf("in-sync: %+v", e)
			}
		}
	}
	if !slices.IsSortedFunc(es, func(a, b EdgeState) int { return strings.Compare(a.ID, b.ID) }) {
		t.Fatal("edges not sorted by id")
	}

	// A change published after an edge's heartbeat shows as lag, not as
	// behind; once the edge keeps reporting the old revision, it is behind;
	// once it applies the change, it is in sync again.
	send()
	src.Upsert("u3", 4) // revision 11
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEdges(t, m, nil, func(es []EdgeState) bool { return es[2].CentralRevision == central+1 })
	if e := m.Edges(time.Now())[2]; e.ID != "in-sync" || e.State != StateInSync || e.Lag != 1 {
		t.Fatalf("right after a change: %+v", e)
	}
	waitEdges(t, m, send, func(es []EdgeState) bool { return es[2].State == StateBehind })
	inSyncAt = central + 1
	waitEdges(t, m, send, func(es []EdgeState) bool { return es[2].State == StateInSync && es[2].Lag == 0 })

	// Receipts: in-sync purged both users, behind only one.
	for _, r := range []*pb.DeleteReceipt{
		{EdgeId: "in-sync", UserId: "x.y@z", Revision: 8, PurgedAt: timestamppb.Now()},
		{EdgeId: "in-sync", UserId: "bob", Revision: 9},
		{EdgeId: "behind", UserId: "x.y@z", Revision: 8},
		{EdgeId: "behind", UserId: "bob", Revision: 4}, // an older deletion of bob
	} {
		if err := uplink.PublishReceipt(t.Context(), js, r); err != nil {
			t.Fatal(err)
		}
	}
	dels := []*pb.Deletion{
		{UserId: "x.y@z", Revision: 8, DeletedAt: timestamppb.Now()},
		{UserId: "bob", Revision: 9},
		{UserId: "nobody-confirmed", Revision: 10},
	}
	all := []string{"behind", "gone", "in-sync", "other-model", "refuses"}
	wantDel := []DeletionState{
		{UserID: "x.y@z", Revision: 8, Purged: []string{"behind", "in-sync"}, Pending: []string{"gone", "other-model", "refuses"}},
		{UserID: "bob", Revision: 9, Purged: []string{"in-sync"}, Pending: []string{"behind", "gone", "other-model", "refuses"}},
		{UserID: "nobody-confirmed", Revision: 10, Purged: []string{}, Pending: all},
	}
	check := func(m *Monitor) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := m.Deletions(dels)
			ok := len(got) == len(wantDel)
			for i := range got {
				ok = ok && got[i].UserID == wantDel[i].UserID && got[i].Revision == wantDel[i].Revision &&
					slices.Equal(got[i].Purged, wantDel[i].Purged) && slices.Equal(got[i].Pending, wantDel[i].Pending)
			}
			if ok {
				if got[0].DeletedAt.IsZero() {
					t.Fatal("deleted_at lost")
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("deletions = %+v\nwant %+v", got, wantDel)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	check(m)

	// A restarted central knows every edge and receipt from the streams.
	stop()
	m2, _ := runMonitor(t, nc, Options{Model: "m1", HeartbeatInterval: hb})
	waitEdges(t, m2, nil, func(es []EdgeState) bool { return len(es) == 5 })
	check(m2)

	// Forgetting an edge removes it everywhere, also after a restart.
	if err := m2.Forget(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}
	es = m2.Edges(time.Now())
	if len(es) != 4 || slices.ContainsFunc(es, func(e EdgeState) bool { return e.ID == "gone" }) {
		t.Fatalf("after Forget: %v", states(es))
	}
	m3, _ := runMonitor(t, nc, Options{Model: "m1", HeartbeatInterval: hb})
	time.Sleep(300 * time.Millisecond)
	waitEdges(t, m3, nil, func(es []EdgeState) bool { return len(es) == 4 })
}

func TestMonitorIgnoresSpoofedHeartbeats(t *testing.T) {
	n := natstest.Start(t)
	nc, _ := natstest.Connect(t, n.URL())
	m, _ := runMonitor(t, nc, Options{})
	// edge-b's status on edge-a's subject, and garbage.
	data, _ := pb.EncodeStatus(status("edge-b", "m1", 1, nil))
	nc.Publish(pb.EdgeStatusSubject("edge-a"), data)
	nc.Publish(pb.EdgeStatusSubject("edge-c"), []byte("{not json"))
	uplink.PublishStatus(nc, status("edge-d", "m1", 1, nil))
	waitEdges(t, m, nil, func(es []EdgeState) bool { return len(es) > 0 })
	time.Sleep(200 * time.Millisecond)
	es := m.Edges(time.Now())
	if len(es) != 1 || es[0].ID != "edge-d" {
		t.Fatalf("edges = %+v, want only edge-d", es)
	}
	if err := uplink.PublishStatus(nc, status("bad.id", "m1", 1, nil)); err == nil {
		t.Fatal("PublishStatus accepted an edge id with a dot")
	}
}

// TestPermissions runs central and an edge of site-b with the permissions
// docs/sync.md prescribes, against a server that enforces them: the edge
// syncs the users of no site and of site-b, and every way to read a site-a
// user's message is refused.
func TestPermissions(t *testing.T) {
	n := natstest.New(t)
	cp, ep := pb.CentralPermissions(), pb.EdgePermissions("site-1", []string{"site-b"})
	n.Opts.Users = []natsd.User{
		{Name: "central", Password: "c", Publish: cp.Publish, Subscribe: cp.Subscribe},
		{Name: "site-1", Password: "e", Publish: ep.Publish, Subscribe: ep.Subscribe},
	}
	n.Start()
	ctx := t.Context()
	cnc, err := natsconn.Connect(ctx, natsconn.ConnectOptions{URL: n.URL(), User: "central", Password: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer cnc.Close()
	src := natstest.NewSource()
	src.Upsert("a.b@c", 8)
	inSite := func(id, site string) {
		src.Set(func(rev uint64) *pb.UserChange {
			return &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: id, Revision: rev, Site: site}}}
		})
	}
	inSite("alice-a", "site-a")
	inSite("bob-b", "site-b")
	p, _ := runPublisher(t, cnc, src, publish.Options{Signer: testSigner, TokenKey: &pb.TokenKey{KeyId: "k", PublicKey: []byte("pk")}})
	m, _ := runMonitor(t, cnc, Options{Model: "m1"})

	asyncErrs := make(chan error, 256)
	enc, err := natsconn.Connect(ctx, natsconn.ConnectOptions{URL: n.URL(), User: "site-1", Password: "e", InboxPrefix: pb.EdgeInboxPrefix("site-1")})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	enc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErrs <- err })
	ejs, err := jetstream.New(enc)
	if err != nil {
		t.Fatal(err)
	}

	// What an edge does works.
	var st uplink.StreamState
	deadline := time.Now().Add(15 * time.Second)
	for st, err = uplink.ReadStreamState(ctx, ejs); err != nil || st.Msgs < 3; st, err = uplink.ReadStreamState(ctx, ejs) {
		if time.Now().After(deadline) {
			t.Fatalf("edge cannot read the stream state: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := natstest.Collect(t, ejs, uplink.ConsumeOptions{Keys: testKeys, Scopes: []uplink.Scope{{Name: pb.NoSite}, {Name: "site-b"}}}, 2)
	var ids []string
	for _, d := range got {
		ids = append(ids, pb.ChangeUserID(d.Change))
	}
	if slices.Sort(ids); !slices.Equal(ids, []string{"a.b@c", "bob-b"}) {
		t.Fatalf("edge consumed %v", ids)
	}
	// A scope it does not serve is refused, in words Consume can tell.
	c0, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var refused *uplink.ScopeRefusedError
	err = uplink.Consume(c0, ejs, uplink.ConsumeOptions{Keys: testKeys, Scopes: []uplink.Scope{{Name: pb.NoSite}, {Name: "site-a"}}}, func([]uplink.Delivery) error { return nil })
	if !errors.As(err, &refused) || refused.Scope != "site-a" {
		t.Fatalf("consuming site-a with site-b's permissions: %v, want a ScopeRefusedError", err)
	}
	// Every other way to read site-a's user is refused too; the edge's own
	// scope, asked the same way, is the control.
	alice := testSigner.UserSubject("alice-a", "site-a")
	if ok := natstest.Allowed(enc, natstest.SiteReadAttempts("site-b", alice), 3*time.Second); len(ok) > 0 {
		for _, a := range ok {
			t.Errorf("an edge of site-b read site-a's user with %s (%s %s)", a.What, a.Subject, a.Body)
		}
	}
	own := natstest.SiteReadAttempts("site-a", testSigner.UserSubject("bob-b", "site-b"))[0]
	if ok := natstest.Allowed(enc, []natstest.ReadAttempt{own}, 10*time.Second); len(ok) != 1 {
		t.Fatalf("an edge of site-b could not create a consumer of its own site (%s %s)", own.Subject, own.Body)
	}
	if k, err := pb.FetchTokenKey(ctx, ejs, testKeys); err != nil || k.Value.GetKeyId() != "k" {
		t.Fatalf("edge token key: %v, %v", k, err)
	}
	if err := uplink.PublishStatus(enc, status("site-1", "m1", 3, nil)); err != nil {
		t.Fatal(err)
	}
	if err := uplink.PublishReceipt(ctx, ejs, &pb.DeleteReceipt{EdgeId: "site-1", UserId: "gone", Revision: 1}); err != nil {
		t.Fatalf("edge receipt: %v", err)
	}
	waitEdges(t, m, nil, func(es []EdgeState) bool { return len(es) == 1 && es[0].State == StateInSync })

	// What it must not do fails.
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }
	c1, cancel := short()
	defer cancel()
	evil, _ := pb.ChangeMsg(testSigner, natstest.NewSource().Upsert("a.b@c", 8), false)
	if _, err := ejs.PublishMsg(c1, evil); err == nil {
		t.Error("an edge published user data")
	}
	c2, cancel := short()
	defer cancel()
	if err := uplink.PublishReceipt(c2, ejs, &pb.DeleteReceipt{EdgeId: "site-2", UserId: "gone", Revision: 1}); err == nil {
		t.Error("an edge published another edge's receipt")
	}
	c3, cancel := short()
	defer cancel()
	if err := pb.EnsureStreams(c3, ejs, pb.StreamOptions{}); err == nil {
		t.Error("an edge changed the streams")
	}
	c4, cancel := short()
	defer cancel()
	if _, err := ejs.OrderedConsumer(c4, pb.ReceiptsStream, jetstream.OrderedConsumerConfig{}); err == nil {
		t.Error("an edge read the receipts")
	}
	// An edge reads user data only through its own consumers: it cannot
	// fetch a message by sequence or subject (the stream allows direct
	// gets, which would bypass a consumer's filter) or listen to the
	// users subjects themselves.
	for _, get := range []struct{ subject, body string }{
		{"$JS.API.DIRECT.GET." + pb.UsersStream, `{"seq":1}`},
		{"$JS.API.DIRECT.GET." + pb.UsersStream + "." + testSigner.UserSubject("a.b@c", ""), ``},
		{"$JS.API.DIRECT.GET." + pb.UsersStream, `{"last_by_subj":"` + testSigner.UserSubject("a.b@c", "") + `"}`},
		{"$JS.API.STREAM.MSG.GET." + pb.UsersStream, `{"seq":1}`},
		{"$JS.API.STREAM.MSG.GET." + pb.UsersStream, `{"last_by_subj":"` + testSigner.UserSubject("a.b@c", "") + `"}`},
	} {
		if m, err := enc.Request(get.subject, []byte(get.body), time.Second); err == nil && !strings.Contains(string(m.Data), `"error"`) && m.Header.Get("Status") == "" {
			t.Errorf("an edge read a user's message with %s %s", get.subject, get.body)
		}
	}
	c5, cancel := short()
	defer cancel()
	if s, err := ejs.Stream(c5, pb.UsersStream); err != nil {
		t.Errorf("edge stream info: %v", err)
	} else if _, err := s.GetLastMsgForSubject(c5, testSigner.UserSubject("a.b@c", "")); err == nil {
		t.Error("an edge read a user's message through the stream's get API")
	}
	// wantViolation waits for the server's permissions violation naming
	// subject (the refused requests above report theirs too).
	wantViolation := func(what, subject string) {
		t.Helper()
		enc.Flush()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case err := <-asyncErrs:
				if strings.Contains(strings.ToLower(err.Error()), "permissions violation") && strings.Contains(err.Error(), subject) {
					return
				}
			case <-deadline:
				t.Errorf("%s without a permissions violation", what)
				return
			}
		}
	}
	if _, err := enc.SubscribeSync(pb.UsersSubjects); err != nil {
		t.Fatal(err)
	}
	wantViolation("an edge subscribed to the users subjects", pb.UsersSubjects)

	uplink.PublishStatus(enc, status("site-2", "m1", 1, nil)) // denied: reported asynchronously
	wantViolation("an edge published another edge's heartbeat", pb.EdgeStatusSubject("site-2"))
	if st := p.Status(); st.LastError != "" {
		t.Fatalf("central under its permissions: %+v", st)
	}
}

func TestDeletionScope(t *testing.T) {
	m := &Monitor{edges: map[string]*edgeEntry{
		"all": {status: &pb.EdgeStatus{}},
		"a":   {status: &pb.EdgeStatus{Sites: []string{"site-a"}}},
		"ab":  {status: &pb.EdgeStatus{Sites: []string{"site-a", "site-b"}}},
		"b":   {status: &pb.EdgeStatus{Sites: []string{"site-b"}}},
		"c":   {status: &pb.EdgeStatus{Sites: []string{"site-c"}}},
	}, receipts: map[string]map[string]uint64{}}
	ab, a, b, c := []string{"site-a", "site-b"}, []string{"site-a"}, []string{"site-b"}, []string{"site-c"}
	for _, tt := range []struct {
		name string
		d    *pb.Deletion
		want []string // the edges expected to confirm
	}{
		{"no site", &pb.Deletion{UserId: "u", Revision: 1}, []string{"a", "ab", "all", "b", "c"}},
		{"site a", &pb.Deletion{UserId: "u", Revision: 1, Sites: a}, []string{"a", "ab"}},
		{"erase a user of sites a and b", &pb.Deletion{UserId: "u", Revision: 1, Sites: ab}, []string{"a", "ab", "b"}},
		{"a to b", &pb.Deletion{UserId: "u", Revision: 1, Sites: a, Moved: true, RemainingSites: b}, []string{"a"}},
		{"a to every edge", &pb.Deletion{UserId: "u", Revision: 1, Sites: a, Moved: true}, nil},
		{"every edge to b", &pb.Deletion{UserId: "u", Revision: 1, Moved: true, RemainingSites: b}, []string{"a", "all", "c"}},
		{"every edge to a and b", &pb.Deletion{UserId: "u", Revision: 1, Moved: true, RemainingSites: ab}, []string{"all", "c"}},
		{"a and b, remove a", &pb.Deletion{UserId: "u", Revision: 1, Sites: a, Moved: true, RemainingSites: b}, []string{"a"}},
		{"a and b to c", &pb.Deletion{UserId: "u", Revision: 1, Sites: ab, Moved: true, RemainingSites: c}, []string{"a", "ab", "b"}},
		{"a and c, remove a", &pb.Deletion{UserId: "u", Revision: 1, Sites: a, Moved: true, RemainingSites: c}, []string{"a", "ab"}},
	} {
		ds := m.Deletions([]*pb.Deletion{tt.d})[0]
		if !slices.Equal(ds.Sites, tt.d.Sites) || ds.Moved != tt.d.Moved || !slices.Equal(ds.RemainingSites, tt.d.RemainingSites) {
			t.Errorf("%s: the state says sites %v moved %v remaining %v", tt.name, ds.Sites, ds.Moved, ds.RemainingSites)
		}
		if !slices.Equal(ds.Pending, tt.want) && !(len(ds.Pending) == 0 && len(tt.want) == 0) {
			t.Errorf("%s: pending %v, want %v", tt.name, ds.Pending, tt.want)
		}
	}
}

// TestCaughtUpEdgeInSync: an edge never receives the revisions of the
// sites it does not serve, so one that reports every scope caught up is
// in_sync even though its applied revision trails the stream's, an edge of
// no site as much as an edge of some; one that is not caught up at that
// revision is behind.
func TestCaughtUpEdgeInSync(t *testing.T) {
	n := natstest.Start(t)
	nc, _ := natstest.Connect(t, n.URL())
	src := natstest.NewSource()
	for i := range 10 {
		src.Upsert(fmt.Sprintf("u%d", i), 4)
	}
	p, err := publish.New(nc, publish.Options{Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resync(t.Context(), src, publish.ResyncOptions{}); err != nil {
		t.Fatal(err)
	}
	m, _ := runMonitor(t, nc, Options{Model: "m1", HeartbeatInterval: 500 * time.Millisecond})
	caughtUp := func(s *pb.EdgeStatus) { s.CaughtUp = true }
	send := func() {
		for _, st := range []*pb.EdgeStatus{
			status("no-site", "m1", 5, caughtUp),
			status("site-a", "m1", 5, func(s *pb.EdgeStatus) { caughtUp(s); s.Sites = []string{"site-a"} }),
			status("not-caught-up", "m1", 5, nil),
		} {
			if err := uplink.PublishStatus(nc, st); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitEdges(t, m, send, statesAre(map[string]string{"no-site": StateInSync, "site-a": StateInSync, "not-caught-up": StateBehind}))
}
