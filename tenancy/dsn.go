package tenancy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// SecretKeyEnv names the environment variable holding the key (32 bytes,
// base64) that encrypts DSNs of dedicated databases in the control plane.
const SecretKeyEnv = "PATCHDESK_SECRET_KEY"

func secretKey() ([]byte, error) {
	raw := os.Getenv(SecretKeyEnv)
	if raw == "" {
		return nil, fmt.Errorf("%s is not set: pass the database URL as env:VAR, or set a key to encrypt it", SecretKeyEnv)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%s must be 32 bytes, base64-encoded (openssl rand -base64 32)", SecretKeyEnv)
	}
	return key, nil
}

// newGCM returns the AES-256-GCM cipher keyed by PATCHDESK_SECRET_KEY.
func newGCM() (cipher.AEAD, error) {
	key, err := secretKey()
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// dsnReference turns a database URL given by an operator into what the
// control plane stores: env:VAR stays a reference; a URL is encrypted.
func dsnReference(url string) (string, error) {
	if strings.HasPrefix(url, "env:") {
		if _, err := resolveDSN(url); err != nil {
			return "", err
		}
		return url, nil
	}
	gcm, err := newGCM()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return "enc:" + base64.StdEncoding.EncodeToString(gcm.Seal(nonce, nonce, []byte(url), nil)), nil
}

// resolveDSN turns a stored reference into a DSN.
func resolveDSN(ref string) (string, error) {
	if name, ok := strings.CutPrefix(ref, "env:"); ok {
		dsn := os.Getenv(name)
		if dsn == "" {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		return dsn, nil
	}
	sealed, ok := strings.CutPrefix(ref, "enc:")
	if !ok {
		return "", fmt.Errorf("unsupported dsn reference")
	}
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", fmt.Errorf("decode dsn reference: %w", err)
	}
	gcm, err := newGCM()
	if err != nil {
		return "", err
	}
	if len(raw) < gcm.NonceSize() {
		return "", errors.New("dsn reference is truncated")
	}
	plain, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], nil)
	if err != nil {
		return "", fmt.Errorf("decrypt dsn reference (wrong %s?): %w", SecretKeyEnv, err)
	}
	return string(plain), nil
}
