package api

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// ParseNetworks reads the networks that may verify without a token: CIDRs
// or single addresses, separated by commas. An empty string is none (the
// default: every request needs a token). Loopback and "everything" (/0)
// are refused: behind nginx every request comes from loopback, so listing
// it would open verify to the internet.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var nets []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a network (CIDR such as 10.20.0.0/24) or an address", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = p.Masked()
		switch {
		case p.Bits() == 0:
			return nil, fmt.Errorf("%s would let any address verify without a token: list the door controllers' networks", f)
		case p.Contains(netip.MustParseAddr("127.0.0.1")) || p.Contains(netip.IPv6Loopback()) || p.Addr().IsLoopback():
			return nil, fmt.Errorf("%s includes loopback, where a proxy's requests come from: list the door controllers' own networks", f)
		}
		nets = append(nets, p)
	}
	return nets, nil
}

// AllowWithoutToken serves a request that carries no Authorization header
// and comes from one of nets (its TCP peer address, never a forwarded
// header) with open, and every other request with guarded: a request that
// brings a token has it checked as usual. It is the explicit opt-in for
// door controllers of the original service, which send no token, and is
// meant for POST /api/verify only. With no nets it returns guarded.
func AllowWithoutToken(nets []netip.Prefix, log *slog.Logger, guarded, open http.Handler) http.Handler {
	if len(nets) == 0 {
		return guarded
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, sent := r.Header["Authorization"]; !sent {
			if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				if a, err := netip.ParseAddr(host); err == nil && slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) }) {
					log.Info("verify without a token", "remote", r.RemoteAddr)
					open.ServeHTTP(w, r)
					return
				}
			}
		}
		guarded.ServeHTTP(w, r)
	})
}
