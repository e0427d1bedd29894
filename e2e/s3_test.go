package e2e

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth/central/store/s3store"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/internal/versitygw"
)

// TestCentralOnS3 runs the real bin/central against a real S3 protocol
// server (versitygw on loopback, signatures checked), configured the way
// production is (STORE=s3, S3_BUCKET, S3_ENDPOINT, AWS credentials in the
// environment), and drives the seed's flow over HTTP: register, verify,
// delete. It checks the objects have the documented layout and that after
// the delete no object of the user is left.
func TestCentralOnS3(t *testing.T) {
	gw := versitygw.Start(t, versitygw.Options{Buckets: []string{"faceauth-e2e"}})
	env := []string{
		"SECRET_KEY=" + secret, "STORE=s3", "S3_BUCKET=faceauth-e2e", "S3_ENDPOINT=" + gw.Endpoint,
		"S3_PREFIX=site-a", "AWS_REGION=" + gw.Region,
		"AWS_ACCESS_KEY_ID=" + gw.AccessKey, "AWS_SECRET_ACCESS_KEY=" + gw.SecretKey,
	}
	addr := freeAddr(t)
	p := start(t, "central", "central", env, "serve", "--listen", addr, "--data", t.TempDir(),
		"--models-dir", testenv.ModelsDir(t), "--nats-listen", freeAddr(t), "--workers", "1")
	c := &centralProc{proc: p, url: "http://" + addr}
	c.waitReady(c.url, 2*time.Minute)
	if !p.logHas("store=s3://faceauth-e2e/") {
		t.Fatalf("central did not say it uses the bucket:\n%s", p.tail(20))
	}

	admin, verifyTok := tokens(t)
	img := frame(t, "sample1.jpg")
	register(t, c, admin, "s3.alice", img)
	if status, m := verify(t, c.url, verifyTok, "s3.alice", img); status != http.StatusOK || m["verified"] != true {
		t.Fatalf("verify on S3: %d %v", status, m)
	}

	bucket, err := s3store.New(context.Background(), s3store.Config{
		Bucket: "faceauth-e2e", Region: gw.Region, Endpoint: gw.Endpoint, Prefix: "site-a",
		AccessKeyID: gw.AccessKey, SecretAccessKey: gw.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := func() []string {
		ks, err := bucket.List(context.Background(), "", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	layout := map[string]*regexp.Regexp{
		"record": regexp.MustCompile(`^records/s3\.alice\.pb$`),
		"image":  regexp.MustCompile(`^images/s3\.alice/[0-9a-f]{64}\.jpg$`),
		"meta":   regexp.MustCompile(`^meta/revision$`),
	}
	for what, re := range layout {
		found := false
		for _, k := range keys() {
			found = found || re.MatchString(k)
		}
		if !found {
			t.Errorf("no %s object matching %s in %v", what, re, keys())
		}
	}

	req, _ := http.NewRequest(http.MethodDelete, c.url+"/api/users/s3.alice", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	if status, body := httpDo(t, req); status/100 != 2 {
		t.Fatalf("delete: %d %s", status, body)
	}
	var deletion bool
	for _, k := range keys() {
		if strings.HasPrefix(k, "records/s3.alice") || strings.HasPrefix(k, "images/s3.alice/") {
			t.Errorf("object %s of the deleted user is left", k)
		}
		deletion = deletion || strings.HasPrefix(k, "deletions/")
	}
	if !deletion {
		t.Error("no deletion record was written")
	}
	if status, m := verify(t, c.url, verifyTok, "s3.alice", img); status != http.StatusOK || m["verified"] != false {
		t.Errorf("verify after delete: %d %v, want 200 verified false (an unknown user)", status, m)
	}
}
