package versitygw

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

func TestStart(t *testing.T) {
	s := Start(t, Options{Buckets: []string{"alpha", "beta"}})
	ctx := t.Context()
	out, err := s.client.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range out.Buckets {
		names = append(names, aws.ToString(b.Name))
	}
	if len(names) != 2 || names[0] != "alpha" || names[1] != "beta" {
		t.Fatalf("buckets = %q, want alpha and beta", names)
	}
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("alpha"), Key: aws.String("a/b"), Body: bytes.NewReader([]byte("hi"))}); err != nil {
		t.Fatal(err)
	}
	// The posix backend keeps objects as plain files.
	if b, err := os.ReadFile(filepath.Join(s.Dir, "alpha", "a", "b")); err != nil || string(b) != "hi" {
		t.Fatalf("object file: %q, %v", b, err)
	}
	// Unsigned requests are refused: the gateway checks signatures.
	resp, err := http.Get(s.Endpoint + "/alpha/a/b")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unsigned GET: %s %s", resp.Status, body)
	}
}

// The gateway implements the conditional writes the S3 store relies on.
func TestConditionalPut(t *testing.T) {
	s := Start(t, Options{Buckets: []string{"cond"}})
	ctx := t.Context()
	put := func(body string, ifMatch, ifNoneMatch *string) (*s3.PutObjectOutput, error) {
		return s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("cond"), Key: aws.String("k"),
			Body: bytes.NewReader([]byte(body)), IfMatch: ifMatch, IfNoneMatch: ifNoneMatch})
	}
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return ""
	}
	first, err := put("1", nil, aws.String("*"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := put("2", nil, aws.String("*")); code(err) != "PreconditionFailed" {
		t.Fatalf("If-None-Match on an existing object: %v", err)
	}
	if _, err := put("2", aws.String(`"0123"`), nil); code(err) != "PreconditionFailed" {
		t.Fatalf("If-Match with a wrong ETag: %v", err)
	}
	if _, err := put("2", first.ETag, nil); err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("cond"), Key: aws.String("missing"),
		Body: bytes.NewReader(nil), IfMatch: first.ETag}); code(err) != "NoSuchKey" {
		t.Fatalf("If-Match on a missing object: %v (code %q)", err, code(err))
	}
}

func TestBinaryMissing(t *testing.T) {
	if os.Getenv("VERSITYGW_TEST_CHILD") == "" {
		t.Skip("run as a child of TestMissingBinaryInCI")
	}
	Binary(t)
}

// A missing binary skips on a developer machine and fails in CI.
func TestMissingBinaryInCI(t *testing.T) {
	for _, tt := range []struct {
		ci       bool
		wantFail bool
		want     string
	}{
		{ci: false, wantFail: false, want: "--- SKIP: TestBinaryMissing"},
		{ci: true, wantFail: true, want: "--- FAIL: TestBinaryMissing"},
	} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBinaryMissing$", "-test.v", "-test.count=1")
		env := filterEnv(os.Environ(), "CI", "VERSITYGW")
		env = append(env, "VERSITYGW_TEST_CHILD=1", "VERSITYGW="+filepath.Join(t.TempDir(), "nothing"))
		if tt.ci {
			env = append(env, "CI=true")
		}
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if (err != nil) != tt.wantFail {
			t.Errorf("CI=%v: err = %v, want failure %v\n%s", tt.ci, err, tt.wantFail, out)
		}
		if !bytes.Contains(out, []byte(tt.want)) || !bytes.Contains(out, []byte(BuildCommand)) {
			t.Errorf("CI=%v: output lacks %q or the build command:\n%s", tt.ci, tt.want, out)
		}
	}
}
