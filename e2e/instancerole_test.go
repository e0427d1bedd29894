package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth/central/store/s3store"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/internal/versitygw"
)

// toolBin returns the path of a pinned dev tool built by `make tools`. A
// missing tool skips the test on a developer machine and fails it in CI,
// so CI never skips silently.
func toolBin(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(testenv.RepoRoot(t), ".tools", "bin", name)
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		msg := fmt.Sprintf("%s is not built at %s: run `make tools`", name, p)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// roleCreds are the credentials the instance metadata service hands out
// for the instance role.
type roleCreds struct {
	access, secret string
	expires        time.Time
}

// imds is aws/amazon-ec2-metadata-mock serving one role's credentials on
// a fixed loopback address, so that it can be stopped and started again
// with other credentials at the same endpoint, as IMDS rotates them.
type imds struct {
	t    testing.TB
	bin  string
	addr string
	dir  string
	p    *proc
}

func newIMDS(t testing.TB) *imds {
	return &imds{t: t, bin: toolBin(t, "ec2-metadata-mock"), addr: freeAddr(t), dir: t.TempDir()}
}

// endpoint is the value of AWS_EC2_METADATA_SERVICE_ENDPOINT.
func (m *imds) endpoint() string { return "http://" + m.addr }

// serve (re)starts the mock with c as the role's credentials. The Token is
// empty and the key id not of the temporary (ASIA) form: versitygw accepts
// session tokens only for sessions its own STS issued (which needs an OIDC
// provider), so the role's keys are a versitygw account and the SDK signs
// without X-Amz-Security-Token. Role discovery, the IMDSv2 token, expiry
// and refresh are the SDK's real instance-role path.
func (m *imds) serve(c roleCreds) {
	m.t.Helper()
	m.stop()
	conf := map[string]any{"metadata": map[string]any{"values": map[string]any{
		"iam-security-credentials": map[string]any{
			"Code": "Success", "LastUpdated": time.Now().UTC().Format(time.RFC3339), "Type": "AWS-HMAC",
			"AccessKeyId": c.access, "SecretAccessKey": c.secret, "Token": "",
			"Expiration": c.expires.UTC().Format(time.RFC3339),
		},
	}}}
	b, _ := json.Marshal(conf)
	path := filepath.Join(m.dir, "aemm-config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		m.t.Fatal(err)
	}
	host, port, _ := strings.Cut(m.addr, ":")
	env := append(os.Environ(), "HOME="+m.dir)
	m.p = startIn(m.t, m.dir, "ec2-metadata-mock", m.bin, env, "-n", host, "-p", port, "-c", path)
	waitFor(m.t, 30*time.Second, "the metadata mock to serve the role", func() bool {
		if m.p.exited() {
			m.t.Fatalf("ec2-metadata-mock exited: %s", m.p.tail(20))
		}
		resp, err := http.Get(m.endpoint() + "/latest/meta-data/iam/security-credentials/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (m *imds) stop() {
	if m.p != nil {
		m.p.stop()
		m.p = nil
	}
}

// noKeysEnv is the environment of a process that must find no AWS
// credentials of its own: no AWS_* or S3_* variable of the test's
// environment, empty shared config and credentials files, no profile.
func noKeysEnv(t testing.TB, extra ...string) []string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "S3_") || strings.HasPrefix(kv, "STORE=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"))
	return append(env, extra...)
}

// rolePolicy is deploy/aws/iam-policy.json for bucket as a bucket policy
// granting its statements to the given accounts, less the actions in drop:
// so the test proves that the shipped least-privilege policy is enough.
func rolePolicy(t testing.TB, bucket string, principals []string, drop ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "deploy", "aws", "iam-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version   string
		Statement []map[string]any
	}
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(b), "xplore-faceauth-prod", bucket)), &doc); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, st := range doc.Statement {
		var actions []string
		for _, a := range st["Action"].([]any) {
			if !containsString(drop, a.(string)) {
				actions = append(actions, a.(string))
			}
		}
		if len(actions) == 0 {
			continue
		}
		st["Action"] = actions
		st["Principal"] = map[string]any{"AWS": principals}
		out = append(out, st)
	}
	doc.Statement = out
	p, _ := json.Marshal(doc)
	return string(p)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestInstanceRoleCredentials runs bin/central as on EC2 with an instance
