package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/store/s3store"
	"github.com/xplore/faceauth/central/store/storetest"
	"github.com/xplore/faceauth/internal/versitygw"
)

// bucketSeq makes bucket names unique within the test binary.
var bucketSeq atomic.Int64

func newBucket(t *testing.T, gw *versitygw.Server) string {
	t.Helper()
	name := fmt.Sprintf("faceauth-test-%d", bucketSeq.Add(1))
	gw.CreateBucket(t, name)
	return name
}

// config returns a Config for bucket on gw with the gateway's credentials.
func config(gw *versitygw.Server, bucket string) s3store.Config {
	return s3store.Config{
		Bucket:          bucket,
		Region:          gw.Region,
		Endpoint:        gw.Endpoint,
		AccessKeyID:     gw.AccessKey,
		SecretAccessKey: gw.SecretKey,
	}
}

func newStore(t *testing.T, cfg s3store.Config) *s3store.Store {
	t.Helper()
	s, err := s3store.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawClient talks to the gateway directly, beside the store.
func rawClient(gw *versitygw.Server) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(gw.Endpoint),
		Region:       gw.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(gw.AccessKey, gw.SecretKey, ""),
	})
}

func TestConformance(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{})
	storetest.Run(t, func(t *testing.T) faceauth.Store {
		return newStore(t, config(gw, newBucket(t, gw)))
	})
}

// The suite passes on a prefix of a bucket that holds other objects around
// the prefix, so the store sees and touches only its own keys.
func TestConformancePrefix(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{})
	raw := rawClient(gw)
	storetest.Run(t, func(t *testing.T) faceauth.Store {
		bucket := newBucket(t, gw)
		noise := []string{"records/alice.pb", "tenant/b/records/alice.pb", "tenant/a0/records/alice.pb",
			"tenant/aa", "tenant/a.pb", "tenant/b/meta/revision"}
		for _, k := range noise {
			if _, err := raw.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k),
				Body: bytes.NewReader([]byte("noise"))}); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			for _, k := range noise {
				out, err := raw.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
				if err != nil {
					t.Errorf("object %s outside the prefix: %v", k, err)
					continue
				}
				out.Body.Close()
			}
		})
		cfg := config(gw, bucket)
		cfg.Prefix = "tenant/a" // the store adds the '/'
		return newStore(t, cfg)
	})
}

func TestPrefixIsolation(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{})
	bucket := newBucket(t, gw)
	ctx := t.Context()
	stores := map[string]*s3store.Store{}
	for _, p := range []string{"site1/", "site2"} {
		cfg := config(gw, bucket)
		cfg.Prefix = p
		stores[p] = newStore(t, cfg)
	}
	for p, s := range stores {
		if _, err := s.Put(ctx, "records/alice.pb", []byte(p), faceauth.Cond{IfNoneMatch: true}); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	for p, s := range stores {
		data, _, err := s.Get(ctx, "records/alice.pb")
		if err != nil || string(data) != p {
			t.Errorf("%s: Get = %q, %v; want %q", p, data, err, p)
		}
		keys, err := s.List(ctx, "", "", 10)
		if err != nil || !slices.Equal(keys, []string{"records/alice.pb"}) {
			t.Errorf("%s: List = %q, %v", p, keys, err)
		}
	}
	if err := stores["site1/"].Delete(ctx, "records/alice.pb"); err != nil {
		t.Fatal(err)
	}
	if data, _, err := stores["site2"].Get(ctx, "records/alice.pb"); err != nil || string(data) != "site2" {
		t.Errorf("site2 after deleting in site1: %q, %v", data, err)
	}
	out, err := rawClient(gw).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, o := range out.Contents {
		all = append(all, aws.ToString(o.Key))
	}
	if !slices.Equal(all, []string{"site2/records/alice.pb"}) {
		t.Errorf("bucket holds %q, want only site2/records/alice.pb", all)
	}
}

// wantError checks that err is an *faceauth.Error with the kind, code and
// exact sentence.
func wantError(t *testing.T, what string, err error, kind faceauth.Kind, code, msg string) {
	t.Helper()
	var fe *faceauth.Error
	if !errors.As(err, &fe) {
		t.Errorf("%s: err = %v, want %s", what, err, code)
		return
	}
	if fe.Kind != kind || fe.Code != code || fe.Msg != msg {
		t.Errorf("%s: got %v/%s %q\nwant %v/%s %q\n(full error: %v)", what, fe.Kind, fe.Code, fe.Msg, kind, code, msg, err)
	}
}

