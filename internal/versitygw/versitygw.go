// Package versitygw runs the real Versity S3 gateway (posix backend) for
// tests, so that the S3 store is tested against the S3 protocol, SigV4
// signatures and conditional writes of a real server rather than a fake.
//
// The binary is built from the pinned tools module:
//
//	cd tools && go build -o ../.tools/bin/ github.com/versity/versitygw/cmd/versitygw
//
// Start finds it at <repo>/.tools/bin/versitygw or at $VERSITYGW. When it is
// missing, tests are skipped on a developer machine and fail when the CI
// environment variable is set, so CI never skips silently.
package versitygw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/xplore/faceauth/internal/testenv"
)

// BuildCommand is the command that builds the gateway binary, run from the
// repository root.
const BuildCommand = "cd tools && go build -o ../.tools/bin/ github.com/versity/versitygw/cmd/versitygw"

// Options configures a gateway. Zero fields take the defaults below.
type Options struct {
	AccessKey string   // root access key id; default "faceauth-test"
	SecretKey string   // root secret key; default "faceauth-test-secret"
	Region    string   // default "us-east-1"
	Buckets   []string // buckets to create once the gateway is up
	// IAM turns on the gateway's internal IAM (accounts besides root,
	// managed with CreateUser and DeleteUser, and bucket policies that
	// decide what a non-admin account may do).
	IAM bool
}

// Server is a running gateway.
type Server struct {
	Endpoint  string // e.g. "http://127.0.0.1:41234"
	Region    string
	AccessKey string
	SecretKey string
	Dir       string // the posix root: one folder per bucket

	bin    string
	client *s3.Client
}

// Binary returns the path of the versitygw binary. When there is none it
// skips the test, or fails it when $CI is set.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("VERSITYGW"); p != "" {
		if isExecutable(p) {
			return p
		}
		missing(t, fmt.Sprintf("$VERSITYGW=%q is not an executable file", p))
	}
	root, err := testenv.FindRepoRoot()
	if err != nil {
		missing(t, err.Error())
	}
	p := filepath.Join(root, ".tools", "bin", "versitygw")
	if !isExecutable(p) {
		missing(t, fmt.Sprintf("the versitygw binary is not at %s", p))
	}
	return p
}

func missing(t testing.TB, why string) {
	t.Helper()
	msg := why + "; build it with `" + BuildCommand + "` or set VERSITYGW to its path"
	if _, ci := os.LookupEnv("CI"); ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start starts a gateway on a free loopback port with a fresh posix root,
// waits until it answers, creates opts.Buckets and stops it when the test
// ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	if opts.AccessKey == "" {
		opts.AccessKey = "faceauth-test"
	}
	if opts.SecretKey == "" {
		opts.SecretKey = "faceauth-test-secret"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	var (
		s   *Server
		err error
	)
	// The port is free when chosen but another process may take it before
	// the gateway binds it; then try another.
	for range 3 {
		s, err = start(t, bin, opts)
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range opts.Buckets {
		s.CreateBucket(t, b)
	}
	return s
}

func start(t testing.TB, bin string, opts Options) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	addr := "127.0.0.1:" + port
	args := []string{"--access", opts.AccessKey, "--secret", opts.SecretKey,
		"--region", opts.Region, "--port", addr, "--quiet"}
	if opts.IAM {
		// The accounts live beside the buckets' folder, not in it.
		iamDir := t.TempDir()
		args = append(args, "--iam-dir", iamDir)
	}
	cmd := exec.Command(bin, append(args, "posix", dir)...)
	// Keep credentials out of the environment the gateway would read them
	// from, so only the flags count.
	cmd.Env = filterEnv(os.Environ(), "ROOT_ACCESS_KEY", "ROOT_SECRET_KEY", "ROOT_ACCESS_KEY_ID", "ROOT_SECRET_ACCESS_KEY")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("versitygw: start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	s := &Server{
		Endpoint:  "http://" + addr,
		Region:    opts.Region,
		AccessKey: opts.AccessKey,
		SecretKey: opts.SecretKey,
		Dir:       dir,
		bin:       bin,
	}
	if err := waitReady(s.Endpoint, exited); err != nil {
		stop()
		return nil, fmt.Errorf("versitygw: %w\n%s", err, out.String())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	s.client = s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       s.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
	return s, nil
}

// waitReady polls the endpoint until it answers HTTP, the process exits or
// 30 seconds pass. Any HTTP answer, also "access denied" to the unsigned
// probe, means the gateway serves.
func waitReady(endpoint string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("the gateway exited before it was ready")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the gateway did not answer at %s within 30s: %w", endpoint, err)
		}
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("versitygw: find a free port: %w", err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

func filterEnv(env []string, drop ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, d := range drop {
			if strings.HasPrefix(kv, d+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// CreateBucket creates a bucket through the S3 API.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("versitygw: create bucket %q: %v", name, err)
	}
}

// syncBuffer collects the gateway's output from its two pipes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// CreateUser adds an account through the gateway's admin API (the gateway
// must run with Options.IAM). role is "admin" (every bucket), "user" or
// "userplus" (what the bucket policies allow).
func (s *Server) CreateUser(t testing.TB, access, secret, role string) {
	t.Helper()
	s.admin(t, "create-user", "--access", access, "--secret", secret, "--role", role)
}

// DeleteUser removes an account: its key is unknown from then on.
func (s *Server) DeleteUser(t testing.TB, access string) {
	t.Helper()
	s.admin(t, "delete-user", "--access", access)
}

func (s *Server) admin(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command(s.bin, append([]string{"admin", "--access", s.AccessKey, "--secret", s.SecretKey,
		"--region", s.Region, "--endpoint-url", s.Endpoint}, args...)...)
	cmd.Env = filterEnv(os.Environ(), "ADMIN_ACCESS_KEY_ID", "ADMIN_ACCESS_KEY", "ADMIN_SECRET_ACCESS_KEY", "ADMIN_SECRET_KEY", "ADMIN_ENDPOINT_URL")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("versitygw admin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// PutBucketPolicy sets a bucket policy (a JSON document as S3 takes it).
func (s *Server) PutBucketPolicy(t testing.TB, bucket, policy string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("versitygw: put the policy of bucket %q: %v", bucket, err)
	}
}
