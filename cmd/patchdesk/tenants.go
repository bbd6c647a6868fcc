package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/tenancy"
)

const tenantsUsage = `usage: patchdesk tenants list [--json]
       patchdesk tenants create SLUG --owner-email EMAIL --owner-password PASSWORD [--name NAME]
       patchdesk tenants suspend SLUG
       patchdesk tenants resume SLUG`

func tenants(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand\n%s", tenantsUsage)
	}
	fs := flag.NewFlagSet("tenants "+args[0], flag.ContinueOnError)
	c := bindConfig(fs)
	asJSON := fs.Bool("json", false, "JSON output (list)")
	name := fs.String("name", "", "display name (create; default the slug)")
	ownerEmail := fs.String("owner-email", "", "first owner's email (create)")
	ownerPassword := fs.String("owner-password", "", "first owner's password (create)")
	sub := args[0]
	positional, err := parse(fs, args[1:], c)
	if err != nil {
		return err
	}
	slug := ""
	if len(positional) > 0 {
		slug = positional[0]
	}
	if sub != "list" && slug == "" {
		return fmt.Errorf("missing SLUG\n%s", tenantsUsage)
	}
	log := newLogger(c)
	reg, err := openRegistry(ctx, c, log)
	if err != nil {
		return err
	}
	defer reg.Close()
	switch sub {
	case "list":
		return listTenants(ctx, reg, *asJSON)
	case "create":
		return createTenant(ctx, reg, slug, *name, *ownerEmail, *ownerPassword)
	case "suspend", "resume":
		status := map[string]string{"suspend": tenancy.StatusSuspended, "resume": tenancy.StatusActive}[sub]
		t, err := reg.SetStatus(ctx, slug, status)
		if err != nil {
			return err
		}
		fmt.Printf("%s is now %s\n", t.Slug, t.Status)
		return nil
	}
	return fmt.Errorf("unknown subcommand %q\n%s", sub, tenantsUsage)
}

func listTenants(ctx context.Context, reg *tenancy.Registry, asJSON bool) error {
	ts, err := reg.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(ts)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SLUG\tTIER\tSTATUS\tDATABASE\tSCHEMA\tVERSION\tCREATED")
	for _, t := range ts {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.Slug, t.Tier, t.Status, t.DatabaseID, t.Schema, t.SchemaVersion,
			t.CreatedAt.UTC().Format("2006-01-02 15:04"))
	}
	return w.Flush()
}

func createTenant(ctx context.Context, reg *tenancy.Registry, slug, name, email, password string) error {
	if email == "" || password == "" {
		return fmt.Errorf("--owner-email and --owner-password are required\n%s", tenantsUsage)
	}
	app, err := api.New(reg, slog.Default(), obs.NewMetrics(), api.Config{})
	if err != nil {
		return err
	}
	if name == "" {
		name = slug
	}
	res, err := app.Members.Signup(ctx, members.SignupParams{Slug: slug, Name: name, AdminEmail: email, AdminName: "Owner", Password: password})
	if err != nil {
		return err
	}
	fmt.Printf("created %s (%s) in %s.%s\n", res.Tenant.Slug, res.Tenant.ID, res.Tenant.DatabaseID, res.Tenant.Schema)
	return nil
}