// everyOp runs each store operation and returns its error by name.
func everyOp(ctx context.Context, s faceauth.Store) map[string]error {
	errs := map[string]error{}
	_, _, errs["Get"] = s.Get(ctx, "records/alice.pb")
	_, errs["Put"] = s.Put(ctx, "records/alice.pb", []byte("x"), faceauth.Cond{})
	_, errs["PutIfNoneMatch"] = s.Put(ctx, "records/alice.pb", []byte("x"), faceauth.Cond{IfNoneMatch: true})
	errs["Delete"] = s.Delete(ctx, "records/alice.pb")
	_, errs["List"] = s.List(ctx, "records/", "", 10)
	errs["Ping"] = s.Ping(ctx)
	return errs
}

// A wrong secret fails the SigV4 signature check, a wrong key id is
// unknown: both read as access denied, with the fix.
func TestAccessDenied(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{})
	bucket := newBucket(t, gw)
	for _, tt := range []struct{ name, id, secret string }{
		{"wrong secret", gw.AccessKey, gw.SecretKey + "x"},
		{"unknown key id", "AKIAUNKNOWN", gw.SecretKey},
	} {
		cfg := config(gw, bucket)
		cfg.AccessKeyID, cfg.SecretAccessKey = tt.id, tt.secret
		s := newStore(t, cfg)
		for op, err := range everyOp(t.Context(), s) {
			wantError(t, tt.name+": "+op, err, faceauth.KindUnavailable, s3store.CodeAccessDenied, s3store.MsgAccessDenied(bucket))
		}
	}
	// The right credentials work on the same gateway.
	if err := newStore(t, config(gw, bucket)).Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestActionDenied gives an account a bucket policy with one of the four
// actions the store needs left out: the operations needing it fail with
// the sentence naming that action, the others work.
func TestActionDenied(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{IAM: true})
	all := []string{"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
	needs := map[string]string{
		"Get": "s3:GetObject", "Put": "s3:PutObject", "PutIfNoneMatch": "s3:PutObject",
		"Delete": "s3:DeleteObject", "List": "s3:ListBucket", "Ping": "s3:ListBucket",
	}
	for i, missing := range all {
		t.Run(missing, func(t *testing.T) {
			bucket := newBucket(t, gw)
			access := fmt.Sprintf("central%d", i)
			gw.CreateUser(t, access, "central-secret", "user")
			var stmts []string
			for _, a := range all {
				if a == missing {
					continue
				}
				res := "arn:aws:s3:::" + bucket
				if a != "s3:ListBucket" {
					res += "/*"
				}
				stmts = append(stmts, fmt.Sprintf(`{"Effect":"Allow","Principal":{"AWS":[%q]},"Action":[%q],"Resource":%q}`, access, a, res))
			}
			gw.PutBucketPolicy(t, bucket, `{"Version":"2012-10-17","Statement":[`+strings.Join(stmts, ",")+`]}`)
			// The object exists, so a Get is refused by the policy and
			// not for a missing key.
			if _, err := newStore(t, config(gw, bucket)).Put(t.Context(), "records/alice.pb", []byte("x"), faceauth.Cond{}); err != nil {
				t.Fatal(err)
			}
			cfg := config(gw, bucket)
			cfg.AccessKeyID, cfg.SecretAccessKey = access, "central-secret"
			for op, err := range everyOp(t.Context(), newStore(t, cfg)) {
				if needs[op] != missing {
					if err != nil && !errors.Is(err, faceauth.ErrPrecondition) {
						t.Errorf("%s needs only %s, which is allowed: %v", op, needs[op], err)
					}
					continue
				}
				wantError(t, op, err, faceauth.KindUnavailable, s3store.CodeAccessDenied, s3store.MsgActionDenied(bucket, missing))
			}
		})
	}
}

func TestMissingBucket(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{})
	s := newStore(t, config(gw, "no-such-bucket"))
	for op, err := range everyOp(t.Context(), s) {
		wantError(t, op, err, faceauth.KindUnavailable, s3store.CodeNoBucket, s3store.MsgNoBucket("no-such-bucket", gw.Region))
	}
	if got := s3store.MsgNoBucket("b", "eu-west-1"); got != `S3 bucket "b" does not exist in region eu-west-1. Create it or fix S3_BUCKET/AWS_REGION.` {
		t.Errorf("MsgNoBucket = %q", got)
	}
}

