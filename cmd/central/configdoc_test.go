package main

import (
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/cmd/internal/flagdoc"
	"github.com/xplore/faceauth/internal/testenv"
)

// envOnly are the settings central reads from the environment without a
// flag: the token root secret (serve.go, token.go) and its previous value
// during a rotation, kept off the command line where ps would show them.
var envOnly = []string{"SECRET_KEY", "PREVIOUS_SECRET_KEY"}

// TestConfigurationDocs checks that README.md's `central serve` table
// names exactly serve's flags and variables, and that every setting in
// docs/configuration.md exists (that table also lists the admin commands'
// --url and --token).
func TestConfigurationDocs(t *testing.T) {
	root := testenv.RepoRoot(t)
	readme := filepath.Join(root, "README.md")
	rows, err := flagdoc.Table(readme, "### central serve")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range flagdoc.Check("README.md", rows, serveCommand().Flags, envOnly, true) {
		t.Error(p)
	}

	var all []cli.Flag
	var walk func(cmds []*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			all = append(all, c.Flags...)
			walk(c.Subcommands)
		}
	}
	walk([]*cli.Command{serveCommand(), tokenCommand(), usersCommand(), importCommand(), edgesCommand(), deletionsCommand()})
	conf := filepath.Join(root, "docs", "configuration.md")
	rows, err = flagdoc.Table(conf, "## Settings")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range flagdoc.Check("docs/configuration.md", rows, all, envOnly, false) {
		t.Error(p)
	}
}
