package models

import (
	"crypto/sha256"
	"encoding/hex"
)

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}