func TestNotConfigured(t *testing.T) {
	_, err := s3store.New(t.Context(), s3store.Config{Region: "us-east-1"})
	wantError(t, "New", err, faceauth.KindUnavailable, s3store.CodeNotConfigured,
		"S3 is not configured. Set S3_BUCKET (and AWS credentials) in environment.")
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []s3store.Config{
		{Bucket: "b", Region: "r", SSE: "aes256"},
		{Bucket: "b", Region: "r", SSE: "AES256", KMSKeyID: "k"},
		{Bucket: "b", Region: "r", KMSKeyID: "k"},
		{Bucket: "b", Region: "r", AccessKeyID: "a"},
		{Bucket: "b", Region: "r", SecretAccessKey: "s"},
		{Bucket: "b", Region: "r", Prefix: "../x"},
		{Bucket: "b", Region: "r", Prefix: "/abs"},
		{Bucket: "b", Region: "r", Prefix: "a//b"},
	} {
		_, err := s3store.New(t.Context(), cfg)
		if faceauth.KindOf(err) != faceauth.KindInvalid || errors.Is(err, faceauth.ErrNotFound) {
			t.Errorf("New(%+v) = %v, want an invalid-configuration error", cfg, err)
		}
	}
}

// isolateAWSEnv points the default credential chain at nothing: no
// environment keys, no shared files, no instance metadata.
func isolateAWSEnv(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	} {
		t.Setenv(k, v)
	}
}

func TestNoCredentials(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{})
	bucket := newBucket(t, gw)
	isolateAWSEnv(t)
	s := newStore(t, s3store.Config{Bucket: bucket, Region: gw.Region, Endpoint: gw.Endpoint})
	for op, err := range everyOp(t.Context(), s) {
		wantError(t, op, err, faceauth.KindUnavailable, s3store.CodeNoCredentials, s3store.MsgNoCredentials)
	}
}

func TestNoRegion(t *testing.T) {
	isolateAWSEnv(t)
	_, err := s3store.New(t.Context(), s3store.Config{Bucket: "b"})
	wantError(t, "New", err, faceauth.KindUnavailable, s3store.CodeNoRegion, s3store.MsgNoRegion)
}

// The default chain finds keys in the environment and in a shared profile.
func TestDefaultCredentialChain(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{AccessKey: "chain-key", SecretKey: "chain-secret"})
	bucket := newBucket(t, gw)
	cfg := s3store.Config{Bucket: bucket, Endpoint: gw.Endpoint}

	t.Run("environment", func(t *testing.T) {
		isolateAWSEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", gw.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", gw.SecretKey)
		t.Setenv("AWS_REGION", gw.Region)
		s := newStore(t, cfg)
		if err := s.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s.Region() != gw.Region {
			t.Errorf("region = %q, want %q from AWS_REGION", s.Region(), gw.Region)
		}
	})
	t.Run("profile", func(t *testing.T) {
		isolateAWSEnv(t)
		creds := fmt.Sprintf("[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"+
			"[faceauth]\naws_access_key_id = %s\naws_secret_access_key = %s\n", gw.AccessKey, gw.SecretKey)
		if err := os.WriteFile(os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), []byte(creds), 0o600); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf("[profile faceauth]\nregion = %s\n", gw.Region)
		if err := os.WriteFile(os.Getenv("AWS_CONFIG_FILE"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_PROFILE", "faceauth")
		if err := newStore(t, cfg).Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		// The default profile holds keys the gateway does not know.
		t.Setenv("AWS_PROFILE", "")
		withRegion := cfg
		withRegion.Region = gw.Region
		wantError(t, "default profile", newStore(t, withRegion).Ping(t.Context()),
			faceauth.KindUnavailable, s3store.CodeAccessDenied, s3store.MsgAccessDenied(bucket))
	})
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	s := newStore(t, s3store.Config{Bucket: "b", Region: "us-east-1", Endpoint: endpoint,
		AccessKeyID: "a", SecretAccessKey: "s"})
	wantError(t, "Ping", s.Ping(t.Context()), faceauth.KindUnavailable, s3store.CodeUnreachable, s3store.MsgUnreachable(endpoint))
	_, _, err = s.Get(t.Context(), "records/alice.pb")
	wantError(t, "Get", err, faceauth.KindUnavailable, s3store.CodeUnreachable, s3store.MsgUnreachable(endpoint))
}

