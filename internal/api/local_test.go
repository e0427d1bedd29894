package api

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestSameMachine(t *testing.T) {
	onLAN := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 8090}
	cases := []struct {
		name   string
		remote string
		local  net.Addr // the address the request reached the server on
		header string   // a proxy's header, set to the client's address
		want   bool
	}{
		{"loopback", "127.0.0.1:40000", nil, "", true},
		{"loopback IPv6", "[::1]:40000", nil, "", true},
		{"IPv4 in IPv6 loopback", "[::ffff:127.0.0.1]:40000", nil, "", true},
		{"the server's own LAN address", "192.0.2.1:40000", onLAN, "", true},
		{"another machine", "192.0.2.7:40000", onLAN, "", false},
		{"another machine, no local address known", "192.0.2.7:40000", nil, "", false},
		{"relayed by nginx on the machine (X-Real-IP)", "127.0.0.1:40000", nil, "X-Real-IP", false},
		{"relayed by a proxy (X-Forwarded-For)", "127.0.0.1:40000", nil, "X-Forwarded-For", false},
		{"relayed by a proxy (Forwarded)", "127.0.0.1:40000", nil, "Forwarded", false},
		{"an unparsable peer", "somewhere", nil, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/readyz", nil)
			r.RemoteAddr = tc.remote
			if tc.local != nil {
				r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tc.local))
			}
			if tc.header != "" {
				r.Header.Set(tc.header, "203.0.113.9")
			}
			if got := SameMachine(r); got != tc.want {
				t.Fatalf("SameMachine = %v, want %v", got, tc.want)
			}
		})
	}
}
