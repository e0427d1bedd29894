package pb

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/xplore/faceauth"
)

// Streams and subjects. docs/sync.md describes each one; the names are part
// of the wire contract between central and the edges and of the NATS
// permissions an operator writes, so they never change.
const (
	// UsersStream holds the latest change of every user, one message per
	// user subject (central erases every replaced one): an upsert, or a
	// tombstone for an erased user. A new edge bootstraps from it alone.
	UsersStream = "FACEAUTH_USERS"
	// UsersSubjects is the users stream's subject filter.
	UsersSubjects = "faceauth.users.>"
	// UsersPrefix is what UserSubject puts before the encoded id and the
	// scope.
	UsersPrefix = "faceauth.users."

	// ConfigStream holds configuration that edges need offline, one
	// message per subject: the token public key and the token revocations.
	ConfigStream = "FACEAUTH_CONFIG"
	// ConfigSubjects is the config stream's subject filter.
	ConfigSubjects = "faceauth.config.>"
	// TokenKeySubject carries the pb.TokenKey edges check tokens with.
	TokenKeySubject = "faceauth.config.tokenkey"
	// RevocationsSubject carries the pb.TokenRevocations: the token
	// subjects edges refuse.
	RevocationsSubject = "faceauth.config.revocations"

	// EdgesStream keeps each edge's last heartbeat (MaxMsgsPerSubject=1),
	// so that central knows every edge ever seen after its own restart.
	// Edges publish heartbeats with core NATS; the stream captures them.
	EdgesStream = "FACEAUTH_EDGES"
	// EdgeStatusSubjects matches every edge's heartbeat subject.
	EdgeStatusSubjects = "faceauth.edges.*.status"

	// ReceiptsStream holds delete receipts, one message per edge and
	// erased user, so that central reads receipts sent while it was down.
	ReceiptsStream = "FACEAUTH_RECEIPTS"
	// ReceiptsSubjects is the receipts stream's subject filter.
	ReceiptsSubjects = "faceauth.receipts.>"
)

// Message headers on the users stream.
const (
	// RevisionHeader holds the change's revision in decimal, so that the
	// stream can be compared with the registry without decoding payloads.
	RevisionHeader = "Faceauth-Revision"
	// OpHeader is "upsert" or "delete".
	OpHeader = "Faceauth-Op"
	// UserHeader holds the user id of a change, so that central's
	// headers-only scan knows whose message it is without the payload
	// (the subject has only a keyed hash of the id, see UserToken).
	// Headers reach only the message's readers (central and the edges of
	// its scope), never stream info.
	UserHeader = "Faceauth-User"
)

// idEncoding turns a user id into one subject token. User ids may contain
// '.', which separates NATS tokens, so the id cannot be used as it is;
// unpadded base64url uses only letters, digits, '-' and '_', all of which
// are valid in a token, and maps every id to exactly one token.
var idEncoding = base64.RawURLEncoding

// NoSite is the scope token of the users of no site (every edge's): the
// last token of their subjects, as a site is for a site's users. It begins
// with '_', which ValidateSite refuses, so no site can take it.
const NoSite = "_all"

// UserTokenLen is the length of a user token: 16 bytes in unpadded
// base64url.
const UserTokenLen = 22

// SubjectKeyInfo is the HKDF label the subject key is derived under from
// the feed key's seed (NewSigner): central replicas share SECRET_KEY, so
// they share the feed key and with it the subject key.
const SubjectKeyInfo = "xplore-faceauth user subject key v1"

// UserToken returns the token that stands for user id in users-stream
// subjects: the first 16 bytes of HMAC-SHA256(key, id) in unpadded
// base64url (UserTokenLen characters, all valid in a subject token). The
// id itself is not in the subject because any edge key may list the
// stream's subjects (STREAM.INFO with a subjects filter, which NATS cannot
// restrict by permission), and user ids are often e-mail addresses; the
// token is stable per key and id, so the stream still keeps one state
// per user and scope. Edges never need the key: the id comes from the
// signed payload, and the signature covers the subject.
func UserToken(key []byte, id string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	return idEncoding.EncodeToString(mac.Sum(nil)[:16])
}

// UserSubject returns the users-stream subject of user id in site under
// the subject key: "faceauth.users.<user token>.<scope>", where the token
// is UserToken and the scope is the site, or NoSite for a user of no site
// (""). The scope is always the last token, so an edge's NATS permissions
// can name the scopes it may read (EdgePermissions) and a consumer filter
// cannot reach past them: a '>' in the token position is not a valid
// filter, and the scope is matched literally.
func UserSubject(key []byte, id, site string) string {
	return UsersPrefix + UserToken(key, id) + "." + Scope(site)
}

