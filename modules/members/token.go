package members

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/google/uuid"
)

const tokenPrefix = "pd_"

// newToken returns a bearer token "pd_<tenant id hex>_<secret>" and the hash
// stored for it. The tenant id lets a token be checked against the routed
// tenant without looking into any other tenant; only the hash is stored.
func newToken(tenantID uuid.UUID) (token string, hash []byte) {
	secret := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(secret))
	return tokenPrefix + hex.EncodeToString(tenantID[:]) + "_" + secret, sum[:]
}

// parseToken splits a bearer token into its tenant id and secret hash.
func parseToken(token string) (uuid.UUID, []byte, bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return uuid.Nil, nil, false
	}
	idHex, secret, ok := strings.Cut(rest, "_")
	if !ok || len(idHex) != 32 || len(secret) < 20 || len(secret) > 128 {
		return uuid.Nil, nil, false
	}
	raw, err := hex.DecodeString(idHex)
	if err != nil {
		return uuid.Nil, nil, false
	}
	id, err := uuid.FromBytes(raw)
	if err != nil {
		return uuid.Nil, nil, false
	}
	sum := sha256.Sum256([]byte(secret))
	return id, sum[:], true
}
