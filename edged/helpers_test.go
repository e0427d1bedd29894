package edged

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/central/natsd"
	"github.com/xplore/faceauth/internal/fakeengine"
	"github.com/xplore/faceauth/internal/natsconn"
	"github.com/xplore/faceauth/internal/natstest"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models"
	"github.com/xplore/faceauth/models/face"
	pb "github.com/xplore/faceauth/proto"
)

// The logic tests (sync, apply, compaction, receipts, trust, the HTTP
// API) run on the fake engine (internal/fakeengine), with the default
// model's embedding size; the tests whose subject is face behaviour (real
// photos, fusion, the verify benchmarks) use realEngine, which skips,
// saying so, without the model files (testenv.ModelsDir).
var fake = fakeengine.New(fakeengine.Config{Dims: edgeDims})

// testEngine returns the fake engine.
func testEngine(testing.TB) *fakeengine.Engine { return fake }

// The real engine is loaded once per test binary: sessions are costly and
// the engine is safe for concurrent use.
var (
	engineOnce sync.Once
	engineVal  *face.Engine
	engineErr  error
)

// realEngine returns the real engine on the default model.
func realEngine(t testing.TB) *face.Engine {
	t.Helper()
	dir := testenv.ModelsDir(t)
	engineOnce.Do(func() {
		engineVal, engineErr = face.New(context.Background(), face.Config{ModelsDir: dir, Workers: 1, Log: quietLog()})
	})
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	return engineVal
}

// edgeDims is the embedding size of the default model (models.DefaultModel),
// which realEngine runs and the fake imitates.
var edgeDims = func() int {
	c, err := models.Default()
	if err != nil {
		panic(err)
	}
	return c.Dims()
}()

func quietLog() *slog.Logger {
	if os.Getenv("EDGED_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testNATS is a real embedded NATS server that can be stopped and started
// again on the same port and store, as an outage.
type testNATS struct {
	srv    *natsd.Server
	listen string
	store  string
	url    string
}

func startNATS(t testing.TB) *testNATS {
	t.Helper()
	n := &testNATS{listen: "127.0.0.1:0", store: t.TempDir()}
	n.start(t)
	_, port, _ := net.SplitHostPort(n.url[len("nats://"):])
	n.listen = "127.0.0.1:" + port
	t.Cleanup(func() {
		if n.srv != nil {
			n.srv.Shutdown()
		}
	})
	return n
}

func (n *testNATS) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := natsd.Start(ctx, natsd.Options{Listen: n.listen, StoreDir: n.store})
	if err != nil {
		t.Fatal(err)
	}
	n.srv, n.url = srv, srv.ClientURL()
}

func (n *testNATS) stop() {
	n.srv.Shutdown()
	n.srv = nil
}

// client connects a test client (central's role) and makes sure the feed's
// streams exist.
func (n *testNATS) client(t testing.TB) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Connect(t, n.url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pb.EnsureStreams(ctx, js, pb.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return js
}

// publish puts changes on the users stream as central would and returns
// the last sequence.
func publish(t testing.TB, js jetstream.JetStream, cs ...*pb.UserChange) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var futures []jetstream.PubAckFuture
	for i, c := range cs {
		if i%1000 == 999 {
			// Stay under the client's limit of async publishes in flight,
			// which fails a publish that stalls on a busy machine.
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("publishing timed out")
			}
		}
		f, err := js.PublishMsgAsync(signedChange(t, c))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing timed out")
	}
	var last uint64
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			last = max(last, ack.Sequence)
		case err := <-f.Err():
			t.Fatal(err)
		}
	}
	return last
}

// testFeed signs what the tests publish as central; edges started by
// startEdge trust it.
var testFeed = func() *pb.Signer {
	s, err := pb.SignerFromSecret([]byte("the edge tests' feed secret"))
	if err != nil {
		panic(err)
	}
	return s
}()

// signedChange is the users-stream message central publishes for c.
func signedChange(t testing.TB, c *pb.UserChange) *nats.Msg {
	t.Helper()
	data, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	op := pb.OpUpsert
	if c.GetDelete() != nil {
		op = pb.OpDelete
	}
	m := nats.NewMsg(testFeed.ChangeSubject(c))
	m.Data = data
	m.Header.Set(pb.OpHeader, op)
	testFeed.Sign(m, op, pb.ChangeUserID(c), pb.ChangeRevision(c))
	return m
}

// publishConfig puts a config message on subject signed as central does,
// with revision rev.
func publishConfig(t testing.TB, js jetstream.JetStream, subject, kind string, v proto.Message, rev uint64) {
	t.Helper()
	data, err := proto.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(subject)
	m.Data = data
	testFeed.Sign(m, kind, "", rev)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// runningEdge is an Edge with its Run loop.
type runningEdge struct {
	*Edge
	stop func()
}

// startEdge opens an edge on dir and runs it against url until the test
// ends or stop is called.
func startEdge(t testing.TB, dir, url string, mods ...func(*Config)) *runningEdge {
	t.Helper()
	cfg := Config{
		EdgeID:       "edge-1",
		DataDir:      dir,
		Version:      "test",
		Engine:       testEngine(t),
		Info:         testEngine(t).Info(),
		Heartbeat:    200 * time.Millisecond,
		CompactDelay: 50 * time.Millisecond,
		Log:          quietLog(),

		FeedPublicKey: testFeed.PublicKey(),
	}
	for _, m := range mods {
		m(&cfg)
	}
	e, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsconn.Connect(context.Background(), natsconn.ConnectOptions{URL: url, Name: "edge " + cfg.EdgeID})
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx, nc)
	}()
	var once sync.Once
	re := &runningEdge{Edge: e}
	re.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			nc.Close()
			e.Close()
		})
	}
	t.Cleanup(re.stop)
	return re
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// contents returns the served set as user id -> revision, or nil while
// the gallery does not hold exactly the users the file does (a batch
// between its commit and the gallery update).
func contents(t testing.TB, e *Edge) map[string]uint64 {
	t.Helper()
	got := map[string]uint64{}
	inGallery := true
	if err := e.db.view(func(tx *bbolt.Tx) error {
		g, err := activeGen(tx)
		if err != nil {
			return err
		}
		return g.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			h, err := decodeHeader(v)
			if err != nil || h.Count == 0 {
				return err
			}
			got[string(k)] = h.Revision
			inGallery = inGallery && e.gallery.Has(string(k))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if !inGallery || e.gallery.Len() != len(got) {
		return nil
	}
	return got
}

func dbPath(dir string) string { return filepath.Join(dir, DBFileName) }
