package api

import (
	"net"
	"net/http"
	"net/netip"
)

// forwardHeaders are the headers a reverse proxy adds; deploy/nginx sets
// X-Real-IP and X-Forwarded-For on every request it relays.
var forwardHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Real-IP"}

// SameMachine reports whether r comes from the server's own machine: from
// loopback, or from the address it reached the server on (a command run
// there with the listen address). A request that a proxy relayed is never
// local, although its TCP peer is the proxy on the same machine: behind
// nginx every client would otherwise count as local. A client cannot
// forge its way in, as it would have to remove the proxy's headers.
func SameMachine(r *http.Request) bool {
	for _, h := range forwardHeaders {
		if len(r.Header.Values(h)) > 0 {
			return false
		}
	}
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := remote.Addr().Unmap()
	if ip.IsLoopback() {
		return true
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	l, err := netip.ParseAddrPort(local.String())
	return err == nil && l.Addr().Unmap() == ip
}
