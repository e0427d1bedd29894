package pb

import (
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/xplore/faceauth"
)

// A user belongs to a set of sites (UserRecord.sites): the edges serving
// one of them receive it; an empty set sends it to every edge. Each site
// is a scope of the user's messages, one subject per scope; a user of no
// site has the single scope "" (docs/sync.md, Sites).

// MaxUserSites is the most sites one user may be in. Each is a message
// of every change of the user, so the bound keeps a change's cost on the
// feed bounded; a user wanted everywhere has no site instead.
const MaxUserSites = 100

// CheckSites checks a user's set of sites, each by ValidateSite and none
// twice, at most MaxUserSites, and returns it sorted (a new slice; empty:
// every edge).
func CheckSites(sites []string) ([]string, error) {
	if len(sites) > MaxUserSites {
		return nil, faceauth.E(faceauth.KindInvalid, "too_many_sites",
			"A user may be in at most %d sites (%d given); one wanted at every edge has no site.", MaxUserSites, len(sites))
	}
	out := make([]string, 0, len(sites))
	for _, s := range sites {
		if err := ValidateSite(s); err != nil {
			return nil, err
		}
		if slices.Contains(out, s) {
			return nil, faceauth.E(faceauth.KindInvalid, "duplicate_site", "The site %q is listed more than once.", s)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

// ParseUserSites parses a user's sites written as a comma-separated list
// (the API's sites field, the CLI), spaces around each allowed: "" is no
// site (every edge); an empty item, an invalid site or one listed twice is
// an error.
func ParseUserSites(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	parts := strings.Split(list, ",")
	for i, s := range parts {
		parts[i] = strings.TrimSpace(s)
	}
	return CheckSites(parts)
}

// Scopes are the scopes a user of sites has messages on: its sites, or
// the single scope "" when it has none.
func Scopes(sites []string) []string {
	if len(sites) == 0 {
		return []string{""}
	}
	return sites
}

// ServesAny reports whether an edge serving edgeSites receives a user of
// userSites: the user has no site, or one of them is the edge's.
func ServesAny(edgeSites, userSites []string) bool {
	if len(userSites) == 0 {
		return true
	}
	for _, s := range userSites {
		if slices.Contains(edgeSites, s) {
			return true
		}
	}
	return false
}

// KeptBy reports whether an edge serving sites keeps the user despite this
// tombstone: the user was moved, not erased, and remains in a scope the
// edge serves, whose own message carries it. Any other edge erases it.
func (d *UserDelete) KeptBy(sites []string) bool {
	return d.GetMoved() && ServesAny(sites, d.GetRemainingSites())
}

// Owed reports whether an edge serving sites owes a receipt for d: it held
// the user (it serves one of the scopes the user left) and does not keep
// it (KeptBy).
func (d *Deletion) Owed(sites []string) bool {
	held := false
	for _, s := range Scopes(d.GetSites()) {
		held = held || InScope(sites, s)
	}
	return held && !(d.GetMoved() && ServesAny(sites, d.GetRemainingSites()))
}

// PartsHeader holds UserChange.parts (how many messages central put on
// the stream for the revision) when it is above 1, so that reconciliation,
// which reads headers only, can tell a revision published in part.
const PartsHeader = "Faceauth-Parts"

// HeaderParts returns the PartsHeader of a users-stream message: 1 when
// it is absent or malformed.
func HeaderParts(h nats.Header) int {
	n, err := strconv.Atoi(h.Get(PartsHeader))
	if err != nil || n < 1 {
		return 1
	}
	return n
}
