package central

import (
	"fmt"
	"strconv"
	"strings"
)

// The object layout (docs/architecture.md).
const (
	recordsPrefix   = "records/"
	imagesPrefix    = "images/"
	deletionsPrefix = "deletions/"
	revisionKey     = "meta/revision"
	recordExt       = ".pb"
)

func recordKey(id string) string { return recordsPrefix + id + recordExt }

// userOfRecordKey returns the user id of a records/<id>.pb key.
func userOfRecordKey(key string) (string, bool) {
	id, ok := strings.CutPrefix(key, recordsPrefix)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(id, recordExt)
}

func imageDir(id string) string { return imagesPrefix + id + "/" }

func imageKey(id, imageID, ext string) string { return imageDir(id) + imageID + "." + ext }

// deletionKey zero-pads the revision so keys sort in revision order.
func deletionKey(rev uint64) string { return fmt.Sprintf("%s%020d%s", deletionsPrefix, rev, recordExt) }

// revisionOfDeletionKey parses a deletions/<rev>.pb key.
func revisionOfDeletionKey(key string) (uint64, bool) {
	s, ok := strings.CutPrefix(key, deletionsPrefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, recordExt)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// imageFormats maps the sniffed format to the stored extension and content
// type.
var imageFormats = map[string]struct{ ext, contentType string }{
	"jpeg": {"jpg", "image/jpeg"},
	"png":  {"png", "image/png"},
	"webp": {"webp", "image/webp"},
	"gif":  {"gif", "image/gif"},
	"bmp":  {"bmp", "image/bmp"},
	"tiff": {"tiff", "image/tiff"},
	"pgm":  {"pnm", "image/x-portable-anymap"},
}

// extOf returns the stored extension for a content type ("bin" when
// unknown, which a stored reference never has).
func extOf(contentType string) string {
	for _, f := range imageFormats {
		if f.contentType == contentType {
			return f.ext
		}
	}
	return "bin"
}
