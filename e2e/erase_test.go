package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth/central/httpapi"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/internal/versitygw"
)

// person is a user registered for erasure, with the byte patterns that
// must be gone afterwards.
type person struct {
	id, name string
	patterns map[string][]byte
}

func newPerson(t testing.TB, id, name string, photos ...[]byte) *person {
	p := &person{id: id, name: name, patterns: map[string][]byte{"the name": []byte(name)}}
	for i, img := range photos {
		p.patterns[fmt.Sprintf("embedding %d", i)] = vectorBytes(t, img)
		p.patterns[fmt.Sprintf("photo %d", i)] = img[len(img)/2 : len(img)/2+64]
	}
	return p
}

// enroll registers p with its photos, one request each (the second one
// replaces the user's message on the feed), and returns the last revision.
func (p *person) enroll(t testing.TB, c *centralProc, admin string, photos ...[]byte) uint64 {
	t.Helper()
	var rev uint64
	for _, img := range photos {
		status, body := httpDo(t, request(t, c.url+"/api/register", admin, map[string]string{"user_id": p.id, "name": p.name}, img))
		var r httpapi.RegisterResponse
		if status/100 != 2 || json.Unmarshal(body, &r) != nil {
			t.Fatalf("register %s: %d %s", p.id, status, body)
		}
		rev = r.Revision
	}
	return rev
}

func deleteUser(t testing.TB, url, admin, id string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, url+"/api/users/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	status, _ := httpDo(t, req)
	return status
}

// waitPurged waits until every known edge confirmed the user's deletion.
func waitPurged(t testing.TB, url, admin, id string) {
	t.Helper()
	waitFor(t, 60*time.Second, "every edge to confirm the deletion of "+id, func() bool {
		req, _ := http.NewRequest(http.MethodGet, url+"/api/deletions", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		status, body := httpDo(t, req)
		var r httpapi.DeletionsResponse
		if status != http.StatusOK || json.Unmarshal(body, &r) != nil {
			return false
		}
		for _, d := range r.Deletions {
			if d.UserID == id && len(d.Purged) > 0 && len(d.Pending) == 0 {
				return true
			}
		}
		return false
	})
}

// waitGone waits until no file under dirs holds p's data, or fails the
// test naming the files that still do.
func waitGone(t testing.TB, dirs []string, p *person) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if left = testenv.GrepFiles(t, p.patterns, dirs...); len(left) == 0 {
			return
		}
	}
	t.Fatalf("%s's data is still on disk after every edge confirmed the deletion:\n%s", p.id, strings.Join(left, "\n"))
}

