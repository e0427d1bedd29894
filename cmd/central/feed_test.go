package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/central/httpapi"
	"github.com/xplore/faceauth/central/natsd"
	"github.com/xplore/faceauth/central/store/filestore"
	"github.com/xplore/faceauth/edged/uplink"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/natsconn"
	pb "github.com/xplore/faceauth/proto"
)

// runFeedCmd runs the feed's admin commands with args.
func runFeedCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{
		Name:           "central",
		Writer:         &out,
		ErrWriter:      &out,
		Commands:       []*cli.Command{resyncCommand(), edgesCommand(), deletionsCommand(), feedKeyCommand()},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.RunContext(t.Context(), append([]string{"central"}, args...))
	return out.String(), err
}

// TestFeedCommands registers real users in a store folder, republishes
// them with `central resync` into a real NATS server, and reads the edges'
// view back with `central edges` and `central deletions`.
func TestFeedCommands(t *testing.T) {
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	data := t.TempDir()
	st, err := filestore.New(filepath.Join(data, "store"))
	if err != nil {
		t.Fatal(err)
	}
	reg := central.NewRegistry(central.Config{Store: st, Engine: fake, Info: fake.Info(), Log: quiet})
	for _, id := range []string{"ann.lee@example.com", "d-1"} {
		if _, err := reg.Register(ctx, id, "", []central.Image{{Data: faces[0]}}); err != nil {
			t.Fatal(err)
		}
	}
	del, err := reg.Delete(ctx, "d-1")
	if err != nil {
		t.Fatal(err)
	}

	ns, err := natsd.Start(ctx, natsd.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	resync := []string{"resync", "--data", data, "--nats-url", ns.ClientURL(), "--log-level", "error"}
	out, err := runFeedCmd(t, resync...)
	if err != nil || !strings.Contains(out, "republished 2 users and deletions") {
		t.Fatalf("resync: %q %v", out, err)
	}
	nc, err := natsconn.Connect(ctx, natsconn.ConnectOptions{URL: ns.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st1, err := uplink.ReadStreamState(ctx, js)
	if err != nil || st1.Msgs != 2 {
		t.Fatalf("stream after resync: %+v %v", st1, err)
	}
	got := map[string]*pb.UserChange{}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stop := errors.New("stop")
	// What resync published verifies with the key `central feed-key` prints.
	pubB64, err := runFeedCmd(t, "feed-key", "--data", data)
	if err != nil {
		t.Fatalf("feed-key: %q %v", pubB64, err)
	}
	feedPub, err := base64.StdEncoding.DecodeString(strings.TrimSpace(pubB64))
	if err != nil || len(feedPub) != ed25519.PublicKeySize {
		t.Fatalf("feed-key printed %q: %v", pubB64, err)
	}
	uplink.Consume(cctx, js, uplink.ConsumeOptions{Keys: pb.TrustKey(feedPub)}, func(ds []uplink.Delivery) error {
		for _, d := range ds {
			if d.Err != nil {
				t.Errorf("message %d: %v", d.Seq, d.Err)
				return stop
			}
			got[pb.ChangeUserID(d.Change)] = d.Change
		}
		if len(got) == 2 {
			return stop
		}
		return nil
	})
	if u := got["ann.lee@example.com"].GetUpsert(); u == nil || len(u.GetEmbeddings()) != 1 || len(u.GetEmbeddings()[0].GetVector()) == 0 {
		t.Fatalf("ann: %v", got["ann.lee@example.com"])
	}
	if d := got["d-1"].GetDelete(); d == nil || d.GetRevision() != del.Revision {
		t.Fatalf("d-1: %v", got["d-1"])
	}
	out, err = runFeedCmd(t, append(resync, "--recreate")...)
	if err != nil {
		t.Fatalf("resync --recreate: %q %v", out, err)
	}
	if st2, _ := uplink.ReadStreamState(ctx, js); st2.Created.Equal(st1.Created) || st2.Msgs != 2 {
		t.Fatalf("stream not re-created: %+v -> %+v", st1, st2)
	}
	// NATS that is not there: a clear error, soon.
	out, err = runFeedCmd(t, "resync", "--data", data, "--nats-url", "nats://127.0.0.1:1", "--nats-wait", "300ms", "--log-level", "error")
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("resync without NATS: %q %v", out, err)
	}

	// The edges' view through the HTTP API.
	mon, err := fleet.New(nc, fleet.Options{Model: fake.Info().Model, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	go mon.Run(mctx)
	<-mon.Ready()
	signer, _ := auth.SignerFromSecret("cmd test secret, long enough")
	hs := httptest.NewServer(httpapi.NewServer(httpapi.Config{Registry: reg, Tokens: signer, Edges: mon, Log: quiet}))
	defer hs.Close()
	tok, _ := signer.Issue("test", auth.RoleAdmin, time.Hour, time.Now())
	conn := []string{"--url", hs.URL, "--token", tok}
	rev, _ := reg.Revision(ctx)
	deadline := time.Now().Add(15 * time.Second)
	for {
		uplink.PublishStatus(nc, &pb.EdgeStatus{EdgeId: "site-1", Model: fake.Info().Model, AppliedRevision: rev, UserCount: 1, Version: "v9", SentAt: timestamppb.Now()})
		out, err = runFeedCmd(t, append([]string{"edges", "--check"}, conn...)...)
		if err == nil && strings.Contains(out, "site-1  (none)  in_sync") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edges: %q %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	uplink.PublishStatus(nc, &pb.EdgeStatus{EdgeId: "site-2", Model: "another", SentAt: timestamppb.Now()})
	for {
		out, err = runFeedCmd(t, append([]string{"edges", "--check"}, conn...)...)
		if err != nil && strings.Contains(out, "model_mismatch") {
			break // --check fails while an edge is not in sync
		}
		if time.Now().After(deadline) {
			t.Fatalf("edges --check with a mismatched edge: %q %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := uplink.PublishReceipt(ctx, js, &pb.DeleteReceipt{EdgeId: "site-1", UserId: "d-1", Revision: del.Revision}); err != nil {
		t.Fatal(err)
	}
	for {
		out, err = runFeedCmd(t, append([]string{"deletions", "--json", "--limit", "1"}, conn...)...)
		var resp deletionsResponse
		if err == nil && json.Unmarshal([]byte(out), &resp) == nil && len(resp.Deletions) == 1 &&
			resp.Deletions[0].UserID == "d-1" && strings.Join(resp.Deletions[0].Purged, ",") == "site-1" &&
			strings.Join(resp.Deletions[0].Pending, ",") == "site-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deletions: %q %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err = runFeedCmd(t, append([]string{"deletions", "--pending"}, conn...)...)
	if err != nil || !strings.Contains(out, "d-1") || !strings.Contains(out, "1/2") {
		t.Fatalf("deletions table: %q %v", out, err)
	}
	if _, err := runFeedCmd(t, "edges", "--url", hs.URL, "--token", "bad"); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("bad token: %v", err)
	}
}
