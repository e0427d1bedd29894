// Command central is the Xplore Face Auth central service and its admin
// tools: it serves the register/verify API, owns the reference set in the
// store and publishes every change to the edges over NATS JetStream.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// ./.env fills in the settings the environment leaves unset.
	if _, err := config.ApplyDotEnv(".env", os.LookupEnv, os.Setenv); err != nil {
		fmt.Fprintln(os.Stderr, "central: .env:", err)
		os.Exit(1)
	}
	app := &cli.App{
		Name:    "central",
		Usage:   "Xplore Face Auth central service",
		Version: version,
		// One command per file in this folder.
		Commands: []*cli.Command{
			modelsCommand(),
			serveCommand(),
			tokenCommand(),
			feedKeyCommand(),
			usersCommand(),
			importCommand(),
			evalCommand(),
			resyncCommand(),
			sweepCommand(),
			edgesCommand(),
			deletionsCommand(),
			versioncmd.Command(version, commit),
		},
	}
	if err := app.RunContext(ctx, os.Args); err != nil {
		// A *faceauth.Error is one sentence with its fix; that is the
		// line, and the cause (the SDK's error with its request id) goes
		// on the next for whoever digs further.
		if fe, ok := err.(*faceauth.Error); ok && fe.Err != nil {
			fmt.Fprintf(os.Stderr, "central: %s\n  cause: %v\n", fe.Msg, fe.Err)
		} else {
			fmt.Fprintln(os.Stderr, "central:", err)
		}
		os.Exit(1)
	}
}
