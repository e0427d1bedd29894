package central

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// The benchmarks measure whole HTTP requests against a local server on the
// real engine and a filestore: multipart parsing, auth, the face pipeline,
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
	crops := faceCrops(b)
	ts := newTestServer(b, nil)
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
	crops := faceCrops(b)
	ts := newTestServer(b, func(c *ServerConfig) { c.Limiter = nil })
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
