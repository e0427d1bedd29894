package api

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/xplore/faceauth"
)

// FuzzParseForm feeds arbitrary bodies and boundaries to the multipart
// parser: it must never panic, must answer every bad body with a 400 or
// 413 error, and whatever it accepts must respect the form limits (parts,
// field length, no repeated text field).
func FuzzParseForm(f *testing.F) {
	for _, seed := range [][2]string{
		{"b", "--b\r\nContent-Disposition: form-data; name=\"user_id\"\r\n\r\nalice\r\n--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\nAAAA\r\n--b--\r\n"},
		{"b", "--b\r\nContent-Disposition: form-data; name=\"user_id\"\r\n\r\nalice\r\n--b\r\nContent-Disposition: form-data; name=\"user_id\"\r\n\r\nbob\r\n--b--\r\n"},
		{"b", "--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nno file name\r\n--b--\r\n"},
		{"b", "--b\r\nContent-Disposition: form-data; name=\"user_id\"\r\n\r\ncut off"},
		{"xyz", "not a multipart body at all"},
		{"", ""},
	} {
		f.Add(seed[0], []byte(seed[1]))
	}
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		r := httptest.NewRequest("POST", "/api/verify", bytes.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		form, err := ParseForm(httptest.NewRecorder(), r, limit)
		if err != nil {
			var fe *faceauth.Error
			if !errors.As(err, &fe) || (fe.Kind != faceauth.KindInvalid && fe.Kind != faceauth.KindTooLarge) || fe.Code == "" || fe.Msg == "" {
				t.Fatalf("error %v (%T) is not a clear 400 or 413", err, err)
			}
			return
		}
		if n := len(form.Files) + len(form.Values); n > maxParts {
			t.Fatalf("%d parts accepted, at most %d", n, maxParts)
		}
		for name, vs := range form.Values {
			if len(vs) != 1 {
				t.Fatalf("field %q accepted %d times", name, len(vs))
			}
			if len(vs[0]) > maxValueBytes {
				t.Fatalf("field %q of %d bytes accepted", name, len(vs[0]))
			}
		}
		var total int
		for _, file := range form.Files {
			total += len(file.Data)
		}
		if total > limit {
			t.Fatalf("%d bytes of files accepted under a %d limit", total, limit)
		}
	})
}