// role: S3_BUCKET set and no keys anywhere, the credentials coming from the
// instance metadata service (aws/amazon-ec2-metadata-mock) and accepted by
// the S3 server (versitygw accounts under the bucket policy made from
// deploy/aws/iam-policy.json). It registers and verifies, survives a
// credential rotation (the old key is deleted at the server after its
// expiry), reports a policy lacking s3:PutObject by naming that action,
// and, with the metadata service gone, fails to start with the "Unable to
// locate credentials" sentence. The local-development scenario, access
// keys in ./.env, runs last.
func TestInstanceRoleCredentials(t *testing.T) {
	const bucket = "xplore-faceauth-prod"
	gw := versitygw.Start(t, versitygw.Options{IAM: true, Buckets: []string{bucket}})
	mock := newIMDS(t)
	admin, verifyTok := tokens(t)
	alice, bob := frame(t, "sample1.jpg"), frame(t, "sample2.jpg")

	roleA := roleCreds{access: "AKIAFACEAUTHROLEA", secret: "role-secret-a", expires: time.Now().Add(15 * time.Second)}
	roleB := roleCreds{access: "AKIAFACEAUTHROLEB", secret: "role-secret-b", expires: time.Now().Add(time.Hour)}
	gw.CreateUser(t, roleA.access, roleA.secret, "user")
	gw.PutBucketPolicy(t, bucket, rolePolicy(t, bucket, []string{roleA.access}))
	mock.serve(roleA)

	env := noKeysEnv(t, "SECRET_KEY="+secret, "S3_BUCKET="+bucket, "S3_ENDPOINT="+gw.Endpoint,
		"AWS_REGION="+gw.Region, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+mock.endpoint())
	addr := freeAddr(t)
	args := []string{"serve", "--listen", addr, "--data", t.TempDir(), "--models-dir", testenv.ModelsDir(t),
		"--nats-listen", freeAddr(t), "--workers", "1", "--log-level", "debug"}
	c := &centralProc{proc: startIn(t, t.TempDir(), "central", "central", env, args...), url: "http://" + addr}
	c.waitReady(c.url, 2*time.Minute)
	if !c.logHas("store=s3://" + bucket + "/") {
		t.Fatalf("central did not say it uses the bucket:\n%s", c.tail(20))
	}
	register(t, c, admin, "role.alice", alice)
	if status, m := verify(t, c.url, verifyTok, "role.alice", alice); status != http.StatusOK || m["verified"] != true {
		t.Fatalf("verify with the role's credentials: %d %v", status, m)
	}

	t.Run("rotation", func(t *testing.T) {
		// IMDS hands out the next key pair before the current one
		// expires; both are valid at the server until the old one is
		// retired.
		gw.CreateUser(t, roleB.access, roleB.secret, "user")
		gw.PutBucketPolicy(t, bucket, rolePolicy(t, bucket, []string{roleA.access, roleB.access}))
		mock.serve(roleB)
		waitFor(t, time.Minute, "role A's credentials to expire", func() bool { return time.Now().After(roleA.expires.Add(time.Second)) })
		gw.PutBucketPolicy(t, bucket, rolePolicy(t, bucket, []string{roleB.access}))
		gw.DeleteUser(t, roleA.access)
		old, err := s3store.New(context.Background(), s3store.Config{Bucket: bucket, Region: gw.Region, Endpoint: gw.Endpoint,
			AccessKeyID: roleA.access, SecretAccessKey: roleA.secret})
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Ping(context.Background()); err == nil {
			t.Fatal("role A's key still works at the server: the rotation below would prove nothing")
		}
		register(t, c, admin, "role.bob", bob)
		if status, m := verify(t, c.url, verifyTok, "role.bob", bob); status != http.StatusOK || m["verified"] != true {
			t.Fatalf("verify after the rotation: %d %v", status, m)
		}
	})

	t.Run("policy without s3:PutObject", func(t *testing.T) {
		gw.PutBucketPolicy(t, bucket, rolePolicy(t, bucket, []string{roleB.access}, "s3:PutObject"))
		defer gw.PutBucketPolicy(t, bucket, rolePolicy(t, bucket, []string{roleB.access}))
		status, body := httpDo(t, request(t, c.url+"/api/register", admin, map[string]string{"user_id": "role.carol", "name": "Carol"}, alice))
		var e api.ErrorBody
		json.Unmarshal(body, &e)
		if want := s3store.MsgActionDenied(bucket, "s3:PutObject"); status != http.StatusServiceUnavailable || e.Error != want || e.Code != s3store.CodeAccessDenied {
			t.Fatalf("register with a policy lacking s3:PutObject: %d %s\nwant 503 %q", status, body, want)
		}
	})

	t.Run("no instance role", func(t *testing.T) {
		mock.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "central"), "serve", "--listen", freeAddr(t), "--data", t.TempDir(),
			"--models-dir", testenv.ModelsDir(t), "--nats-listen", freeAddr(t), "--workers", "1")
		cmd.Dir, cmd.Env = t.TempDir(), env
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("central serve started without credentials:\n%s", out)
		}
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if want := "central: " + s3store.MsgNoCredentials; first != want {
			t.Fatalf("central serve without an instance role printed\n%s\nwant the first line %q", out, want)
		}
	})

	t.Run("access keys in .env", func(t *testing.T) {
		// The local-development scenario: keys in ./.env, no metadata
		// service (the SDK is told not to look for one).
		work := t.TempDir()
		dotenv := fmt.Sprintf("S3_BUCKET=%s\nS3_ENDPOINT=%s\nAWS_REGION=%s\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\nSECRET_KEY=%s\n",
			bucket, gw.Endpoint, gw.Region, gw.AccessKey, gw.SecretKey, secret)
		if err := os.WriteFile(filepath.Join(work, ".env"), []byte(dotenv), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := freeAddr(t)
		d := &centralProc{proc: startIn(t, work, "central-dotenv", "central", noKeysEnv(t, "AWS_EC2_METADATA_DISABLED=true"),
			"serve", "--listen", addr, "--data", t.TempDir(), "--models-dir", testenv.ModelsDir(t),
			"--nats-listen", freeAddr(t), "--workers", "1"), url: "http://" + addr}
		d.waitReady(d.url, 2*time.Minute)
		if status, m := verify(t, d.url, verifyTok, "role.alice", alice); status != http.StatusOK || m["verified"] != true {
			t.Fatalf("verify through the keys in .env: %d %v", status, m)
		}
	})
}
