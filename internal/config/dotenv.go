// Package config reads the settings the binaries share: the .env file in
// the working directory, which fills in variables the environment does not
// set, and the value syntaxes of the settings (sizes, durations, switches).
//
// The .env file is read with github.com/joho/godotenv, whose syntax is the
// one python-dotenv (the original service's load_dotenv) reads:
//
//	# a comment
//	KEY=value              # an inline comment after whitespace
//	export KEY=value       # "export " is allowed and ignored
//	KEY="a \"quoted\" value\nwith escapes"
//	KEY='a literal value, no escapes'
//	KEY=                   # empty
//	KEY=${OTHER}/x         # OTHER as set by an earlier line of the file
//
// As with load_dotenv (override=False), a variable the environment
// already sets keeps the environment's value.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/joho/godotenv"
)

// ParseDotEnv reads KEY=VALUE lines; a later duplicate key replaces an
// earlier one. A malformed line is an error that quotes it.
func ParseDotEnv(r io.Reader) (map[string]string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	// A BOM left by a Windows editor is not part of the first key.
	return godotenv.UnmarshalBytes(bytes.TrimPrefix(b, []byte("\ufeff")))
}

// LoadDotEnv reads the .env file at path. A missing file gives an empty
// map and no error.
func LoadDotEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env, err := ParseDotEnv(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return env, nil
}

// ApplyDotEnv sets each variable of the .env file at path that the
// environment does not already define, so the environment wins. It uses
// lookup and set (os.LookupEnv and os.Setenv in main) and returns the keys
// it set.
func ApplyDotEnv(path string, lookup func(string) (string, bool), set func(k, v string) error) ([]string, error) {
	env, err := LoadDotEnv(path)
	if err != nil {
		return nil, err
	}
	var applied []string
	for k, v := range env {
		if _, ok := lookup(k); ok {
			continue
		}
		if err := set(k, v); err != nil {
			return applied, fmt.Errorf("set %s: %w", k, err)
		}
		applied = append(applied, k)
	}
	return applied, nil
}
