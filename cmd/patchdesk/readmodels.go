package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/obs"
)

// readModel rebuilds one tenant's search index or report aggregates from the
// source tables, without downtime (one transaction; readers see the old rows
// until it commits).
func readModel(ctx context.Context, name string, args []string) error {
	const usage = "usage: patchdesk search reindex SLUG | patchdesk reports rebuild SLUG"
	want := map[string]string{"search": "reindex", "reports": "rebuild"}[name]
	if len(args) == 0 || args[0] != want {
		return fmt.Errorf("%s", usage)
	}
	fs := flag.NewFlagSet(name+" "+want, flag.ContinueOnError)
	c := bindConfig(fs)
	positional, err := parse(fs, args[1:], c)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return fmt.Errorf("missing SLUG\n%s", usage)
	}
	log := newLogger(c)
	reg, err := openRegistry(ctx, c, log)
	if err != nil {
		return err
	}
	defer reg.Close()
	t, err := reg.Lookup(ctx, positional[0])
	if err != nil {
		return err
	}
	acfg, err := c.attachments()
	if err != nil {
		return err
	}
	app, err := api.New(ctx, reg, log, obs.NewMetrics(), api.Config{Attachments: acfg})
	if err != nil {
		return err
	}
	start := time.Now()
	var n int
	if name == "search" {
		n, err = app.Search.Reindex(ctx, t)
	} else {
		n, err = app.Reports.Rebuild(ctx, t)
	}
	if err != nil {
		return err
	}
	fmt.Printf("%s %s of %s: %d items in %s\n", name, want, t.Slug, n, time.Since(start).Round(time.Millisecond))
	return nil
}
