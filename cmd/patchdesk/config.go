package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"

	"github.com/patchdesk/patchdesk/modules/attachments"
	"github.com/patchdesk/patchdesk/tenancy"
)

// config is PatchDesk's process configuration, read once from the environment
// and overridden by flags.
type config struct {
	DatabaseURL string
	HTTPAddr    string
	DataDir     string
	BaseDomain  string
	LogFormat   string
	// Rate limits (requests per minute): signups per client IP, and
	// authenticated requests per member (all their tokens) and per tenant.
	SignupsPerMinute float64
	TokenPerMinute   float64
	TenantPerMinute  float64
	// LoginsPerMinute limits logins per tenant and client IP, LoginsPerIP
	// per client IP over all tenants; AuthFailuresPerMinute limits failed
	// token authentications per client IP.
	LoginsPerMinute       float64
	LoginsPerIP           float64
	AuthFailuresPerMinute float64
	// KafkaBrokers is the cluster (comma-separated); empty starts the embedded broker on KafkaAddr.
	KafkaBrokers string
	KafkaAddr    string
	// SMTPURL sends mail over SMTP; empty writes .eml files under DataDir/mail.
	SMTPURL             string
	MailFrom            string
	WebhookAllowPrivate bool
	// MetricsAddr is the dedicated /metrics listener ("" or "off": none).
	MetricsAddr string
	// MetricsToken lets a bearer of it read /metrics on the public listener
	// from anywhere (a secret: hidden by Redacted).
	MetricsToken string
	// TrustForwardedProto trusts X-Forwarded-Proto from the proxy in front
	// (for HSTS).
	TrustForwardedProto bool
	// SecretKey (base64, 32 bytes) encrypts dedicated databases' DSNs in the control plane.
	SecretKey string
	// BlobURL is the attachments' object store; empty means
	// file://DataDir/blobs (the one-command run needs nothing else).
	BlobURL string
	// AttachmentQuota bounds each tenant's stored attachment bytes.
	AttachmentQuota int64
}

// attachments is the attachments module's configuration.
func (c *config) attachments() (attachments.Config, error) {
	u := c.BlobURL
	if u == "" {
		dir, err := filepath.Abs(filepath.Join(c.DataDir, "blobs"))
		if err != nil {
			return attachments.Config{}, fmt.Errorf("blob directory: %w", err)
		}
		u = (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir), RawQuery: "create_dir=true"}).String()
	}
	return attachments.Config{BlobURL: u, Quota: c.AttachmentQuota}, nil
}

func (c config) Validate() error {
	u, err := url.Parse(c.DatabaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("DATABASE_URL must be a postgres:// URL")
	}
	if c.HTTPAddr == "" {
		return errors.New("PATCHDESK_HTTP_ADDR must not be empty")
	}
	if c.SignupsPerMinute <= 0 || c.TokenPerMinute <= 0 || c.TenantPerMinute <= 0 ||
		c.LoginsPerMinute <= 0 || c.LoginsPerIP <= 0 || c.AuthFailuresPerMinute <= 0 {
		return errors.New("rate limits must be positive")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return errors.New("PATCHDESK_LOG_FORMAT must be text or json")
	}
	return nil
}

// Redacted is the configuration safe to log: the database password is hidden.
func (c config) Redacted() config {
	if u, err := url.Parse(c.DatabaseURL); err == nil {
		c.DatabaseURL = u.Redacted()
	}
	if c.MetricsToken != "" {
		c.MetricsToken = "xxxxx"
	}
	if c.SecretKey != "" {
		c.SecretKey = "xxxxx"
	}
	return c
}

// bindConfig registers the shared flags on fs with environment defaults.
// The control database is --database-url and --control-database-url.
func bindConfig(fs *flag.FlagSet) *config {
	c := bindConfigOnly(fs)
	fs.Func("database-url", "control database URL (DATABASE_URL)", func(v string) error { c.DatabaseURL = v; return nil })
	return c
}

