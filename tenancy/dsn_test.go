package tenancy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestDatabaseReferences: DSNs of dedicated databases come from the
// registry's configuration, never from the process environment: env:VAR
// through the injected resolver, URLs encrypted with the configured key.
func TestDatabaseReferences(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	control, dedicated := tenancytest.NewDatabase(t), tenancytest.NewDatabase(t)
	open := func(cfg tenancy.Config) *tenancy.Registry {
		t.Helper()
		cfg.DatabaseURL, cfg.MaxConns = control, 4
		reg, err := tenancy.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(reg.Close)
		return reg
	}
	bare := open(tenancy.Config{})
	if err := bare.AddDatabase(ctx, "plain", tenancy.TierDedicated, dedicated); err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Fatalf("a URL without a secret key: %v, want a refusal naming the key", err)
	}
	if err := bare.AddDatabase(ctx, "by-env", tenancy.TierDedicated, "env:DEDICATED_URL"); err == nil {
		t.Fatal("an env:VAR reference without a resolver was accepted")
	}
	if _, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: control, SecretKey: []byte("short")}); err == nil {
		t.Fatal("a 5-byte secret key was accepted")
	}

	withEnv := open(tenancy.Config{ResolveEnv: envOf(map[string]string{"DEDICATED_URL": dedicated})})
	if err := withEnv.AddDatabase(ctx, "by-env", tenancy.TierDedicated, "env:DEDICATED_URL"); err != nil {
		t.Fatal(err)
	}
	if _, err := withEnv.Provision(ctx, tenancy.ProvisionParams{Slug: "envco", Name: "x", DatabaseID: "by-env"}); err != nil {
		t.Fatal(err)
	}

	keyed := open(tenancy.Config{SecretKey: tenancytest.SecretKey})
	if err := keyed.AddDatabase(ctx, "sealed", tenancy.TierDedicated, dedicated); err != nil {
		t.Fatal(err)
	}
	tn, err := keyed.Provision(ctx, tenancy.ProvisionParams{Slug: "sealedco", Name: "x", DatabaseID: "sealed"})
	if err != nil {
		t.Fatal(err)
	}
	other := open(tenancy.Config{SecretKey: []byte("another-key-of-thirty-two-bytes!")})
	err = other.Tx(ctx, tn, func(context.Context, tenancy.Tx) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "decrypt") {
		t.Fatalf("a registry with another key reached the sealed database: %v", err)
	}
}
