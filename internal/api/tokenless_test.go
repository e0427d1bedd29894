package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth/internal/auth"
)

func TestParseNetworks(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"", "[]", ""},
		{"10.20.0.0/24, 192.0.2.7", "[10.20.0.0/24 192.0.2.7/32]", ""},
		{"10.20.0.9/24", "[10.20.0.0/24]", ""},
		{"2001:db8::/48", "[2001:db8::/48]", ""},
		{"door-1", "", "not a network"},
		{"0.0.0.0/0", "", "any address"},
		{"127.0.0.0/8", "", "loopback"},
		{"::1", "", "loopback"},
		{"64.0.0.0/1", "", "loopback"},
	}
	for _, tt := range tests {
		nets, err := ParseNetworks(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseNetworks(%q) error = %v, want one with %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseNetworks(%q): %v", tt.in, err)
			continue
		}
		got := "["
		for i, p := range nets {
			if i > 0 {
				got += " "
			}
			got += p.String()
		}
		if got += "]"; got != tt.want {
			t.Errorf("ParseNetworks(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestAllowWithoutToken(t *testing.T) {
	signer, err := auth.SignerFromSecret("a secret long enough for the test")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := signer.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nets, err := ParseNetworks("192.0.2.0/24")
	if err != nil {
		t.Fatal(err)
	}
	reached := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := AllowWithoutToken(nets, quiet, RequireRole(signer, auth.RoleVerify, quiet, reached), reached)
	tests := []struct {
		name, remote, auth string
		want               int
	}{
		{"listed network, no token", "192.0.2.10:5555", "", http.StatusTeapot},
		{"listed network, IPv4-mapped", "[::ffff:192.0.2.10]:5555", "", http.StatusTeapot},
		{"other network, no token", "198.51.100.1:5555", "", http.StatusUnauthorized},
		{"loopback (a proxy), no token", "127.0.0.1:5555", "", http.StatusUnauthorized},
		{"listed network, bad token is still checked", "192.0.2.10:5555", "Bearer fa1.nope", http.StatusUnauthorized},
		{"listed network, empty header is a token", "192.0.2.10:5555", " ", http.StatusUnauthorized},
		{"other network, good token", "198.51.100.1:5555", "Bearer " + tok, http.StatusTeapot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/api/verify", nil)
			req.RemoteAddr = tt.remote
			if tt.auth != "" {
				req.Header.Set("Authorization", strings.TrimSpace(tt.auth))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
	// Off by default: no networks, the guarded handler itself.
	req := httptest.NewRequest("POST", "/api/verify", nil)
	req.RemoteAddr = "192.0.2.10:5555"
	rec := httptest.NewRecorder()
	AllowWithoutToken(nil, quiet, RequireRole(signer, auth.RoleVerify, quiet, reached), reached).ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("without networks: %d, want 401", rec.Code)
	}
}
