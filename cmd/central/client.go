package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xplore/faceauth/central/httpapi"
	"github.com/xplore/faceauth/internal/api"
)

// clientFlags are the flags of the admin commands that talk to a running
// central service.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "url", Usage: "base URL of the central service", EnvVars: []string{"FACEAUTH_URL"}, Value: "http://127.0.0.1:5000"},
		&cli.StringFlag{Name: "token", Usage: "admin bearer token (from: central token create --role admin)", EnvVars: []string{"FACEAUTH_TOKEN"}},
	}
}

// client calls the central HTTP API.
type client struct {
	base  string
	token string
	hc    *http.Client
}

func newClient(c *cli.Context) (*client, error) {
	base := strings.TrimRight(c.String("url"), "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q is not an http(s) URL", c.String("url"))
	}
	if c.String("token") == "" {
		return nil, errors.New("no token: pass --token or set FACEAUTH_TOKEN (create one with `central token create --role admin`)")
	}
	return &client{base: base, token: c.String("token"), hc: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// apiError is an error answer of the API.
type apiError struct {
	Status int
	Code   string
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d, %s)", e.Msg, e.Status, e.Code) }

// retryable reports errors worth another try: the server was unavailable
// or overloaded, or the connection failed.
func retryable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Code == "contention"
	}
	var ue *url.Error // the request did not get an answer
	return errors.As(err, &ue) && !errors.Is(err, context.Canceled)
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (cl *client) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, cl.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := cl.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb = api.ErrorBody{Error: strings.TrimSpace(string(data)), Code: "http_error"}
			if eb.Error == "" {
				eb.Error = resp.Status
			}
		}
		return &apiError{Status: resp.StatusCode, Code: eb.Code, Msg: eb.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// register sends user_id, an optional name, the sites (a comma-separated
// list, "" every edge) and the image files.
func (cl *client) register(ctx context.Context, userID, name, sites string, files []string) (*httpapi.RegisterResponse, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("user_id", userID)
	if name != "" {
		mw.WriteField("name", name)
	}
	if sites != "" {
		mw.WriteField("sites", sites)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="image"; filename=%q`, filepath.Base(f)))
		h.Set("Content-Type", "application/octet-stream")
		pw, err := mw.CreatePart(h)
		if err != nil {
			return nil, err
		}
		pw.Write(data)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	var out httpapi.RegisterResponse
	if err := cl.do(ctx, http.MethodPost, "/api/register", mw.FormDataContentType(), buf.Bytes(), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// setSites sets a user's sites (a comma-separated list, "" every edge).
func (cl *client) setSites(ctx context.Context, userID, sites string) (*httpapi.SitesResponse, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("sites", sites)
	if err := mw.Close(); err != nil {
		return nil, err
	}
	var out httpapi.SitesResponse
	err := cl.do(ctx, http.MethodPut, "/api/users/"+url.PathEscape(userID)+"/sites", mw.FormDataContentType(), buf.Bytes(), &out)
	return &out, err
}

// listUsers fetches a page of users whose id or name contains search ("" all)
// and that are in site ("" any).
func (cl *client) listUsers(ctx context.Context, search, site, after string, limit int) (*httpapi.ListResponse, error) {
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	if search != "" {
		q.Set("q", search)
	}
	if site != "" {
		q.Set("site", site)
	}
	if after != "" {
		q.Set("after", after)
	}
	var out httpapi.ListResponse
	err := cl.do(ctx, http.MethodGet, "/api/users?"+q.Encode(), "", nil, &out)
	return &out, err
}

func (cl *client) getUser(ctx context.Context, id string) (*httpapi.UserDetail, error) {
	var out httpapi.UserDetail
	err := cl.do(ctx, http.MethodGet, "/api/users/"+url.PathEscape(id), "", nil, &out)
	return &out, err
}

func (cl *client) deleteUser(ctx context.Context, id string) (*httpapi.DeleteResponse, error) {
	var out httpapi.DeleteResponse
	err := cl.do(ctx, http.MethodDelete, "/api/users/"+url.PathEscape(id), "", nil, &out)
	return &out, err
}

// revoke revokes the tokens of subject issued up to now.
func (cl *client) revoke(ctx context.Context, subject, reason string) (*httpapi.RevocationInfo, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("subject", subject)
	if reason != "" {
		mw.WriteField("reason", reason)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	var out httpapi.RevocationInfo
	if err := cl.do(ctx, http.MethodPost, "/api/revocations", mw.FormDataContentType(), buf.Bytes(), &out); err != nil {
		return nil, err
	}
	return &out, nil
}
