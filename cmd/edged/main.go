// Command edged is the Xplore Face Auth edge daemon: it keeps a copy of the
// enrolled users' embeddings on a site device, follows central's change
// feed over NATS JetStream, and verifies faces locally, also while the
// network is down. See docs/edge.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/cmd/internal/versioncmd"
	"github.com/xplore/faceauth/internal/config"
)

// version and commit are set at build time with -ldflags "-X
// main.version=... -X main.commit=..." (make build does).
var (
	version = "dev"
	commit  = ""
)

func main() {
	// Settings come from the environment or a .env file in the working
	// directory; the environment wins, and flags win over both.
	if _, err := config.ApplyDotEnv(".env", os.LookupEnv, os.Setenv); err != nil {
		fmt.Fprintln(os.Stderr, "edged:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := &cli.App{
		Name:    "edged",
		Usage:   "Xplore Face Auth edge daemon: offline face verification from a synced copy of the users",
		Version: version,
		// One command per file in this folder.
		Commands: []*cli.Command{
			runCommand(),
			statusCommand(),
			inspectCommand(),
			versioncmd.Command(version, commit),
		},
	}
	if err := app.RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "edged:", err)
		os.Exit(1)
	}
}
