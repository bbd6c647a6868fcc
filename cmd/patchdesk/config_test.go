package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// TestMetricsFlags: the dedicated metrics listener is on loopback by
// default, "" or "off" disable it (flag or environment), and the metrics
// token never reaches the start-up log line.
func TestMetricsFlags(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		addr      string
		explicit  bool
		token     string
		forwarded bool
	}{
		{name: "defaults", addr: "127.0.0.1:9091"},
		{name: "flag off", args: []string{"--metrics-addr", "off"}, addr: "off", explicit: true},
		{name: "env empty disables", env: map[string]string{"PATCHDESK_METRICS_ADDR": ""}, addr: "", explicit: true},
		{name: "env address", env: map[string]string{"PATCHDESK_METRICS_ADDR": "127.0.0.1:9999"}, addr: "127.0.0.1:9999", explicit: true},
		{name: "token and proxy", env: map[string]string{"PATCHDESK_METRICS_TOKEN": "s3cret-token", "PATCHDESK_TRUST_FORWARDED_PROTO": "true"},
			addr: "127.0.0.1:9091", token: "s3cret-token", forwarded: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"PATCHDESK_METRICS_ADDR", "PATCHDESK_METRICS_TOKEN", "PATCHDESK_TRUST_FORWARDED_PROTO"} {
				t.Setenv(k, "x") // t.Setenv restores the variable afterwards
				if v, ok := tc.env[k]; ok {
					t.Setenv(k, v)
				} else {
					unsetenv(t, k)
				}
			}
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c := bindConfig(fs)
			if _, err := parse(fs, tc.args, c); err != nil {
				t.Fatal(err)
			}
			if c.MetricsAddr != tc.addr || metricsAddrExplicit(fs) != tc.explicit || c.MetricsToken != tc.token || c.TrustForwardedProto != tc.forwarded {
				t.Fatalf("config %+v explicit=%v", c, metricsAddrExplicit(fs))
			}
			if tc.token != "" && strings.Contains(fmt.Sprintf("%+v", c.Redacted()), tc.token) {
				t.Fatal("Redacted keeps the metrics token")
			}
		})
	}
}

// unsetenv removes k for the rest of the test (after t.Setenv registered
// its restoration).
func unsetenv(t *testing.T, k string) {
	t.Helper()
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}

// TestRedactedHidesSecrets: the configuration logged at start names no
// database password, metrics token or secret key.
func TestRedactedHidesSecrets(t *testing.T) {
	t.Parallel()
	c := config{
		DatabaseURL:  "postgres://app:db-pass-7Q@127.0.0.1:5432/patchdesk",
		MetricsToken: "metrics-token-7Q",
		SecretKey:    "c2VjcmV0LWtleS03UQ==",
	}
	logged := fmt.Sprintf("%+v", c.Redacted())
	for _, secret := range []string{"db-pass-7Q", c.MetricsToken, c.SecretKey} {
		if strings.Contains(logged, secret) {
			t.Errorf("logged configuration shows %q: %s", secret, logged)
		}
	}
	if !strings.Contains(logged, "app:xxxxx@127.0.0.1") {
		t.Errorf("the redacted database URL lost its user and host: %s", logged)
	}
}
