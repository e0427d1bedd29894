package api

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ConnLimit bounds the TCP connections a server holds open. Each costs
// some 20 KB and a file descriptor whether or not it ever sends a request,
// and an idle keep-alive connection stays up to the server's IdleTimeout:
// without a bound one client on the network (no token needed: GET /healthz
// keeps a connection alive) can open connections until the process runs
// out of descriptors, when it accepts no door's connection any more, or
// out of memory.
type ConnLimit struct {
	// PerClient is the most connections from one remote IP address; 0
	// means no limit. A door controller or kiosk needs a few.
	PerClient int
	// Total is the most connections in all; 0 means no limit.
	Total int
}

// DefaultConnLimit is the edge's: 64 connections a client (a door never
// needs more, the pipeline queue holds 64 requests), 4096 in all (about
// 80 MB of connection state).
var DefaultConnLimit = ConnLimit{PerClient: 64, Total: 4096}

// LimitConns returns ln with lim enforced: a connection beyond a limit is
// closed as soon as it is accepted, before anything is read from it, and
// the refusals are logged at most once a minute.
func LimitConns(ln net.Listener, lim ConnLimit, log *slog.Logger) net.Listener {
	if lim.PerClient <= 0 && lim.Total <= 0 {
		return ln
	}
	return &limitedListener{Listener: ln, lim: lim, log: log, per: map[string]int{}}
}

type limitedListener struct {
	net.Listener
	lim ConnLimit
	log *slog.Logger

	mu       sync.Mutex
	total    int
	per      map[string]int // open connections by remote IP; absent: none
	refused  uint64         // since the last log line
	loggedAt time.Time
}

// Accept implements net.Listener.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if l.admit(ip) {
			return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		c.Close()
	}
}

// admit counts a connection from ip when the limits allow it.
func (l *limitedListener) admit(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if (l.lim.Total > 0 && l.total >= l.lim.Total) || (l.lim.PerClient > 0 && l.per[ip] >= l.lim.PerClient) {
		l.refused++
		if now := time.Now(); now.Sub(l.loggedAt) >= time.Minute {
			l.log.Warn("connections refused: too many open", "refused", l.refused, "last_client", ip,
				"client_open", l.per[ip], "per_client_limit", l.lim.PerClient, "open", l.total, "limit", l.lim.Total)
			l.refused, l.loggedAt = 0, now
		}
		return false
	}
	l.total++
	l.per[ip]++
	return true
}

func (l *limitedListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.per[ip]--; l.per[ip] <= 0 {
		delete(l.per, ip) // the map holds only clients with open connections
	}
}

// remoteIP is the connection's peer address without the port.
func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// limitedConn gives its place back once, on the first Close.
type limitedConn struct {
	net.Conn
	closed  atomic.Bool
	release func()
}

// CloseWrite half-closes a TCP connection, as net/http does before it
// closes one whose request body it did not read (a 413), so that the
// client reads the answer instead of a reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close implements net.Conn.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.release()
	}
	return err
}
