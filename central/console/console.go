// Package console is central's web console: a static page, one style
// sheet and one hand-written script, embedded in the binary, that call
// central's JSON API with the admin's bearer token (docs/console.md).
// Nothing is fetched from another origin, so it works on a network
// without internet, and the strict Content-Security-Policy of
// api.ConsoleCSP allows nothing inline.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"

	"github.com/xplore/faceauth/internal/api"
)

//go:embed static
var static embed.FS

// Prefix is the URL path under which the assets are served.
const Prefix = "/console/"

// contentTypes of the embedded files, set explicitly so that nosniff
// never meets a guess.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Handler serves the console: the page at "/" and its assets under
// Prefix. Everything else is not found.
func Handler() http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	serve := func(w http.ResponseWriter, r *http.Request, name string) {
		data, err := fs.ReadFile(files, name)
		ct, known := contentTypes[path.Ext(name)]
		if err != nil || !known {
			http.NotFound(w, r)
			return
		}
		api.SetPageHeaders(w.Header(), api.ConsoleCSP)
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(data)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { serve(w, r, "index.html") })
	mux.HandleFunc("GET "+Prefix+"{file}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("file") == "index.html" {
			http.NotFound(w, r)
			return
		}
		serve(w, r, r.PathValue("file"))
	})
	return mux
}
