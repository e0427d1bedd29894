package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"github.com/xplore/faceauth"
)

// DefaultMaxBodyBytes is the default request body limit: 10 MiB, as the
// original service.
const DefaultMaxBodyBytes = 10 << 20

// Limits on the parts of a form, so a body within the byte limit cannot
// still cost much: many tiny parts, or a huge text field.
const (
	maxParts      = 64
	maxValueBytes = 64 << 10
)

// Form is a parsed multipart/form-data request body.
type Form struct {
	Values map[string][]string
	Files  []File
}

// File is one uploaded file part.
type File struct {
	Field       string // the form field, e.g. "image"
	Name        string // the client's file name; informative only
	ContentType string // as the client sent it; the content is sniffed anyway
	Data        []byte
}

// Label names the file in error messages: its file name when the client
// sent one, else its position.
func (f File) Label(i int) string {
	if f.Name != "" {
		return fmt.Sprintf("image %d (%q)", i+1, f.Name)
	}
	return fmt.Sprintf("image %d", i+1)
}

// Value returns the first value of the text field name, or "".
func (f *Form) Value(name string) string {
	if v := f.Values[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// FilesOf returns the file parts of the field name, in request order.
func (f *Form) FilesOf(name string) []File {
	var out []File
	for _, file := range f.Files {
		if file.Field == name {
			out = append(out, file)
		}
	}
	return out
}

// TooLarge is the error of a body over the limit.
func TooLarge(limit int64) error {
	return faceauth.E(faceauth.KindTooLarge, "body_too_large",
		"The request body is larger than the %s limit.", formatBytes(limit))
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d byte", n)
}

// ParseForm reads a multipart/form-data body of at most maxBytes (<= 0
// means DefaultMaxBodyBytes) into memory. A larger body is a KindTooLarge
// error (413) and is not read further; any other malformation is
// KindInvalid (400).
func ParseForm(w http.ResponseWriter, r *http.Request, maxBytes int64) (*Form, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBodyBytes
	}
	if r.ContentLength > maxBytes {
		return nil, TooLarge(maxBytes)
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, faceauth.E(faceauth.KindInvalid, "not_multipart",
			"The request body must be multipart/form-data.")
	}
	body := &tailReader{r: http.MaxBytesReader(w, r.Body, maxBytes), n: len(params["boundary"]) + 8}
	mr := multipart.NewReader(body, params["boundary"])
	form := &Form{Values: map[string][]string{}}
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			// The multipart reader also reports a body cut short as a clean
			// end; only the closing delimiter tells them apart.
			if !bytes.Contains(body.tail, []byte("--"+params["boundary"]+"--")) {
				return nil, faceauth.Wrap(io.ErrUnexpectedEOF, faceauth.KindInvalid, "malformed_form",
					"The multipart form is malformed or incomplete.")
			}
			return form, nil
		}
		if err != nil {
			return nil, formError(err, maxBytes)
		}
		if n >= maxParts {
			return nil, faceauth.E(faceauth.KindInvalid, "too_many_parts",
				"The form has more than %d parts.", maxParts)
		}
		name := part.FormName()
		if name == "" {
			part.Close()
			continue
		}
		if part.FileName() == "" && !isFileField(name) {
			data, err := io.ReadAll(io.LimitReader(part, maxValueBytes+1))
			if err != nil {
				return nil, formError(err, maxBytes)
			}
			if len(data) > maxValueBytes {
				return nil, faceauth.E(faceauth.KindInvalid, "field_too_long",
					"The form field %q is longer than %d bytes.", name, maxValueBytes)
			}
			// A repeated field would be ambiguous (which user_id?); say
			// so instead of silently taking one.
			if _, dup := form.Values[name]; dup {
				return nil, faceauth.E(faceauth.KindInvalid, "duplicate_field",
					"The form field %q was sent more than once; send it once.", name)
			}
			form.Values[name] = append(form.Values[name], string(data))
			continue
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return nil, formError(err, maxBytes)
		}
		form.Files = append(form.Files, File{
			Field:       name,
			Name:        part.FileName(),
			ContentType: part.Header.Get("Content-Type"),
			Data:        data,
		})
	}
}

// tailReader remembers the last n bytes read through it.
type tailReader struct {
	r    io.Reader
	n    int
	tail []byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	k, err := t.r.Read(p)
	t.tail = append(t.tail, p[:k]...)
	if over := len(t.tail) - t.n; over > 0 {
		t.tail = append(t.tail[:0], t.tail[over:]...)
	}
	return k, err
}

// isFileField reports the fields that always carry image bytes, also when
// a client sends them without a file name.
func isFileField(name string) bool { return name == "image" }

func formError(err error, limit int64) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return TooLarge(limit)
	}
	// Everything else is a body that ended early or does not parse; the
	// cause (also a client that hung up) stays in the log.
	return faceauth.Wrap(err, faceauth.KindInvalid, "malformed_form",
		"The multipart form is malformed or incomplete.")
}
