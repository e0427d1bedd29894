// Package versioncmd is the `version` command of central and edged: what
// an operator (or a bug report) needs to know about the running build.
package versioncmd

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/models"
	"github.com/xplore/faceauth/models/face"
)

// Command returns `version`: the build version, the commit, the Go
// version, the ONNX Runtime library's version and the ids of the models
// in the manifest. version and commit are main's -ldflags values (make
// build sets both); an empty commit falls back to the one Go stamped.
func Command(version, commit string) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit, Go and ONNX Runtime versions and the model ids",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "models-dir", Usage: "folder holding the fetched, pinned model files", EnvVars: []string{"MODELS_DIR"}, Value: models.DefaultDir},
		},
		Action: func(c *cli.Context) error {
			return Print(c.App.Writer, c.App.Name, version, commit, c.String("models-dir"))
		},
	}
}

// Print writes the report. A missing or altered model folder does not fail
// it: the line says why the runtime version is unknown, since `version` is
// also what one runs when the models are the problem.
func Print(w io.Writer, name, version, commit, modelsDir string) error {
	if bi, ok := debug.ReadBuildInfo(); ok && commit == "" {
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			commit = rev
			if settings["vcs.modified"] == "true" {
				commit += " (modified)"
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	ortVersion, err := face.RuntimeVersion(modelsDir)
	if err != nil {
		ortVersion = "unknown: " + err.Error()
	}
	ids := "unknown"
	if m, err := models.Load(modelsDir); err != nil {
		ids = "unknown: " + err.Error()
	} else {
		var l []string
		for i := range m.Embedders {
			l = append(l, m.Embedders[i].ModelID())
		}
		// Fusions too: the default model is one, and answers name it.
		for i := range m.Fusions {
			if c, err := m.Choose(m.Fusions[i].ID); err == nil {
				l = append(l, c.ModelID())
			}
		}
		l = append(l, m.Liveness.ModelID()+" (liveness)")
		ids = strings.Join(l, ", ")
	}
	_, err = fmt.Fprintf(w, "%s %s\ncommit:       %s\ngo:           %s %s/%s\nonnxruntime:  %s\nmodels:       %s\n",
		name, version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, ortVersion, ids)
	return err
}