// recorder is an HTTP client that keeps the headers of the requests it
// sends to the real server.
type recorder struct {
	mu   sync.Mutex
	reqs []http.Header
	http http.Client
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Header.Clone())
		r.mu.Unlock()
	}
	return r.http.Do(req)
}

// The SSE settings travel as the x-amz-server-side-encryption headers of
// every write. The posix gateway accepts and ignores them (it does not
// encrypt), so this checks what the client sends and that the gateway
// takes it.
func TestSSEHeaders(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{})
	bucket := newBucket(t, gw)
	for _, tt := range []struct{ sse, kms string }{
		{"", ""},
		{s3store.SSES3, ""},
		{s3store.SSEKMS, ""},
		{s3store.SSEKMS, "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
	} {
		rec := &recorder{}
		cfg := config(gw, bucket)
		cfg.SSE, cfg.KMSKeyID, cfg.HTTPClient = tt.sse, tt.kms, rec
		s := newStore(t, cfg)
		key := "records/sse" + fmt.Sprint(len(rec.reqs)) + ".pb"
		for _, c := range []faceauth.Cond{{}, {IfNoneMatch: true}} {
			if err := s.Delete(t.Context(), key); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Put(t.Context(), key, []byte("x"), c); err != nil {
				t.Fatalf("SSE %q: Put: %v", tt.sse, err)
			}
		}
		if data, _, err := s.Get(t.Context(), key); err != nil || string(data) != "x" {
			t.Fatalf("SSE %q: Get = %q, %v", tt.sse, data, err)
		}
		if len(rec.reqs) != 2 {
			t.Fatalf("SSE %q: %d PUT requests recorded, want 2", tt.sse, len(rec.reqs))
		}
		for _, h := range rec.reqs {
			if got := h.Get("X-Amz-Server-Side-Encryption"); got != tt.sse {
				t.Errorf("SSE %q: header x-amz-server-side-encryption = %q", tt.sse, got)
			}
			if got := h.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"); got != tt.kms {
				t.Errorf("SSE %q: header x-amz-server-side-encryption-aws-kms-key-id = %q, want %q", tt.sse, got, tt.kms)
			}
		}
	}
}

func TestMessages(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{s3store.MsgNotConfigured, "S3 is not configured. Set S3_BUCKET (and AWS credentials) in environment."},
		{s3store.MsgNoCredentials, "Unable to locate credentials for S3. Attach the IAM instance role to this EC2 instance (deploy/aws/setup.sh), or elsewhere set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE."},
		{s3store.MsgActionDenied("X", "s3:PutObject"), `Access to S3 bucket "X" was denied for s3:PutObject. Allow s3:PutObject on it in the IAM policy of the instance role (deploy/aws/iam-policy.json).`},
		{s3store.MsgAccessDenied("X"), `Access to S3 bucket "X" was denied. Check the credentials and that the IAM policy allows s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on it.`},
		{s3store.MsgNoBucket("X", "R"), `S3 bucket "X" does not exist in region R. Create it or fix S3_BUCKET/AWS_REGION.`},
	} {
		if tt.got != tt.want {
			t.Errorf("got  %q\nwant %q", tt.got, tt.want)
		}
	}
}

func BenchmarkPutGet(b *testing.B) {
	gw := versitygw.Start(b, versitygw.Options{Buckets: []string{"bench"}})
	s, err := s3store.New(b.Context(), s3store.Config{Bucket: "bench", Region: gw.Region, Endpoint: gw.Endpoint,
		AccessKeyID: gw.AccessKey, SecretAccessKey: gw.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 4096)
	for b.Loop() {
		if _, err := s.Put(b.Context(), "records/bench.pb", data, faceauth.Cond{}); err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.Get(b.Context(), "records/bench.pb"); err != nil {
			b.Fatal(err)
		}
	}
}

// A server-side failure (here: the gateway cannot create its temporary
// file, because a file blocks its folder) is a 5xx, reported as
// unavailable with the generic sentence.
func TestServerError(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{})
	bucket := newBucket(t, gw)
	s := newStore(t, config(gw, bucket))
	tmp := filepath.Join(gw.Dir, bucket, ".sgwtmp")
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put(t.Context(), "records/alice.pb", []byte("x"), faceauth.Cond{IfNoneMatch: true})
	wantError(t, "Put", err, faceauth.KindUnavailable, s3store.CodeFailed, s3store.MsgFailed(bucket))
}
