package publish

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

// bigSource returns a registry of n users with one 512-d embedding each,
// the size of a real user with one reference.
func bigSource(n int) *natstest.Source {
	src := natstest.NewSource()
	vec := make([]float32, 512)
	for i := range vec {
		vec[i] = float32(i) / 512
	}
	for i := range n {
		id := fmt.Sprintf("user.%06d@example.com", i)
		src.Set(func(rev uint64) *pb.UserChange {
			return &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{
				UserId: id, Revision: rev, Name: id,
				Embeddings: []*pb.Embedding{{Model: "m1", Vector: vec}},
				UpdatedAt:  timestamppb.Now(),
			}}}
		})
	}
	return src
}

// BenchmarkPublishToConsume measures one change's way from Publish (an
// HTTP handler's call) to an edge's uplink.Consume callback over loopback, with
// a real embedded server, and reports the latency percentiles.
func BenchmarkPublishToConsume(b *testing.B) {
	n := natstest.Start(b)
	src := natstest.NewSource()
	nc, js := natstest.Connect(b, n.URL())
	p, _ := runPublisher(b, nc, src, Options{Signer: testSigner})
	// Warm up: the first change also creates the stream.
	p.Publish(src.Upsert("warm", 512))
	natstest.WaitStream(b, js, src)
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	got := make(chan uint64, 1)
	go func() {
		err := uplink.Consume(ctx, js, uplink.ConsumeOptions{Keys: testKeys}, func(ds []uplink.Delivery) error {
			for _, d := range ds {
				got <- pb.ChangeRevision(d.Change)
			}
			return nil
		})
		if ctx.Err() == nil {
			b.Errorf("Consume: %v", err)
			close(got)
		}
	}()
	<-got
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := src.Upsert("user.bench@example.com", 512)
		t0 := time.Now()
		p.Publish(c)
		for rev := uint64(0); rev != pb.ChangeRevision(c); {
			var ok bool
			if rev, ok = <-got; !ok {
				b.FailNow()
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkBootstrap100k measures a new edge reading a users stream of
// 100,000 users (one 512-d embedding each, about 2.2 KB) from the first
// message until it has caught up, decoding every change.
func BenchmarkBootstrap100k(b *testing.B) {
	const users = 100_000
	n := natstest.Start(b)
	src := bigSource(users)
	nc, js := natstest.Connect(b, n.URL())
	p, err := New(nc, Options{Signer: testSigner, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.Resync(b.Context(), src, ResyncOptions{}); err != nil {
		b.Fatal(err)
	}
	caught := errors.New("caught up")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		count := 0
		err := uplink.Consume(b.Context(), js, uplink.ConsumeOptions{Keys: testKeys}, func(ds []uplink.Delivery) error {
			count += len(ds)
			if ds[len(ds)-1].Pending == 0 {
				return caught
			}
			return nil
		})
		if !errors.Is(err, caught) || count != users {
			b.Fatalf("bootstrap read %d users: %v", count, err)
		}
	}
	b.ReportMetric(float64(users*b.N)/b.Elapsed().Seconds(), "users/s")
}

// BenchmarkResync100k measures `central resync`: republishing 100,000
// users with acknowledgements.
func BenchmarkResync100k(b *testing.B) {
	const users = 100_000
	n := natstest.Start(b)
	src := bigSource(users)
	nc, _ := natstest.Connect(b, n.URL())
	p, err := New(nc, Options{Signer: testSigner, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got, err := p.Resync(b.Context(), src, ResyncOptions{}); err != nil || got != users {
			b.Fatalf("Resync = %d, %v", got, err)
		}
	}
	b.ReportMetric(float64(users*b.N)/b.Elapsed().Seconds(), "users/s")
}

// BenchmarkEraseReplaced measures the erasure of replaced messages: 10,000
// users (about 25 MB of stream, several 8 MB blocks) all updated once, as a
// re-embedding after a model change does; each replaced message is
// overwritten in its block file.
func BenchmarkEraseReplaced(b *testing.B) {
	const users = 10_000
	n := natstest.Start(b)
	nc, _ := natstest.Connect(b, n.URL())
	for range b.N {
		src := bigSource(users)
		p, err := New(nc, Options{Timeout: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Resync(b.Context(), src, ResyncOptions{Recreate: true}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := p.Resync(b.Context(), src, ResyncOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := p.Status().Erased; got != users {
			b.Fatalf("erased %d, want %d", got, users)
		}
	}
	b.ReportMetric(float64(users*b.N)/b.Elapsed().Seconds(), "erasures/s")
}
