package tenancy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SecretKeyEnv names the environment variable from which cmd reads the key
// (32 bytes, base64) that encrypts DSNs of dedicated databases.
const SecretKeyEnv = "PATCHDESK_SECRET_KEY"

const secretKeySize = 32

// ParseSecretKey decodes a base64 secret key for Config.SecretKey.
func ParseSecretKey(b64 string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) != secretKeySize {
		return nil, fmt.Errorf("the secret key must be %d bytes, base64-encoded (openssl rand -base64 32)", secretKeySize)
	}
	return key, nil
}

// secrets turns the database references stored in the control plane into
// DSNs: env:VAR through the injected resolver, enc:… with the secret key.
type secrets struct {
	key        []byte
	resolveEnv func(name string) (string, error)
}

// gcm returns the AES-256-GCM cipher keyed by the secret key.
func (s secrets) gcm() (cipher.AEAD, error) {
	if len(s.key) == 0 {
		return nil, fmt.Errorf("no secret key is configured (%s): pass the database URL as env:VAR, or set a key to encrypt it", SecretKeyEnv)
	}
	block, err := aes.NewCipher(s.key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return cipher.NewGCM(block)
}

// reference turns a database URL given by an operator into what the
// control plane stores: env:VAR stays a reference; a URL is encrypted.
func (s secrets) reference(url string) (string, error) {
	if strings.HasPrefix(url, "env:") {
		if _, err := s.resolveDSN(url); err != nil {
			return "", err
		}
		return url, nil
	}
	gcm, err := s.gcm()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("encrypt dsn: %w", err)
	}
	return "enc:" + base64.StdEncoding.EncodeToString(gcm.Seal(nonce, nonce, []byte(url), nil)), nil
}

// resolveDSN turns a stored reference into a DSN.
func (s secrets) resolveDSN(ref string) (string, error) {
	if name, ok := strings.CutPrefix(ref, "env:"); ok {
		return s.env(name)
	}
	sealed, ok := strings.CutPrefix(ref, "enc:")
	if !ok {
		return "", errors.New("unsupported dsn reference")
	}
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", fmt.Errorf("decode dsn reference: %w", err)
	}
	gcm, err := s.gcm()
	if err != nil {
		return "", err
	}
	if len(raw) < gcm.NonceSize() {
		return "", errors.New("dsn reference is truncated")
	}
	plain, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], nil)
	if err != nil {
		return "", fmt.Errorf("decrypt dsn reference (wrong secret key?): %w", err)
	}
	return string(plain), nil
}

func (s secrets) env(name string) (string, error) {
	if s.resolveEnv == nil {
		return "", fmt.Errorf("env:%s: no environment resolver is configured", name)
	}
	dsn, err := s.resolveEnv(name)
	if err != nil {
		return "", fmt.Errorf("env:%s: %w", name, err)
	}
	if dsn == "" {
		return "", fmt.Errorf("env:%s is empty", name)
	}
	return dsn, nil
}