// Scope returns the scope token of the users of site: the site, or NoSite
// for "". A scope token passes through unchanged.
func Scope(site string) string {
	if site == "" {
		return NoSite
	}
	return site
}

// EdgeScopes are the scopes an edge of sites reads: NoSite, then each of
// its sites. The edge runs one consumer per scope, on ScopeFilter.
func EdgeScopes(sites []string) []string {
	return append([]string{NoSite}, sites...)
}

// EdgeFilterSubjects are the users-stream subjects an edge of sites reads,
// one per scope of EdgeScopes. Each is a single-filter consumer's filter,
// which the consumer's create subject carries and EdgePermissions names.
func EdgeFilterSubjects(sites []string) []string {
	var out []string
	for _, s := range EdgeScopes(sites) {
		out = append(out, ScopeFilter(s))
	}
	return out
}

// ScopeFilter is the users-stream filter of one scope: every user of a
// site (or scope token), or of no site for "".
func ScopeFilter(site string) string {
	return UsersPrefix + "*." + Scope(site)
}

// ParseUserSubject returns the user token and the site ("" for NoSite)
// of a subject of UserSubject's form. Any other form is refused, including
// the scopeless "faceauth.users.<id token>" of releases before scopes and
// a token of another length (the base64 id of releases before user tokens
// were keyed hashes), which central's reconciliation replaces (see package
// publish).
func ParseUserSubject(subject string) (token, site string, err error) {
	rest, ok := strings.CutPrefix(subject, UsersPrefix)
	tok, scope, scoped := strings.Cut(rest, ".")
	if !ok || len(tok) != UserTokenLen || !scoped || (scope != NoSite && ValidateSite(scope) != nil) {
		return "", "", fmt.Errorf("feed: %q is not a user subject", subject)
	}
	if b, err := idEncoding.DecodeString(tok); err != nil || len(b) != 16 {
		return "", "", fmt.Errorf("feed: %q is not a user subject", subject)
	}
	if scope == NoSite {
		scope = ""
	}
	return tok, scope, nil
}

// IsScopelessUserSubject reports whether subject has the form users'
// subjects had before scopes: "faceauth.users.<id token>", with no scope
// token. Central erases such messages and republishes their users.
func IsScopelessUserSubject(subject string) bool {
	tok, ok := strings.CutPrefix(subject, UsersPrefix)
	if !ok || tok == "" || strings.Contains(tok, ".") {
		return false
	}
	_, err := idEncoding.DecodeString(tok)
	return err == nil
}

// ValidateSite reports whether s may name a site: the rules of edge ids
// (1 to 64 ASCII letters, digits, '-' and '_'), since it is a subject
// token, and not beginning with '_', which is kept for reserved scopes
// such as NoSite.
func ValidateSite(s string) error {
	if s == "" || ValidateEdgeID(s) != nil {
		return faceauth.E(faceauth.KindInvalid, "invalid_site",
			"The site %q must be 1 to %d letters, digits, '-' or '_'.", s, MaxEdgeIDLen)
	}
	if strings.HasPrefix(s, "_") {
		return faceauth.E(faceauth.KindInvalid, "invalid_site",
			"The site %q may not begin with '_': such names are reserved (%s names the users of no site).", s, NoSite)
	}
	return nil
}

// ParseSites splits a comma-separated list of sites (EDGE_SITES), checks
// each and returns them sorted without duplicates.
func ParseSites(list string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if err := ValidateSite(s); err != nil {
			return nil, err
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out, nil
}

// InScope reports whether an edge serving sites receives the users of
// site ("" is every edge's).
func InScope(sites []string, site string) bool {
	return site == "" || slices.Contains(sites, site)
}

// MaxEdgeIDLen is the longest edge id accepted.
const MaxEdgeIDLen = 64

// ValidateEdgeID reports whether id may name an edge: 1 to 64 ASCII
// letters, digits, '-' and '_'. Edge ids appear as they are in subjects (so
// that `nats sub` output and permissions stay readable), which rules out
// '.', '*', '>' and spaces.
func ValidateEdgeID(id string) error {
	if id == "" {
		return faceauth.E(faceauth.KindInvalid, "invalid_edge_id", "The edge id is required.")
	}
	if len(id) > MaxEdgeIDLen {
		return faceauth.E(faceauth.KindInvalid, "invalid_edge_id", "The edge id is longer than %d characters.", MaxEdgeIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return faceauth.E(faceauth.KindInvalid, "invalid_edge_id", "The edge id %q may contain only letters, digits, '-' and '_'.", id)
		}
	}
	return nil
}

// EdgeStatusSubject returns the subject an edge publishes its heartbeat on:
// "faceauth.edges.<edge-id>.status".
func EdgeStatusSubject(edgeID string) string {
	return "faceauth.edges." + edgeID + ".status"
}

// edgeIDFromStatusSubject returns the edge id of a heartbeat subject.
func edgeIDFromStatusSubject(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, "faceauth.edges.")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, ".status")
	if !ok || ValidateEdgeID(id) != nil {
		return "", false
	}
	return id, true
}

