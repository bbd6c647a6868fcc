package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
       patchdesk tenants move SLUG --to-database-url URL|env:VAR [--retain 24h] [--dry-run]
       patchdesk tenants move SLUG --to shared [--retain 24h] [--dry-run]
       patchdesk tenants move --resume ID | --abort ID
       patchdesk tenants moves [--json] [--limit 50]   (moves in progress and past, with phase timings)
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
	dryRun                         bool
	limit                          int
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
	fs.BoolVar(&f.asJSON, "json", false, "JSON output (list, moves, move --dry-run)")
	fs.StringVar(&f.name, "name", "", "display name (create, import)")
	fs.StringVar(&f.ownerEmail, "owner-email", "", "first owner's email (create)")
	fs.StringVar(&f.ownerPass, "owner-password", "", "first owner's password (create)")
	fs.StringVar(&f.toDatabaseURL, "to-database-url", "", "move to this dedicated database (URL or env:VAR)")
	fs.StringVar(&f.to, "to", "", "move to a tier: shared")
	fs.Int64Var(&f.resume, "resume", 0, "resume move ID")
	fs.Int64Var(&f.abort, "abort", 0, "abort move ID")
	fs.DurationVar(&f.retain, "retain", 24*time.Hour, "keep the retired copy this long (move)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "report what the move would do and whether it can, changing nothing (move)")
	fs.IntVar(&f.limit, "limit", 50, "how many moves to list, newest first (moves)")
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
		if f.dryRun {
			return planMove(ctx, reg, arg, f)
		}
		return moveTenant(ctx, reg, log, arg, f)
	case "moves":
		return listMoves(ctx, reg, f)
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
	opts := move.Options{Retain: f.retain, Log: log, Progress: printProgress(os.Stderr)}
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

// printProgress writes a move's progress as lines an operator can follow:
// the phase, during the initial copy rows copied of the estimate and the
// time left at this pace, and the replication lag.
func printProgress(w io.Writer) func(move.Progress) {
	return func(p move.Progress) {
		line := fmt.Sprintf("move %d (%s): %s", p.Move, p.Slug, p.Phase)
		if p.RowsTotal > 0 {
			line += fmt.Sprintf(", %d of ~%d rows copied (%.0f%%)", p.RowsCopied, p.RowsTotal, 100*float64(p.RowsCopied)/float64(p.RowsTotal))
		}
		if p.ETA > 0 {
			line += ", about " + p.ETA.String() + " left"
		}
		if p.LagBytes != nil {
			line += ", lag " + humanBytes(p.LagBytes)
		}
		fmt.Fprintln(w, line)
	}
}

// planMove is `tenants move --dry-run`: the plan, and an error (a non-zero
// exit) when a prerequisite fails.
func planMove(ctx context.Context, reg *tenancy.Registry, slug string, f tenantFlags) error {
	if slug == "" {
		return fmt.Errorf("missing SLUG\n%s", tenantsUsage)
	}
	var target move.Target
	switch {
	case f.toDatabaseURL != "":
		// A database this move would register is used when it already is.
		target.URL = f.toDatabaseURL
		ids, err := reg.Databases(ctx)
		if err != nil {
			return err
		}
		if slices.Contains(ids, "dedicated-"+slug) {
			target = move.Target{DatabaseID: "dedicated-" + slug}
		}
	case f.to == tenancy.TierShared:
		id, err := reg.SharedDatabase(ctx)
		if err != nil {
			return err
		}
		target.DatabaseID = id
	default:
		return fmt.Errorf("say where: --to-database-url URL or --to shared\n%s", tenantsUsage)
	}
	p, err := move.New(reg).DryRun(ctx, slug, target)
	if err != nil {
		return err
	}
	if f.asJSON {
		if err := json.NewEncoder(os.Stdout).Encode(p); err != nil {
			return err
		}
	} else {
		fmt.Printf("dry run: move %s from %s to %s\n", p.Slug, p.From, p.To)
		fmt.Printf("  %d tables, ~%d rows, %s; initial copy about %s (writes continue meanwhile)\n",
			p.Tables, p.Rows, humanBytes(&p.Bytes), p.EstimatedCopy)
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		for _, c := range p.Checks {
			mark := "ok"
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\n", mark, c.Name, c.Detail)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if !p.Ready() {
		return errors.New("dry run: a prerequisite of the move does not hold")
	}
	if !f.asJSON {
		fmt.Println("nothing was changed; run again without --dry-run to move")
	}
	return nil
}

// listMoves is `tenants moves`: in-progress and past moves, newest first,
// with how long each step and the parts of the freeze took.
func listMoves(ctx context.Context, reg *tenancy.Registry, f tenantFlags) error {
	moves, err := move.New(reg).List(ctx, f.limit)
	if err != nil {
		return err
	}
	if f.asJSON {
		return json.NewEncoder(os.Stdout).Encode(moves)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSLUG\tFROM\tTO\tSTATE\tSTARTED\tTOOK\tFREEZE\tPHASES\tERROR")
	for _, m := range moves {
		freeze := "-"
		if m.FreezeMS != nil {
			freeze = strconv.Itoa(*m.FreezeMS) + " ms"
		}
		took := m.UpdatedAt.Sub(m.CreatedAt).Round(time.Second).String()
		if m.State != move.Done && m.State != move.Aborted {
			took = time.Since(m.CreatedAt).Round(time.Second).String() + " so far"
		}
		errText := ""
		if m.Error != nil {
			errText = *m.Error
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Slug, m.From, m.To, m.State,
			m.CreatedAt.UTC().Format("2006-01-02 15:04:05"), took, freeze, formatPhases(m.Phases), errText)
	}
	return w.Flush()
}

// formatPhases lists step timings in the order of a move, then the parts
// of the freeze.
func formatPhases(phases map[string]int64) string {
	order := []string{"prepare target", "start replication", "initial copy", "change log pause", "verify baseline", "switch",
		"freeze.lock", "freeze.outbox", "freeze.catch-up", "freeze.verify", "freeze.sequences", "freeze.drop target log",
		"freeze.seal", "freeze.commit", "freeze.flip", "clean up"}
	var out []string
	for _, name := range order {
		if ms, ok := phases[name]; ok {
			out = append(out, fmt.Sprintf("%s %dms", name, ms))
		}
	}
	return strings.Join(out, ", ")
}