// TestErasureLeavesNoTrace runs the real bin/central (embedded NATS) and
// bin/edged, on the local file store and on the real S3 server
// (versitygw), registers a user with two photos in two requests, deletes
// it, and once the edge confirmed the purge greps every file under
// central's data folder (store, NATS JetStream files, keys), the edge's
// data folder and versitygw's backend folder for the user's name,
// embeddings and photo bytes. Then a second user, with 40 photos, is
// deleted and central is killed with SIGKILL as soon as the first photo
// left the store's folder (the middle of the delete; the log says how many
// were left), central is restarted, the delete is repeated as a client
// whose request failed would, and the same grep must come back empty.
// central/erase_test.go injects the other crash points precisely.
func TestErasureLeavesNoTrace(t *testing.T) {
	admin, _ := tokens(t)
	imgs := [][]byte{frame(t, "sample1.jpg"), frame(t, "sample2.jpg")}
	for _, onS3 := range []bool{false, true} {
		t.Run(map[bool]string{false: "filestore", true: "s3"}[onS3], func(t *testing.T) {
			data, edata := t.TempDir(), t.TempDir()
			dirs := []string{data, edata}
			env := []string{"SECRET_KEY=" + secret}
			if onS3 {
				gw := versitygw.Start(t, versitygw.Options{Buckets: []string{"faceauth-erase"}})
				env = append(env, "STORE=s3", "S3_BUCKET=faceauth-erase", "S3_ENDPOINT="+gw.Endpoint,
					"AWS_REGION="+gw.Region, "AWS_ACCESS_KEY_ID="+gw.AccessKey, "AWS_SECRET_ACCESS_KEY="+gw.SecretKey)
				dirs = append(dirs, gw.Dir)
			}
			natsAddr := freeAddr(t)
			startC := func() *centralProc {
				addr := freeAddr(t)
				p := start(t, "central", "central", env, "serve", "--listen", addr, "--data", data,
					"--models-dir", testenv.ModelsDir(t), "--nats-listen", natsAddr, "--nats-local-edges", "erase-edge", "--workers", "1", "--log-level", "debug")
				c := &centralProc{proc: p, url: "http://" + addr, nats: "nats://" + natsAddr, data: data}
				c.waitReady(c.url, 2*time.Minute)
				return c
			}
			c := startC()
			e := startEdge(t, "erase-edge", edata, c.nats, c.edgeAuth("erase-edge")...)

			alice := newPerson(t, "erase.alice", "Alice Erasable Qzv", imgs...)
			waitApplied(t, e, alice.enroll(t, c, admin, imgs...))
			if found := testenv.GrepFiles(t, alice.patterns, dirs...); len(found) < len(alice.patterns) {
				t.Fatalf("before the delete the user's data is not all on disk (%q): the test looks in the wrong place", found)
			}
			if status := deleteUser(t, c.url, admin, alice.id); status/100 != 2 {
				t.Fatalf("delete: %d", status)
			}
			waitPurged(t, c.url, admin, alice.id)
			waitGone(t, dirs, alice)

			// A delete interrupted by kill -9, then a restart. Bob has many
			// photos, so his delete spends some milliseconds deleting them;
			// the test watches his image folder on disk and kills central
			// as soon as the first photo is gone: the middle of the delete.
			photos := [][]byte{imgs[1]}
			for q := 60; len(photos) < 40; q++ {
				photos = append(photos, reencode(t, imgs[0], q))
			}
			bob := newPerson(t, "erase.bob", "Bob Erasable Wvx", photos[:3]...)
			for i, img := range photos[3:] {
				bob.patterns[fmt.Sprintf("photo %d", i+3)] = img[len(img)/2 : len(img)/2+64]
			}
			status, body := httpDo(t, multiRequest(t, c.url+"/api/register", admin, map[string]string{"user_id": bob.id, "name": bob.name}, photos))
			var reg httpapi.RegisterResponse
			if status != http.StatusCreated || json.Unmarshal(body, &reg) != nil {
				t.Fatalf("register %s: %d %s", bob.id, status, body)
			}
			waitApplied(t, e, reg.Revision)
			folder := filepath.Join(data, "store", "images", bob.id)
			if onS3 {
				folder = filepath.Join(dirs[2], "faceauth-erase", "images", bob.id)
			}
			if n := countFiles(folder); n != len(photos) {
				t.Fatalf("%s holds %d photos, want %d: the test watches the wrong folder", folder, n, len(photos))
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				req, _ := http.NewRequest(http.MethodDelete, c.url+"/api/users/"+bob.id, nil)
				req.Header.Set("Authorization", "Bearer "+admin)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			for deadline := time.Now().Add(30 * time.Second); countFiles(folder) == len(photos) && time.Now().Before(deadline); {
			}
			c.kill9()
			<-done
			t.Logf("central was killed with %d of %d photos left in the store", countFiles(folder), len(photos))
			c = startC()
			if status := deleteUser(t, c.url, admin, bob.id); status/100 != 2 && status != http.StatusNotFound {
				t.Fatalf("delete after the restart: %d", status)
			}
			waitPurged(t, c.url, admin, bob.id)
			waitGone(t, dirs, bob)
			e.stop()
			c.stop()
			if left := testenv.GrepFiles(t, merge(alice.patterns, bob.patterns), dirs...); len(left) > 0 {
				t.Errorf("after stopping: %q", left)
			}
		})
	}
}

func merge(a, b map[string][]byte) map[string][]byte {
	m := map[string][]byte{}
	for k, v := range a {
		m["alice's "+k] = v
	}
	for k, v := range b {
		m["bob's "+k] = v
	}
	return m
}

// reencode returns img re-encoded as a JPEG of quality q: the same face,
// other bytes, so another reference image.
func reencode(t testing.TB, img []byte, q int) []byte {
	t.Helper()
	m, err := jpeg.Decode(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// multiRequest builds a multipart POST with several images.
func multiRequest(t testing.TB, url, token string, fields map[string]string, imgs [][]byte) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for i, img := range imgs {
		fw, _ := mw.CreateFormFile("image", fmt.Sprintf("photo%d.jpg", i))
		fw.Write(img)
	}
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, url, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// countFiles counts the objects in a folder (0 when it is gone).
func countFiles(dir string) int {
	es, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range es {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}
