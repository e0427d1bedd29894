package natstest

import (
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	pb "github.com/xplore/faceauth/proto"
)

// ReadAttempt is one request a NATS client may try to read users-stream
// messages with.
type ReadAttempt struct {
	What    string // what it tries, for the test's message
	Subject string
	Body    string
}

// SiteReadAttempts are the ways a client holding an edge credential of site
// own might try to read the message on subject, a user of another site:
// consumers filtered on that site, on every site, with a '>' or '*' where
// the permission has a literal, with a subject and a body that disagree,
// with several filters or none, durable ones, and the stream's direct and
// message gets. An edge's permissions (pb.EdgePermissions) must refuse
// every one of them.
func SiteReadAttempts(own, subject string) []ReadAttempt {
	_, other, _ := pb.ParseUserSubject(subject)
	create := "$JS.API.CONSUMER.CREATE." + pb.UsersStream + "."
	cfg := func(name string, filter ...string) string {
		c := map[string]any{"name": name, "deliver_policy": "all", "ack_policy": "none", "inactive_threshold": int64(time.Minute)}
		switch len(filter) {
		case 0:
		case 1:
			c["filter_subject"] = filter[0]
		default:
			c["filter_subjects"] = filter
		}
		b, _ := json.Marshal(map[string]any{"stream_name": pb.UsersStream, "config": c})
		return string(b)
	}
	durable := func(name, filter string) string {
		b, _ := json.Marshal(map[string]any{"stream_name": pb.UsersStream, "config": map[string]any{
			"durable_name": name, "filter_subject": filter, "deliver_policy": "all", "ack_policy": "none"}})
		return string(b)
	}
	otherF, ownF := pb.ScopeFilter(other), pb.ScopeFilter(own)
	return []ReadAttempt{
		{"a consumer filtered on the other site", create + "evil1." + otherF, cfg("evil1", otherF)},
		{"a consumer filtered on the user's subject", create + "evil2." + subject, cfg("evil2", subject)},
		{"a consumer on every user", create + "evil3." + pb.UsersSubjects, cfg("evil3", pb.UsersSubjects)},
		{"a consumer on every scope", create + "evil4.faceauth.users.*.>", cfg("evil4", "faceauth.users.*.>")},
		{"a consumer on every scope, '*' for the scope", create + "evil5.faceauth.users.*.*", cfg("evil5", "faceauth.users.*.*")},
		{"a '>' where the id is, own scope last", create + "evil6.faceauth.users.>." + pb.Scope(own), cfg("evil6", "faceauth.users.>."+pb.Scope(own))},
		{"its own filter in the subject, the other site's in the body", create + "evil7." + ownF, cfg("evil7", otherF)},
		{"its own filter in the subject, every user in the body", create + "evil8." + ownF, cfg("evil8", pb.UsersSubjects)},
		{"its own filter in the subject, both sites' in the body", create + "evil9." + ownF, cfg("evil9", ownF, otherF)},
		{"a multi-filter consumer", create + "evil10", cfg("evil10", ownF, otherF)},
		{"an unfiltered consumer", create + "evil11", cfg("evil11")},
		{"an ephemeral consumer the old way", "$JS.API.CONSUMER.CREATE." + pb.UsersStream, cfg("", otherF)},
		{"a durable consumer", "$JS.API.CONSUMER.DURABLE.CREATE." + pb.UsersStream + ".evil12", durable("evil12", otherF)},
		{"a direct get by subject", "$JS.API.DIRECT.GET." + pb.UsersStream + "." + subject, ""},
		{"a direct get of the last message of the subject", "$JS.API.DIRECT.GET." + pb.UsersStream, `{"last_by_subj":"` + subject + `"}`},
		{"a direct get by sequence", "$JS.API.DIRECT.GET." + pb.UsersStream, `{"seq":1}`},
		{"a message get of the subject", "$JS.API.STREAM.MSG.GET." + pb.UsersStream, `{"last_by_subj":"` + subject + `"}`},
	}
}

// Allowed sends each attempt on nc at once and returns those the server
// answered without an error: what the client was allowed to do. A request
// its permissions refuse gets no answer (the server reports a permissions
// violation to the client instead), so each waits up to timeout.
func Allowed(nc *nats.Conn, attempts []ReadAttempt, timeout time.Duration) []ReadAttempt {
	var mu sync.Mutex
	var ok []ReadAttempt
	var wg sync.WaitGroup
	for _, a := range attempts {
		wg.Go(func() {
			m, err := nc.Request(a.Subject, []byte(a.Body), timeout)
			if err != nil || m.Header.Get("Status") != "" || strings.Contains(string(m.Data), `"error"`) {
				return
			}
			mu.Lock()
			ok = append(ok, a)
			mu.Unlock()
		})
	}
	wg.Wait()
	return ok
}
