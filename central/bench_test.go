package central

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/internal/auth"
	pb "github.com/xplore/faceauth/proto"
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
	crops := realCrops(b)
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
	crops := realCrops(b)
	ts := realServer(b, func(c *ServerConfig) { c.Limiter = nil })
	for i, c := range crops {
		ct, body := form(part{name: "user_id", value: fmt.Sprintf("user%d", i)}, part{name: "image", file: c})
		benchPost(b, ts, "/api/register", ts.admin, ct, body)
	}
	bodies := make([][2]any, len(crops))
	for i, c := range crops {
		ct, body := form(part{name: "user_id", value: fmt.Sprintf("user%d", i)}, part{name: "image", file: variant(b, c, 80)})
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
	reg := NewRegistry(Config{Store: backends[0].open(b), Log: quiet})
	recs := make([]*pb.UserRecord, n)
	now := timestamppb.Now()
	for i := range recs {
		recs[i] = &pb.UserRecord{Id: fmt.Sprintf("user%06d", i), Name: fmt.Sprintf("Person %d Example", i), Revision: uint64(i + 1),
			References: []*pb.Reference{{}, {}}, CreatedAt: now, UpdatedAt: now}
	}
	reg.index.dir.reset(recs)
	reg.index.loaded = true
	srv := httptest.NewServer(NewServer(ServerConfig{Registry: reg, Tokens: signer, Log: quiet}))
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
