package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "register many users from a folder (one sub-folder of photos per user) or a CSV file of user_id,file",
		Description: `SOURCE is either a folder whose sub-folders are named after the users and
hold their photos, or a CSV file with the columns user_id,file (file paths
relative to the CSV file; a header line user_id,file is allowed).

Every photo is sent as POST /api/register, which creates the user or adds
the photo. Done entries are appended to a state file, so an interrupted
import started again skips them. Every photo that failed is listed with
the reason, and the command then exits with status 1.`,
		ArgsUsage: "SOURCE",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "state", Usage: "state file of done entries (default: SOURCE.import-state beside SOURCE)"},
			&cli.IntFlag{Name: "parallel", Usage: "requests in flight", Value: 2},
			&cli.IntFlag{Name: "retries", Usage: "retries of a photo after a server or network error", Value: 3},
		}, clientFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("usage: central import SOURCE (a folder or a CSV file)")
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			src := filepath.Clean(c.Args().First())
			state := c.String("state")
			if state == "" {
				state = src + ".import-state"
			}
			progress := terminal(c.App.ErrWriter)
			imp := &importer{
				register: func(ctx context.Context, e importEntry) error {
					_, err := cl.register(ctx, e.UserID, "", "", []string{e.Path})
					return err
				},
				parallel: max(c.Int("parallel"), 1),
				retries:  max(c.Int("retries"), 0),
				progress: progress,
			}
			sum, err := imp.run(c.Context, src, state)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "imported %d, already done %d, failed %d (state in %s)\n", sum.ok, sum.skipped, len(sum.failed), state)
			for _, f := range sum.failed {
				fmt.Fprintf(c.App.ErrWriter, "FAILED %s %s: %v\n", f.entry.UserID, f.entry.Path, f.err)
			}
			if len(sum.failed) > 0 {
				return cli.Exit(fmt.Sprintf("%d photo(s) failed; fix them and run the import again (done entries are skipped)", len(sum.failed)), 1)
			}
			return nil
		},
	}
}

// importEntry is one photo of one user.
type importEntry struct {
	UserID string
	Path   string
}

func (e importEntry) key() string { return e.UserID + "\t" + e.Path }

type importFailure struct {
	entry importEntry
	err   error
}

type importSummary struct {
	ok, skipped int
	failed      []importFailure
}

// importer sends entries with a bounded number in flight and records each
// done entry in the state file.
type importer struct {
	register func(context.Context, importEntry) error
	parallel int
	retries  int
	progress io.Writer // a terminal for the progress bar, or nil
}

// readEntries lists the entries of a folder or CSV source. Entries that
// cannot be sent (an invalid user id, a bad CSV row) come back as failures.
func readEntries(src string) ([]importEntry, []importFailure, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, nil, err
	}
	var entries []importEntry
	var bad []importFailure
	if fi.IsDir() {
		users, err := os.ReadDir(src)
		if err != nil {
			return nil, nil, err
		}
		for _, u := range users {
			if !u.IsDir() || strings.HasPrefix(u.Name(), ".") {
				continue
			}
			files, err := os.ReadDir(filepath.Join(src, u.Name()))
			if err != nil {
				return nil, nil, err
			}
			for _, f := range files {
				if !f.Type().IsRegular() || strings.HasPrefix(f.Name(), ".") {
					continue
				}
				entries = append(entries, importEntry{UserID: u.Name(), Path: filepath.Join(src, u.Name(), f.Name())})
			}
		}
	} else {
		entries, bad, err = readCSV(src)
		if err != nil {
			return nil, nil, err
		}
	}
	var ok []importEntry
	for _, e := range entries {
		if err := faceauth.ValidateUserID(e.UserID); err != nil {
			bad = append(bad, importFailure{e, err})
			continue
		}
		ok = append(ok, e)
	}
	return ok, bad, nil
}

func readCSV(path string) ([]importEntry, []importFailure, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.Comment = '#'
	dir := filepath.Dir(path)
	var entries []importEntry
	var bad []importFailure
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return entries, bad, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if line == 1 && len(rec) == 2 && strings.EqualFold(rec[0], "user_id") && strings.EqualFold(rec[1], "file") {
			continue
		}
		if len(rec) != 2 || rec[1] == "" {
			bad = append(bad, importFailure{importEntry{Path: fmt.Sprintf("%s line %d", path, line)},
				errors.New("want two columns: user_id,file")})
			continue
		}
		p := rec[1]
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		entries = append(entries, importEntry{UserID: rec[0], Path: p})
	}
}

// loadState reads the done entries.
func loadState(path string) (map[string]bool, error) {
	done := map[string]bool{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// A line cut short by a crash has no newline and does not parse as
		// an entry that exists; it is simply sent again.
		if line := sc.Text(); strings.Contains(line, "\t") {
			done[line] = true
		}
	}
	return done, sc.Err()
}

func (imp *importer) run(ctx context.Context, src, statePath string) (*importSummary, error) {
	entries, bad, err := readEntries(src)
	if err != nil {
		return nil, err
	}
	done, err := loadState(statePath)
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	sum := &importSummary{failed: bad}
	var todo []importEntry
	for _, e := range entries {
		if done[e.key()] {
			sum.skipped++
		} else {
			todo = append(todo, e)
		}
	}
	state, err := os.OpenFile(statePath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state file: %w", err)
	}
	defer state.Close()

	var mu sync.Mutex // guards sum, state and the progress line
	bar := newProgressBar(imp.progress, len(todo), "files")
	jobs := make(chan importEntry)
	var wg sync.WaitGroup
	for range imp.parallel {
		wg.Go(func() {
			for e := range jobs {
				err := imp.send(ctx, e)
				mu.Lock()
				if err == nil {
					_, err = fmt.Fprintln(state, e.key())
				}
				if err != nil {
					sum.failed = append(sum.failed, importFailure{e, err})
				} else {
					sum.ok++
				}
				bar.update(sum.ok, len(sum.failed)-len(bad))
				mu.Unlock()
			}
		})
	}
feed:
	for _, e := range todo {
		select {
		case jobs <- e:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	bar.finish()
	if err := state.Sync(); err != nil {
		return nil, fmt.Errorf("write state file: %w", err)
	}
	if ctx.Err() != nil {
		return sum, fmt.Errorf("import interrupted after %d photos; run it again to continue: %w", sum.ok, ctx.Err())
	}
	slices.SortFunc(sum.failed, func(a, b importFailure) int { return strings.Compare(a.entry.key(), b.entry.key()) })
	return sum, nil
}

// send registers one entry, retrying server and network errors.
func (imp *importer) send(ctx context.Context, e importEntry) error {
	for attempt := 0; ; attempt++ {
		err := imp.register(ctx, e)
		if err == nil || !retryable(err) || attempt >= imp.retries || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(time.Duration(attempt+1) * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
