package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

func pct(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(p*float64(len(s))))]) / 1e6
}

// BenchmarkRegisterToEdge measures, on loopback with real processes, how
// long after central answers POST /api/register the user is verifiable on
// an edge (the edge's /readyz reports the change's revision applied). The
// registration itself (decoding, face pipeline, store write) is reported
// apart as register-p50-ms.
func BenchmarkRegisterToEdge(b *testing.B) {
	admin, verifyTok := tokens(b)
	img := frame(b, "sample1.jpg")
	natsAddr := freeAddr(b)
	c := startCentral(b, b.TempDir(), natsAddr)
	e := startEdge(b, "bench-1", b.TempDir(), c.nats, append(c.edgeAuth("bench-1"), "--heartbeat", "5s")...)
	var reg, sync []time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("bench-%06d", i)
		start := time.Now()
		rev := register(b, c, admin, id, img)
		registered := time.Now()
		for {
			if r := e.ready(); r != nil && r.AppliedRevision >= rev {
				break
			}
			time.Sleep(500 * time.Microsecond)
		}
		sync = append(sync, time.Since(registered))
		reg = append(reg, registered.Sub(start))
	}
	b.StopTimer()
	if status, m := verify(b, e.url, verifyTok, "bench-000000", img); status != http.StatusOK || m["verified"] != true {
		b.Fatalf("the last user is not verifiable on the edge: %d %v", status, m)
	}
	b.ReportMetric(pct(sync, 0.5), "sync-p50-ms")
	b.ReportMetric(pct(sync, 0.99), "sync-p99-ms")
	b.ReportMetric(pct(reg, 0.5), "register-p50-ms")
}
