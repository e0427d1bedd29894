package api

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// healthz sends GET /healthz on c and reads the answer, leaving c open
// (keep-alive), as a client that holds connections does; it reports
// whether an answer came.
func healthz(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(time.Minute))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestLimitConns: a client that opens connections and keeps them alive
// (no token needed) is held to its share, so the server keeps file
// descriptors and memory for the doors; a closed connection gives its
// place back.
func TestLimitConns(t *testing.T) {
	tests := []struct {
		name  string
		lim   ConnLimit
		serve int // connections from the one client that get answers
	}{
		{"per client", ConnLimit{PerClient: 3}, 3},
		{"total", ConnLimit{Total: 2}, 2},
		{"both", ConnLimit{PerClient: 3, Total: 5}, 3},
		{"no limit: every connection is held", ConnLimit{}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
				}),
				ReadHeaderTimeout: 10 * time.Second,
				IdleTimeout:       2 * time.Minute,
			}
			go srv.Serve(LimitConns(ln, tt.lim, quiet))
			t.Cleanup(func() { srv.Close() })

			var held []net.Conn
			t.Cleanup(func() {
				for _, c := range held {
					c.Close()
				}
			})
			for i := range 8 {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
				if got, want := healthz(c), i < tt.serve; got != want {
					t.Fatalf("connection %d answered: %v, want %v", i+1, got, want)
				}
			}
			if tt.serve == len(held) {
				return
			}
			// Closing an answered connection frees its place, once the
			// server has seen it close.
			held[0].Close()
			waitFor(t, func() bool {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
				return healthz(c)
			})
		})
	}
}
