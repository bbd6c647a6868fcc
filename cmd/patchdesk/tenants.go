package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/attachments"
	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/archive"
	"github.com/patchdesk/patchdesk/tenancy/move"
)

const tenantsUsage = `usage: patchdesk tenants list [--json]
       patchdesk tenants create SLUG --owner-email EMAIL --owner-password PASSWORD [--name NAME] [--database-url URL|env:VAR]
       patchdesk tenants move SLUG --to-database-url URL|env:VAR [--retain 24h]
       patchdesk tenants move SLUG --to shared [--retain 24h]
       patchdesk tenants move --resume ID | --abort ID
       patchdesk tenants suspend|resume SLUG
       patchdesk tenants export SLUG --out FILE
       patchdesk tenants import FILE --slug SLUG [--name NAME]
       patchdesk tenants delete SLUG --confirm SLUG
       patchdesk tenants gc          (drop retired copies whose retention passed)

A --database-url given as a URL is stored encrypted with the secret key
(--secret-key or PATCHDESK_SECRET_KEY: 32 bytes, base64); as env:VAR, only the
variable's name is stored and every process resolves it from its environment.`

// tenantFlags are the flags of every tenants subcommand.
type tenantFlags struct {
	asJSON                         bool
	name, ownerEmail, ownerPass    string
	databaseURL, toDatabaseURL, to string
	resume, abort                  int64
	retain                         time.Duration
	out, slug, confirm             string
	// mailDir is notify's mail spool, emptied of a deleted tenant's mail.
	mailDir string
	// attachments names the blob store the application is built with.
	attachments attachments.Config
}

func tenants(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand\n%s", tenantsUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("tenants "+sub, flag.ContinueOnError)
	var c *config
	var f tenantFlags
	if sub == "create" {
		// Here --database-url names the tenant's dedicated database.
		c = bindConfigOnly(fs)
		fs.StringVar(&f.databaseURL, "database-url", "", "create the tenant in this dedicated database (URL or env:VAR)")
	} else {
		c = bindConfig(fs)
	}
	fs.BoolVar(&f.asJSON, "json", false, "JSON output (list)")
	fs.StringVar(&f.name, "name", "", "display name (create, import)")
	fs.StringVar(&f.ownerEmail, "owner-email", "", "first owner's email (create)")
	fs.StringVar(&f.ownerPass, "owner-password", "", "first owner's password (create)")
	fs.StringVar(&f.toDatabaseURL, "to-database-url", "", "move to this dedicated database (URL or env:VAR)")
	fs.StringVar(&f.to, "to", "", "move to a tier: shared")
	fs.Int64Var(&f.resume, "resume", 0, "resume move ID")
	fs.Int64Var(&f.abort, "abort", 0, "abort move ID")
	fs.DurationVar(&f.retain, "retain", 24*time.Hour, "keep the retired copy this long (move)")
	fs.StringVar(&f.out, "out", "", "archive file (export)")
	fs.StringVar(&f.slug, "slug", "", "slug of the imported tenant (import)")
	fs.StringVar(&f.confirm, "confirm", "", "repeat the slug to confirm (delete)")
	positional, err := parse(fs, args[1:], c)
	if err != nil {
		return err
	}
	arg := ""
	if len(positional) > 0 {
		arg = positional[0]
	}
	log := newLogger(c)
	reg, err := openRegistry(ctx, c, log)
	if err != nil {
		return err
	}
	defer reg.Close()
	f.mailDir = filepath.Join(c.DataDir, "mail")
	if f.attachments, err = c.attachments(); err != nil {
		return err
	}
	return runTenants(ctx, reg, log, sub, arg, f)
}

func runTenants(ctx context.Context, reg *tenancy.Registry, log *slog.Logger, sub, arg string, f tenantFlags) error {
	need := func() error {
		if arg == "" {
			return fmt.Errorf("missing SLUG\n%s", tenantsUsage)
		}
		return nil
	}
	switch sub {
	case "list":
		return listTenants(ctx, reg, log, f.asJSON)
	case "create":
		if err := need(); err != nil {
			return err
		}
		return createTenant(ctx, reg, log, arg, f)
	case "move":
		return moveTenant(ctx, reg, log, arg, f)
	case "suspend", "resume":
		if err := need(); err != nil {
			return err
		}
		status := map[string]string{"suspend": tenancy.StatusSuspended, "resume": tenancy.StatusActive}[sub]
		t, err := reg.SetStatus(ctx, arg, status)
		if err != nil {
			return err
		}
		fmt.Printf("%s is now %s\n", t.Slug, t.Status)
		return nil
	case "export":
		if err := need(); err != nil {
			return err
		}
		return exportTenant(ctx, reg, arg, f.out)
	case "import":
		if arg == "" || f.slug == "" {
			return fmt.Errorf("usage: patchdesk tenants import FILE --slug SLUG")
		}
		if err := members.ValidateSlug(f.slug); err != nil {
			return err
		}
		file, err := os.Open(arg)
		if err != nil {
			return err
		}
		defer file.Close()
		t, err := archive.Import(ctx, reg, f.slug, f.name, file)
		if err != nil {
			return err
		}
		fmt.Printf("imported %s as %s (%s)\n", arg, t.Slug, t.ID)
		return nil
	case "delete":
		if err := need(); err != nil {
			return err
		}
		if f.confirm != arg {
			return fmt.Errorf("refusing to delete %s: repeat the slug with --confirm %s", arg, arg)
		}
		return deleteTenant(ctx, reg, arg, f.mailDir)
	case "gc":
		n, err := reg.DropRetired(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("dropped %d retired copies\n", n)
		return nil
	}
	return fmt.Errorf("unknown subcommand %q\n%s", sub, tenantsUsage)
}

func listTenants(ctx context.Context, reg *tenancy.Registry, log *slog.Logger, asJSON bool) error {
	ts, err := reg.List(ctx)
	if err != nil {
		return err
	}
	type row struct {
		*tenancy.Tenant
		SizeBytes *int64 `json:"size_bytes"` // null when its database cannot be reached
	}
	rows := make([]row, len(ts))
	for i, t := range ts {
		rows[i].Tenant = t
		n, err := reg.Size(ctx, t)
		if err != nil {
			log.WarnContext(ctx, "tenant size unknown", "tenant", t.Slug, "database", t.DatabaseID, "err", err)
			continue
		}
		rows[i].SizeBytes = &n
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(rows)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SLUG\tTIER\tSTATUS\tDATABASE\tSCHEMA\tVERSION\tSIZE\tCREATED")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Slug, r.Tier, r.Status, r.DatabaseID, r.Schema, r.SchemaVersion,
			humanBytes(r.SizeBytes), r.CreatedAt.UTC().Format("2006-01-02 15:04"))
	}
	return w.Flush()
}

