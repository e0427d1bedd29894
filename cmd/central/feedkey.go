package main

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/internal/auth"
	pb "github.com/xplore/faceauth/proto"
)

// feedKeyCommand prints the feed public key edges are provisioned with.
func feedKeyCommand() *cli.Command {
	return &cli.Command{
		Name:  "feed-key",
		Usage: "print the feed public key (base64) that edges verify every change with: give it to `edged run --feed-public-key` (FEED_PUBLIC_KEY)",
		Description: "The feed key is derived from the token signing key (SECRET_KEY, or the key file in the data folder), " +
			"so every replica sharing SECRET_KEY signs with the same feed key. docs/sync.md, \"Signed feed\".",
		ArgsUsage: " ",
		Flags:     []cli.Flag{dataFlag(), keyFileFlag(), &cli.BoolFlag{Name: "id", Usage: "print the key id instead"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("feed-key takes no arguments, got %q", c.Args().First())
			}
			keyFile := c.String("token-key-file")
			if keyFile == "" {
				keyFile = filepath.Join(c.String("data"), auth.KeyFileName)
			}
			signer, err := loadSigner(os.Getenv("SECRET_KEY"), keyFile, newLogger(0))
			if err != nil {
				return err
			}
			fs, err := feedSigner(signer)
			if err != nil {
				return err
			}
			if c.Bool("id") {
				fmt.Fprintln(c.App.Writer, fs.KeyID())
				return nil
			}
			fmt.Fprintln(c.App.Writer, base64.StdEncoding.EncodeToString(fs.PublicKey()))
			return nil
		},
	}
}

// feedSigner derives the feed key from the token signing key.
func feedSigner(s *auth.Signer) (*pb.Signer, error) {
	seed, err := s.DeriveSeed(pb.KeyInfo)
	if err != nil {
		return nil, err
	}
	return pb.NewSigner(seed)
}

// previousFeedSigner returns the feed key being rotated away from, from
// PREVIOUS_SECRET_KEY or --previous-token-key-file, or nil when neither is
// set.
func previousFeedSigner(c *cli.Context, log *slog.Logger) (*pb.Signer, error) {
	secret, file := os.Getenv("PREVIOUS_SECRET_KEY"), c.String("previous-token-key-file")
	if secret == "" && file == "" {
		return nil, nil
	}
	prev, _, err := auth.LoadSigner(auth.KeyConfig{Secret: secret, KeyFile: file})
	if err != nil {
		return nil, fmt.Errorf("the previous key (PREVIOUS_SECRET_KEY or --previous-token-key-file): %w", err)
	}
	fs, err := feedSigner(prev)
	if err != nil {
		return nil, err
	}
	log.Info("announcing the feed key signed by the previous one: edges that trust it move to the new key", "previous_feed_key", fs.KeyID())
	return fs, nil
}