// ReceiptSubject returns the subject of an edge's receipt for a user:
// "faceauth.receipts.<edge-id>.<id token>", the user id in unpadded
// base64url. Only central may read receipts (not even stream info is open
// to edges), so the id need not be hashed as in UserSubject. One subject per edge and user keeps the stream bounded and
// makes a repeated receipt replace the earlier one.
func ReceiptSubject(edgeID, userID string) string {
	return "faceauth.receipts." + edgeID + "." + idEncoding.EncodeToString([]byte(userID))
}

// LockoutBucket is the JetStream key-value bucket of the verify lockout
// states. Central replicas share it, so a client cannot multiply its
// attempts by the number of replicas, and it is on disk, so a restart does
// not unlock anyone. Its keys are hashes of a user id and a client, its
// values counts and times: no names, no embeddings. Edges are not allowed
// to read it.
const LockoutBucket = "FACEAUTH_LOCKOUTS"

// Permissions lists the subjects a NATS user may publish and subscribe
// to, in the form both nats-server's configuration and natsd.User take.
type Permissions struct {
	Publish   []string
	Subscribe []string
}

// CentralPermissions are what central needs: manage the feed's streams,
// publish user data and the token key, read heartbeats and receipts, and
// keep the verify lockout in its key-value bucket.
func CentralPermissions() Permissions {
	return Permissions{
		Publish: []string{
			"faceauth.users.>",
			"faceauth.config.>",
			"$JS.API.>",
			"$KV." + LockoutBucket + ".>",
		},
		Subscribe: []string{
			"faceauth.edges.*.status",
			"_INBOX.>",
		},
	}
}

// EdgePermissions are what the edge edgeID, serving sites, needs and no
// more: read the users of no site and of its sites, and the config stream,
// through its own consumers; publish its own heartbeat and receipts. It
// cannot publish user data, change streams, speak for another edge, or
// read another site's users.
//
// NATS checks a JetStream request's subject, not its body, so the users
// stream is reachable only through consumers whose create subject names
// their one filter, "$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>"
// (the server refuses a body whose filter differs), and the edge may create
// one only on the filter of each of its scopes (ScopeFilter). The scope is
// the subject's last token, matched literally; a '*' in the permission's id
// position would match a literal '>' there, but "faceauth.users.>.<scope>"
// is no valid filter. A multi-filter consumer (created without a filter in
// its subject), an unfiltered one, and the users stream's direct and
// message gets are refused.
func EdgePermissions(edgeID string, sites []string) Permissions {
	pub := []string{
		EdgeStatusSubject(edgeID),
		"faceauth.receipts." + edgeID + ".>",
		"$JS.API.INFO",
		"$JS.API.STREAM.INFO." + UsersStream,
		"$JS.API.STREAM.INFO." + ConfigStream,
	}
	for _, s := range EdgeScopes(sites) {
		pub = append(pub, "$JS.API.CONSUMER.CREATE."+UsersStream+".*."+ScopeFilter(s))
	}
	pub = append(pub,
		"$JS.API.CONSUMER.DELETE."+UsersStream+".>",
		"$JS.API.CONSUMER.INFO."+UsersStream+".>",
		"$JS.API.CONSUMER.MSG.NEXT."+UsersStream+".>",
		"$JS.API.DIRECT.GET."+ConfigStream+".>",
		"$JS.API.STREAM.MSG.GET."+ConfigStream,
	)
	return Permissions{
		Publish: pub,
		// Replies (JetStream acks, consumer deliveries) come to the edge's
		// own inbox prefix, so an edge cannot listen to other clients'.
		Subscribe: []string{
			EdgeInboxPrefix(edgeID) + ".>",
		},
	}
}

// EdgeInboxPrefix is the reply-subject prefix the edge edgeID must connect
// with (natsconn.ConnectOptions.InboxPrefix) under EdgePermissions.
func EdgeInboxPrefix(edgeID string) string {
	return "_INBOX_" + edgeID
}

// ParseReceiptSubject returns the edge and user ids of a receipt subject.
func ParseReceiptSubject(subject string) (edgeID, userID string, ok bool) {
	rest, ok := strings.CutPrefix(subject, "faceauth.receipts.")
	if !ok {
		return "", "", false
	}
	edgeID, tok, ok := strings.Cut(rest, ".")
	if !ok || ValidateEdgeID(edgeID) != nil {
		return "", "", false
	}
	b, err := idEncoding.DecodeString(tok)
	if err != nil || len(b) == 0 {
		return "", "", false
	}
	return edgeID, string(b), true
}