func humanBytes(p *int64) string {
	if p == nil {
		return "?"
	}
	n := *p
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}

func createTenant(ctx context.Context, reg *tenancy.Registry, log *slog.Logger, slug string, f tenantFlags) error {
	if f.ownerEmail == "" || f.ownerPass == "" {
		return fmt.Errorf("--owner-email and --owner-password are required\n%s", tenantsUsage)
	}
	if err := members.ValidateSlug(slug); err != nil {
		return err
	}
	dbID := ""
	if f.databaseURL != "" {
		dbID = "dedicated-" + slug
		if err := reg.AddDatabase(ctx, dbID, tenancy.TierDedicated, f.databaseURL); err != nil {
			return err
		}
	}
	app, err := api.New(ctx, reg, log, obs.NewMetrics(), api.Config{Attachments: f.attachments})
	if err != nil {
		return err
	}
	res, err := app.Members.Signup(ctx, members.SignupParams{Slug: slug, Name: cmp.Or(f.name, slug), AdminEmail: f.ownerEmail,
		AdminName: "Owner", Password: f.ownerPass, DatabaseID: dbID})
	if err != nil {
		return err
	}
	fmt.Printf("created %s (%s, %s tier) in %s.%s\n", res.Tenant.Slug, res.Tenant.ID, res.Tenant.Tier, res.Tenant.DatabaseID, res.Tenant.Schema)
	return nil
}

func moveTenant(ctx context.Context, reg *tenancy.Registry, log *slog.Logger, slug string, f tenantFlags) error {
	mv := move.New(reg)
	opts := move.Options{Retain: f.retain, Log: log}
	if f.retain <= 0 {
		opts.Retain = time.Nanosecond // "0s": retire now (a zero Retain means the default)
	}
	var (
		m   *move.Move
		err error
	)
	switch {
	case f.abort != 0:
		m, err = mv.Abort(ctx, f.abort)
	case f.resume != 0:
		m, err = mv.Resume(ctx, f.resume, opts)
	case slug == "":
		return fmt.Errorf("missing SLUG\n%s", tenantsUsage)
	case f.toDatabaseURL != "":
		id := "dedicated-" + slug
		if err := reg.AddDatabase(ctx, id, tenancy.TierDedicated, f.toDatabaseURL); err != nil {
			return err
		}
		m, err = mv.Start(ctx, slug, id, opts)
	case f.to == tenancy.TierShared:
		var id string
		if id, err = reg.SharedDatabase(ctx); err == nil {
			m, err = mv.Start(ctx, slug, id, opts)
		}
	default:
		return fmt.Errorf("say where: --to-database-url URL or --to shared\n%s", tenantsUsage)
	}
	if m != nil {
		freeze := "-"
		if m.FreezeMS != nil {
			freeze = strconv.Itoa(*m.FreezeMS) + " ms"
		}
		fmt.Printf("move %d of %s: %s → %s, state %s, write freeze %s\n", m.ID, m.Slug, m.From, m.To, m.State, freeze)
		if err != nil {
			fmt.Printf("resume with: patchdesk tenants move --resume %d   (or --abort %d)\n", m.ID, m.ID)
		}
	}
	return err
}

func exportTenant(ctx context.Context, reg *tenancy.Registry, slug, out string) error {
	if out == "" {
		return fmt.Errorf("--out FILE is required")
	}
	tmp := out + ".partial"
	file, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := archive.Export(ctx, reg, slug, file); err != nil {
		file.Close()
		os.Remove(tmp)
		return err
	}
	if err := file.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Printf("exported %s to %s\n", slug, out)
	return nil
}

// deleteTenant drops the tenant, then its mail spool (ADR 0007 lists what
// remains elsewhere, and for how long).
func deleteTenant(ctx context.Context, reg *tenancy.Registry, slug, mailDir string) error {
	t, err := reg.Lookup(ctx, slug)
	if err != nil {
		return err
	}
	if err := reg.Delete(ctx, slug); err != nil {
		return err
	}
	if err := notify.RemoveSpool(mailDir, t.ID); err != nil {
		return fmt.Errorf("deleted %s, but: %w", slug, err)
	}
	fmt.Printf("deleted %s\n", slug)
	return nil
}
