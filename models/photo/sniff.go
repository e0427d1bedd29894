package photo

import (
	"bytes"
	"errors"
)

// Sniff returns the format of data judged by its first bytes (magic
// numbers), one of the Format constants, or "" when it is not a supported
// format. It reads no further than the signature; use Config to also check
// the header.
func Sniff(data []byte) string {
	f, _ := sniff(data)
	return f
}

func sniff(b []byte) (string, error) {
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return FormatJPEG, nil
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG, nil
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return FormatWebP, nil
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return FormatGIF, nil
	case bytes.HasPrefix(b, []byte("BM")) && len(b) >= 14:
		return FormatBMP, nil
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return FormatTIFF, nil
	case len(b) >= 3 && b[0] == 'P' && bytes.IndexByte([]byte("2356"), b[1]) >= 0 && isPNMSpace(b[2]):
		return FormatPGM, nil
	}

	// Recognised but unsupported formats get a sentence that helps.
	if len(b) >= 12 && string(b[4:8]) == "ftyp" {
		switch string(b[8:12]) {
		case "heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1", "avif", "avis":
			return "", errUnsupportedMsg(errors.New("HEIF container"),
				"HEIC, HEIF and AVIF photos are not supported; please upload a JPEG or PNG instead.")
		}
	}
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8}) && len(b) < 3:
		// A JPEG cut off after two bytes.
		return "", errTruncated(errShort)
	case bytes.HasPrefix(b, []byte("\x89PNG")) && len(b) < 8:
		return "", errTruncated(errShort)
	case bytes.HasPrefix(b, []byte("II+\x00")), bytes.HasPrefix(b, []byte("MM\x00+")):
		return "", errUnsupportedMsg(errors.New("BigTIFF"),
			"BigTIFF images are not supported; please upload a JPEG or PNG instead.")
	}
	return "", errUnsupported(errors.New("unknown signature"))
}
