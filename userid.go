package faceauth

// MaxUserIDLen is the longest user id accepted.
const MaxUserIDLen = 128

// ValidateUserID reports whether id may name a user. Ids are 1 to 128
// characters of ASCII letters, digits, '.', '_', '-' and '@', and do not
// start with '.' or '-'. The rule keeps every id a single, harmless path and
// object-key segment, so no id can escape its prefix in a store.
func ValidateUserID(id string) error {
	if id == "" {
		return E(KindInvalid, "invalid_user_id", "The user_id field is required.")
	}
	if len(id) > MaxUserIDLen {
		return E(KindInvalid, "invalid_user_id", "The user_id is longer than %d characters.", MaxUserIDLen)
	}
	if id[0] == '.' || id[0] == '-' {
		return E(KindInvalid, "invalid_user_id", "The user_id must not start with '.' or '-'.")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '_' || c == '-' || c == '@':
		default:
			return E(KindInvalid, "invalid_user_id", "The user_id may contain only letters, digits, '.', '_', '-' and '@'.")
		}
	}
	return nil
}
