package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth/central/fleet"
)

func TestPrintEdges(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	printEdges(&buf, []fleet.EdgeState{
		{ID: "site-1", Sites: []string{"hq", "lobby"}, State: fleet.StateInSync, LastSeen: now.Add(-4 * time.Second), UserCount: 981, Version: "v1", Model: "m1"},
		{ID: "site-2", State: fleet.StateBehind, Lag: 12, PendingMessages: 3, Resyncing: true, LastSeen: now.Add(-90 * time.Second), LastError: "line one\nline two"},
		{ID: "site-3", State: fleet.StateModelMismatch, RefusedModels: []string{"m0"}, LastSeen: now.Add(-3 * time.Hour)},
		{ID: "site-4", State: fleet.StateOffline},
		{ID: "site-5", State: fleet.StateRejecting, FeedRejected: 3, LastSeen: now, LastReject: "feed message rejected: upsert is not signed"},
	}, now)
	out := buf.String()
	for _, want := range []string{
		"EDGE", "SITES", "site-1  hq,lobby  in_sync", "4s ago", "981",
		"behind (resyncing)", "1m ago", "line one line two",
		"model_mismatch (refuses m0)", "3h ago",
		"site-4  (none)", "offline", "never",
		"rejecting (3 refused)", "upsert is not signed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	printEdges(&buf, nil, now)
	if !strings.Contains(buf.String(), "no edge") {
		t.Errorf("empty list: %q", buf.String())
	}
}

func TestPrintDeletions(t *testing.T) {
	var buf bytes.Buffer
	printDeletions(&buf, []fleet.DeletionState{
		{UserID: "ann.lee@example.com", Revision: 7, DeletedAt: time.Now(), Purged: []string{"a", "b"}, Pending: []string{}},
		{UserID: "cy", Revision: 9, Purged: []string{"a"}, Pending: []string{"b", "c"}},
	})
	out := buf.String()
	for _, want := range []string{"ann.lee@example.com", "2/2", "1/3", "b,c"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
