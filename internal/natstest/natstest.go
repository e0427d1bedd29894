// Package natstest is what the tests of the change feed's packages (pb,
// central/publish, central/fleet, central/kvlocks, edged/uplink) share: a
// real embedded NATS server that a test can stop and restart on the same
// address and store, a connection to it, a registry in memory that a
// publisher reconciles with, and helpers that read the users stream the
// way an edge does.
package natstest

import (
	"context"
	"errors"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/central/natsd"
	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natsconn"
	pb "github.com/xplore/faceauth/proto"
)

// Server is a real embedded server that a test can stop and restart on
// the same address and store.
type Server struct {
	// Opts are the server's options; set them before Start. Listen and
	// StoreDir are the Server's own.
	Opts natsd.Options

	t      testing.TB
	listen string
	dir    string
	srv    *natsd.Server
}

// New reserves a free port for a server; start it with Start.
func New(t testing.TB) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n := &Server{t: t, listen: addr, dir: t.TempDir()}
	t.Cleanup(n.Stop)
	return n
}

// Start returns a running server.
func Start(t testing.TB) *Server {
	n := New(t)
	n.Start()
	return n
}

// URL is the server's client URL.
func (n *Server) URL() string { return "nats://" + n.listen }

// Dir is the server's JetStream store folder.
func (n *Server) Dir() string { return n.dir }

// Start starts the server (again) on its address and store.
func (n *Server) Start() {
	n.t.Helper()
	o := n.Opts
	o.Listen, o.StoreDir = n.listen, n.dir
	var err error
	for range 50 { // the port of a just-stopped server may linger briefly
		if n.srv, err = natsd.Start(context.Background(), o); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatal(err)
}

// Stop stops the server; its store stays for the next Start.
func (n *Server) Stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv = nil
	}
}

// Connect connects to url as central and edges do (natsconn.Connect), for
// the rest of the test.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := natsconn.Connect(t.Context(), natsconn.ConnectOptions{URL: url, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Go runs run in a goroutine until the returned stop is called or the
// test ends, and fails the test if run returns an error.
func Go(t testing.TB, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// TrickyIDs are user ids that need care in subjects.
var TrickyIDs = []string{"alice", "a.b", "a..b", "x@example.com", "first.last@corp.example", "a-b_c", "Z", strings.Repeat("q.", 63) + "zz"}

// Signer signs what the tests' publishers write; Keys trusts it.
func Signer() *pb.Signer {
	s, err := pb.SignerFromSecret([]byte("the feed tests' secret of some length"))
	if err != nil {
		panic(err)
	}
	return s
}

// Keys trusts Signer.
func Keys() pb.Keys { return pb.TrustKey(Signer().PublicKey()) }

// Source is a registry in memory: central/publish's Source with the same
// contract (every user as an upsert, every deletion as a delete, ascending
// revision).
type Source struct {
	mu    sync.Mutex
	rev   uint64
	state map[string]*pb.UserChange
	dels  []*pb.UserChange // every deletion record, also of users registered again

	skipped atomic.Int64 // changes Snapshot left out because the stream held them
}

// NewSource returns an empty registry.
func NewSource() *Source { return &Source{state: map[string]*pb.UserChange{}} }

// Set commits the change that build makes for the next revision.
func (s *Source) Set(build func(rev uint64) *pb.UserChange) *pb.UserChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	c := build(s.rev)
	s.state[pb.ChangeUserID(c)] = c
	if c.GetDelete() != nil {
		s.dels = append(s.dels, c)
	}
	return c
}

// Upsert registers or updates user id with one embedding of dims.
func (s *Source) Upsert(id string, dims int) *pb.UserChange {
	vec := make([]float32, dims)
	for i := range vec {
		vec[i] = float32(i%7) / 7
	}
	return s.Set(func(rev uint64) *pb.UserChange {
		return &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{
			UserId: id, Revision: rev, Name: "Name of " + id,
			Embeddings: []*pb.Embedding{{Model: "m1", Vector: vec}},
			UpdatedAt:  timestamppb.Now(),
		}}}
	})
}

// Del erases user id.
func (s *Source) Del(id string) *pb.UserChange {
	return s.Set(func(rev uint64) *pb.UserChange {
		return &pb.UserChange{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{UserId: id, Revision: rev, DeletedAt: timestamppb.Now()}}}
	})
}

// Snapshot implements publish.Source.
func (s *Source) Snapshot(ctx context.Context, known func(uint64) bool, fn func(*pb.UserChange) error) error {
	s.mu.Lock()
	all := slices.Collect(maps.Values(s.state))
	for _, d := range s.dels {
		if s.state[pb.ChangeUserID(d)] != d {
			all = append(all, d) // the user was registered again since
		}
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b *pb.UserChange) int { return int(pb.ChangeRevision(a)) - int(pb.ChangeRevision(b)) })
	for _, c := range all {
		if known != nil && known(pb.ChangeRevision(c)) {
			s.skipped.Add(1)
			continue
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// Revision implements publish.Source.
func (s *Source) Revision(ctx context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev, nil
}

// Skipped is how many changes Snapshot left out because the stream held
// them.
func (s *Source) Skipped() int64 { return s.skipped.Load() }

// Want returns user id -> revision of the source's state.
func (s *Source) Want() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]uint64{}
	for id, c := range s.state {
		m[id] = pb.ChangeRevision(c)
	}
	return m
}

// StreamState returns the users stream's state as an edge reads it.
func StreamState(t testing.TB, js jetstream.JetStream) uplink.StreamState {
	t.Helper()
	st, err := uplink.ReadStreamState(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Collect consumes the users stream with o until it has n deliveries.
func Collect(t *testing.T, js jetstream.JetStream, o uplink.ConsumeOptions, n int) []uplink.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var got []uplink.Delivery
	done := errors.New("done")
	err := uplink.Consume(ctx, js, o, func(batch []uplink.Delivery) error {
		got = append(got, batch...)
		if len(got) >= n {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("Consume: %v after %d deliveries", err, len(got))
	}
	return got
}

// WaitStream waits until the users stream holds exactly src's state (the
// newest revision of each user, read from the headers as they are on the
// stream), or fails the test with the difference.
func WaitStream(t testing.TB, js jetstream.JetStream, src *Source) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var have map[string]uint64
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		have, err = streamRevisions(ctx, js)
		cancel()
		if err == nil && maps.Equal(have, src.Want()) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("users stream never matched the registry: err=%v\nhave %v\nwant %v", err, have, src.Want())
}

// streamRevisions returns the newest revision of each user on the users
// stream ("<id> <site>" for a user of a site).
func streamRevisions(ctx context.Context, js jetstream.JetStream) (map[string]uint64, error) {
	s, err := js.Stream(ctx, pb.UsersStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	revs := map[string]uint64{}
	if info.State.Msgs == 0 {
		return revs, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		// The subject has only a keyed hash of the id; the id is in a
		// header, which a headers-only read gets.
		_, site, err := pb.ParseUserSubject(msg.Subject())
		id := msg.Headers().Get(pb.UserHeader)
		rev, rerr := pb.HeaderRevision(msg.Headers())
		if err == nil && rerr == nil && id != "" {
			if site != "" {
				id += " " + site
			}
			revs[id] = max(revs[id], rev)
		}
		if meta.NumPending == 0 || meta.Sequence.Stream >= info.State.LastSeq {
			return revs, nil
		}
	}
}
