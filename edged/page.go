package edged

import (
	_ "embed"
	"html/template"
	"time"
)

// The edge's read-only status page at "/": the sync state, how many users
// it can verify, the last change applied and the model. It shows no user
// id, name or biometric datum, needs no token and runs no script.

//go:embed page/status.html
var statusHTML string

//go:embed page/status.css
var statusCSS []byte

var statusTmpl = template.Must(template.New("status").Parse(statusHTML))

// statusView is what the page shows.
type statusView struct {
	Readiness
	EdgeID      string
	Version     string
	State       string
	StateClass  string // ok, warn or bad
	Explanation string
	LastSync    string
}

func (e *Edge) statusView() statusView {
	r := e.Ready()
	v := statusView{Readiness: r, EdgeID: e.cfg.EdgeID, Version: e.cfg.Version, LastSync: "never"}
	if v.Version == "" {
		v.Version = "dev"
	}
	if r.LastSync != nil {
		v.LastSync = r.LastSync.Local().Format(time.DateTime) + " (" + time.Since(*r.LastSync).Round(time.Second).String() + " ago)"
	}
	switch {
	case r.Resyncing:
		v.State, v.StateClass = "resyncing", "warn"
		v.Explanation = "Rebuilding the user set from central; verification answers from the previous set meanwhile."
	case r.Synced:
		v.State, v.StateClass = "in sync", "ok"
		v.Explanation = "Every change central has published is applied."
	case !r.NATSConnected:
		v.State, v.StateClass = "offline", "bad"
		v.Explanation = "Not connected to central's change feed; verification goes on from the users held here."
	default:
		v.State, v.StateClass = "catching up", "warn"
		v.Explanation = "Connected, applying changes published since the last sync."
	}
	return v
}
