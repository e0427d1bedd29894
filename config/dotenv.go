// Package config reads the settings the binaries share: the .env file in
// the working directory, which fills in variables the environment does not
// set, and the value syntaxes of the settings (sizes, durations, switches).
//
// The .env syntax is the common subset of the tools that use such files:
//
//	# a comment
//	KEY=value              # an inline comment after whitespace
//	export KEY=value       # "export " is allowed and ignored
//	KEY="a \"quoted\" value\nwith escapes"
//	KEY='a literal value, no escapes'
//	KEY=                   # empty
//
// Unquoted values are trimmed. Variable references ($X) are not expanded.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// ParseDotEnv reads KEY=VALUE lines. A malformed line is an error naming
// its line number; a later duplicate key replaces an earlier one.
func ParseDotEnv(r io.Reader) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, raw, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || !validKey(key) {
			return nil, fmt.Errorf("line %d: want KEY=VALUE with a key of letters, digits and '_'", n)
		}
		val, err := parseValue(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n, key, err)
		}
		env[key] = val
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return env, nil
}

func validKey(k string) bool {
	if k == "" || ('0' <= k[0] && k[0] <= '9') {
		return false
	}
	for _, c := range k {
		if c != '_' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func parseValue(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	switch q := s[0]; q {
	case '\'', '"':
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch {
			case c == q:
				if rest := strings.TrimSpace(s[i+1:]); rest != "" && rest[0] != '#' {
					return "", fmt.Errorf("unexpected text after the closing quote")
				}
				return b.String(), nil
			case c == '\\' && q == '"' && i+1 < len(s):
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				default: // \" \\ \$ and anything else: the character itself
					b.WriteByte(s[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", fmt.Errorf("missing closing %c quote (values cannot span lines)", q)
	}
	// An unquoted value ends at " #".
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "\t#"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s), nil
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