// bindConfigOnly registers the shared flags, with the control database as
// --control-database-url only (tenants create uses --database-url for the
// tenant's own database).
func bindConfigOnly(fs *flag.FlagSet) *config {
	c := &config{}
	fs.StringVar(&c.DatabaseURL, "control-database-url",
		cmp.Or(os.Getenv("DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/patchdesk?sslmode=disable"), "control database URL (DATABASE_URL)")
	fs.StringVar(&c.HTTPAddr, "addr", cmp.Or(os.Getenv("PATCHDESK_HTTP_ADDR"), "127.0.0.1:8080"), "HTTP listen address (PATCHDESK_HTTP_ADDR)")
	fs.StringVar(&c.DataDir, "data-dir", cmp.Or(os.Getenv("PATCHDESK_DATA_DIR"), "./data"), "data directory (PATCHDESK_DATA_DIR)")
	fs.StringVar(&c.BaseDomain, "base-domain", os.Getenv("PATCHDESK_BASE_DOMAIN"), "serve tenants on {slug}.DOMAIN too (PATCHDESK_BASE_DOMAIN)")
	fs.StringVar(&c.LogFormat, "log-format", cmp.Or(os.Getenv("PATCHDESK_LOG_FORMAT"), "text"), "text or json (PATCHDESK_LOG_FORMAT)")
	fs.Float64Var(&c.SignupsPerMinute, "signups-per-minute", envFloat("PATCHDESK_SIGNUP_PER_MINUTE", 10), "signups per client IP per minute")
	fs.Float64Var(&c.TokenPerMinute, "token-per-minute", envFloat("PATCHDESK_TOKEN_PER_MINUTE", 1200), "requests per member per minute, over all their sessions and API tokens")
	fs.Float64Var(&c.LoginsPerMinute, "logins-per-minute", envFloat("PATCHDESK_LOGIN_PER_MINUTE", 30), "logins per tenant and client IP per minute")
	fs.Float64Var(&c.LoginsPerIP, "logins-per-ip-per-minute", envFloat("PATCHDESK_LOGIN_IP_PER_MINUTE", 60), "logins per client IP per minute, over all tenants")
	fs.Float64Var(&c.AuthFailuresPerMinute, "auth-failures-per-minute", envFloat("PATCHDESK_AUTH_FAILURES_PER_MINUTE", 60), "failed token authentications per client IP per minute before its tokens are refused")
	fs.Float64Var(&c.TenantPerMinute, "tenant-per-minute", envFloat("PATCHDESK_TENANT_PER_MINUTE", 30000), "requests per tenant per minute")
	fs.StringVar(&c.KafkaBrokers, "kafka-brokers", os.Getenv("KAFKA_BROKERS"), "Kafka brokers host:port,... (KAFKA_BROKERS); empty runs the embedded broker")
	fs.StringVar(&c.KafkaAddr, "kafka-addr", cmp.Or(os.Getenv("PATCHDESK_KAFKA_ADDR"), "127.0.0.1:0"), "listen address of the embedded broker (PATCHDESK_KAFKA_ADDR)")
	fs.StringVar(&c.SMTPURL, "smtp-url", os.Getenv("PATCHDESK_SMTP_URL"), "smtp://host:port for outgoing mail (PATCHDESK_SMTP_URL); empty writes .eml files")
	fs.StringVar(&c.MailFrom, "mail-from", cmp.Or(os.Getenv("PATCHDESK_MAIL_FROM"), "PatchDesk <notifications@patchdesk.local>"), "From header of emails (PATCHDESK_MAIL_FROM)")
	fs.StringVar(&c.SecretKey, "secret-key", os.Getenv(tenancy.SecretKeyEnv), "32 bytes, base64: encrypts dedicated databases' URLs ("+tenancy.SecretKeyEnv+")")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", os.Getenv("PATCHDESK_WEBHOOK_ALLOW_PRIVATE") == "true", "allow webhook targets in private ranges (PATCHDESK_WEBHOOK_ALLOW_PRIVATE)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", envOr("PATCHDESK_METRICS_ADDR", "127.0.0.1:9091"),
		`listen address of the dedicated /metrics listener (PATCHDESK_METRICS_ADDR); "" or "off" disables it`)
	fs.StringVar(&c.MetricsToken, "metrics-token", os.Getenv("PATCHDESK_METRICS_TOKEN"),
		"bearer token that may read /metrics on the public listener from anywhere (PATCHDESK_METRICS_TOKEN); without it only loopback peers not behind a proxy may")
	fs.StringVar(&c.BlobURL, "blob-url", os.Getenv("PATCHDESK_BLOB_URL"),
		"attachment store: file:///dir or s3://bucket?endpoint=…&region=… (PATCHDESK_BLOB_URL); empty: DATA_DIR/blobs")
	fs.Int64Var(&c.AttachmentQuota, "attachment-quota", int64(envFloat("PATCHDESK_ATTACHMENT_QUOTA", attachments.DefaultQuota)),
		"attachment bytes each tenant may store (PATCHDESK_ATTACHMENT_QUOTA)")
	fs.BoolVar(&c.TrustForwardedProto, "trust-forwarded-proto", os.Getenv("PATCHDESK_TRUST_FORWARDED_PROTO") == "true",
		"treat X-Forwarded-Proto: https from the proxy in front as TLS, for HSTS (PATCHDESK_TRUST_FORWARDED_PROTO)")
	return c
}

// envOr reads an environment variable that may be set to "" on purpose,
// or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// envFloat reads a numeric environment variable, or def when unset or not a number.
func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

// parse parses flags that may appear before and after positional arguments
// (`tenants create SLUG --owner-email …`) and validates the configuration.
// It returns the positional arguments.
func parse(fs *flag.FlagSet, args []string, c *config) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return positional, c.Validate()
}

func newLogger(c *config) *slog.Logger {
	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	return slog.New(h)
}

// openRegistry creates the control database if needed and opens the registry,
// which applies pending control-schema migrations under an advisory lock.
func openRegistry(ctx context.Context, c *config, log *slog.Logger) (*tenancy.Registry, error) {
	if err := tenancy.EnsureDatabase(ctx, c.DatabaseURL); err != nil {
		return nil, err
	}
	cfg := tenancy.Config{DatabaseURL: c.DatabaseURL, Logger: log, ResolveEnv: lookupEnv}
	if c.SecretKey != "" {
		key, err := tenancy.ParseSecretKey(c.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tenancy.SecretKeyEnv, err)
		}
		cfg.SecretKey = key
	}
	return tenancy.Open(ctx, cfg)
}

// lookupEnv resolves the env:VAR references of dedicated databases from the
// process environment.
func lookupEnv(name string) (string, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return "", fmt.Errorf("environment variable %s is not set", name)
	}
	return v, nil
}

func version() string {
	v := "patchdesk (devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = "patchdesk " + bi.Main.Version
		}
		v += " " + bi.GoVersion
	}
	return v
}
