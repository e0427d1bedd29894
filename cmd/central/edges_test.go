package main

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/feed"
)

func TestPrintEdges(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	printEdges(&buf, []feed.EdgeState{
		{ID: "site-1", State: feed.StateInSync, LastSeen: now.Add(-4 * time.Second), UserCount: 981, Version: "v1", Model: "m1"},
		{ID: "site-2", State: feed.StateBehind, Lag: 12, PendingMessages: 3, Resyncing: true, LastSeen: now.Add(-90 * time.Second), LastError: "line one\nline two"},
		{ID: "site-3", State: feed.StateModelMismatch, RefusedModels: []string{"m0"}, LastSeen: now.Add(-3 * time.Hour)},
		{ID: "site-4", State: feed.StateOffline},
	}, now)
	out := buf.String()
	for _, want := range []string{
		"EDGE", "site-1  in_sync", "4s ago", "981",
		"behind (resyncing)", "1m ago", "line one line two",
		"model_mismatch (refuses m0)", "3h ago",
		"site-4  offline", "never",
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
	printDeletions(&buf, []feed.DeletionState{
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

func apiContext(t *testing.T, args ...string) *cli.Context {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	for _, f := range apiFlags() {
		f.Apply(fs)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(cli.NewApp(), fs, nil)
}

func TestAPIGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"The token is not valid.","code":"unauthenticated"}`))
			return
		}
		if r.URL.Path != "/api/edges" || r.URL.Query().Get("x") != "1" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Write([]byte(`{"edges":[]}`))
	}))
	defer srv.Close()
	tests := []struct {
		name, url, token, want string
	}{
		{"ok", srv.URL + "/", "good", ""},
		{"bad token", srv.URL, "bad", "The token is not valid. (unauthenticated, HTTP 401)"},
		{"unreachable", "http://127.0.0.1:1", "good", "unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := apiContext(t, "--url", tc.url, "--token", tc.token)
			body, err := apiGet(t.Context(), c, "/api/edges", map[string][]string{"x": {"1"}})
			if tc.want == "" {
				if err != nil || string(body) != `{"edges":[]}` {
					t.Fatalf("%q, %v", body, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
