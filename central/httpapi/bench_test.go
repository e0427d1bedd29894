package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/models/face/realface"
	pb "github.com/xplore/faceauth/proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The benchmarks measure whole HTTP requests against a local server on the
// real engine (realServer) and a filestore: multipart parsing, auth, the face pipeline,
// the store and the JSON answer. They report requests per second; run
// with -cpu to set the client concurrency.

func benchPost(b *testing.B, ts *testServer, path, token, ct string, body []byte) {
	req, _ := http.NewRequest("POST", ts.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		b.Fatalf("%s: %d", path, resp.StatusCode)
	}
}

func BenchmarkRegisterHTTP(b *testing.B) {
	crops := realface.Crops(b)
	ts := realServer(b, nil)
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			ct, body := form(part{name: "user_id", value: fmt.Sprintf("user%d", i)}, part{name: "image", file: crops[int(i)%len(crops)]})
			benchPost(b, ts, "/api/register", ts.admin, ct, body)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkVerifyHTTP(b *testing.B) {
	crops := realface.Crops(b)
	ts := realServer(b, func(c *Config) { c.Limiter = nil })
	for i, c := range crops {
		ct, body := form(part{name: "user_id", value: fmt.Sprintf("user%d", i)}, part{name: "image", file: c})
		benchPost(b, ts, "/api/register", ts.admin, ct, body)
	}
	bodies := make([][2]any, len(crops))
	for i, c := range crops {
		ct, body := form(part{name: "user_id", value: fmt.Sprintf("user%d", i)}, part{name: "image", file: centraltest.Variant(b, c, 80)})
		bodies[i] = [2]any{ct, body}
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := bodies[int(n.Add(1))%len(bodies)]
			benchPost(b, ts, "/api/verify", ts.verify, r[0].(string), r[1].([]byte))
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkListUsers100k measures GET /api/users at the server over a
// directory of 100,000 users: a first page, a deep page, and searches that
// scan every user (the worst case). The store holds only the revision, so
// the numbers are the listing's own cost (docs/benchmarks.md).
func BenchmarkListUsers100k(b *testing.B) {
	const n = 100_000
	signer, err := auth.SignerFromSecret("central list benchmark secret")
	if err != nil {
		b.Fatal(err)
	}
	// The records are written where the registry keeps them
	// (docs/architecture.md, the object layout), in memory: 100,000 on a
	// real store take minutes to write on this machine.
	st := centraltest.NewMemStore()
	now := timestamppb.Now()
	for i := range n {
		rec := &pb.UserRecord{Id: fmt.Sprintf("user%06d", i), Name: fmt.Sprintf("Person %d Example", i), Revision: uint64(i + 1),
			References: []*pb.Reference{{}, {}}, CreatedAt: now, UpdatedAt: now}
		data, err := proto.Marshal(rec)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Put(b.Context(), "records/"+rec.Id+".pb", data, faceauth.Cond{}); err != nil {
			b.Fatal(err)
		}
	}
	reg := central.NewRegistry(central.Config{Store: st, Log: quiet})
	if err := reg.WarmIndex(b.Context()); err != nil {
		b.Fatal(err)
	}
	if users, _, err := reg.List(b.Context(), "", "", "", 50); err != nil || len(users) != 50 {
		b.Fatalf("the directory lists %d users (%v), want a page of 50", len(users), err)
	}
	srv := httptest.NewServer(NewServer(Config{Registry: reg, Tokens: signer, Log: quiet}))
	b.Cleanup(srv.Close)
	admin, _ := signer.Issue("bench", auth.RoleAdmin, time.Hour, time.Now())
	for _, c := range []struct{ name, query string }{
		{"first-page", "limit=50"},
		{"deep-page", "limit=50&after=user098000"},
		{"search-one-match", "limit=50&q=user099999"},
		{"search-no-match", "limit=50&q=nobody"},
		{"search-by-name", "limit=50&q=person+7"},
	} {
		b.Run(c.name, func(b *testing.B) {
			req, _ := http.NewRequest("GET", srv.URL+"/api/users?"+c.query, nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			for b.Loop() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
		})
	}
}
