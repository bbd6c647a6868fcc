package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/patchdesk/patchdesk/tenancy"
)

func migrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	c := bindConfig(fs)
	parallel := fs.Int("parallel", 4, "tenant schemas migrated at once")
	asJSON := fs.Bool("json", false, "print one JSON object per tenant")
	only := fs.String("tenants", "", "comma-separated slugs to migrate (default: all)")
	if _, err := parse(fs, args, c); err != nil {
		return err
	}
	if *parallel < 1 {
		return fmt.Errorf("--parallel must be at least 1")
	}
	log := newLogger(c)
	start := time.Now()
	reg, err := openRegistry(ctx, c, log)
	if err != nil {
		return err
	}
	defer reg.Close()
	var slugs []string
	if *only != "" {
		slugs = strings.Split(*only, ",")
	}
	enc := json.NewEncoder(os.Stdout)
	n := 0
	err = reg.MigrateTenants(ctx, tenancy.MigrateOptions{Parallel: *parallel, Slugs: slugs}, func(r tenancy.MigrateResult) {
		n++
		if *asJSON {
			_ = enc.Encode(r)
			return
		}
		status := "ok"
		if !r.OK() {
			status = "FAILED: " + r.Error
		}
		fmt.Printf("%-40s %s v%d -> v%d %s (%s)\n", r.Slug, r.Schema, r.From, r.To, status, r.Duration.Round(time.Millisecond))
	})
	if !*asJSON {
		fmt.Printf("migrated %d tenants to v%d in %s\n", n, reg.LatestVersion(), time.Since(start).Round(time.Millisecond))
	}
	return err
}
