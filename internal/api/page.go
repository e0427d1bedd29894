package api

import "net/http"

// ConsoleCSP is the Content-Security-Policy of central's web console:
// its own script, style and API only, nothing inline, nothing from
// another origin, never framed. Thumbnails and camera frames are blob:
// URLs the console makes itself.
const ConsoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " +
	"media-src 'self' blob: mediastream:; connect-src 'self'; font-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// StatusPageCSP is the Content-Security-Policy of the edge's status page,
// which has no script at all.
const StatusPageCSP = "default-src 'none'; style-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// SetPageHeaders sets the security headers of an HTML page or one of its
// assets: csp, no framing, no sniffing, no referrer, and the camera for
// this origin only.
func SetPageHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(self), microphone=(), geolocation=(), payment=(), usb=()")
	// Every page is checked against the binary that serves it, so a new
	// release is never hidden behind a stale copy.
	h.Set("Cache-Control", "no-cache")
}
