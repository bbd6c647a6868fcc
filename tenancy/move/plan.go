package move

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/patchdesk/patchdesk/tenancy"
)

// copyBytesPerSecond is the initial copy's pace the dry run assumes (pages
// of the source's tables and indexes per second, as measured on the 2-core
// development machine with the benchmark's tenant): an order of magnitude,
// not a promise.
const copyBytesPerSecond = 20 << 20

// Plan is what a dry run reports: what would be moved, roughly how long the
// copy would take, and whether each prerequisite holds.
type Plan struct {
	Slug   string `json:"slug"`
	From   string `json:"from_database"`
	To     string `json:"to_database"`
	Tables int    `json:"tables"`
	// Rows is the source's row estimate (statistics), Bytes the size of the
	// tenant's tables and indexes there.
	Rows          int64         `json:"rows"`
	Bytes         int64         `json:"bytes"`
	EstimatedCopy time.Duration `json:"estimated_copy_ns"`
	Checks        []Check       `json:"checks"`
}

// Check is one prerequisite of a move.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Ready reports whether every prerequisite holds.
func (p *Plan) Ready() bool {
	for _, c := range p.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

func (p *Plan) check(name string, ok bool, format string, args ...any) {
	p.Checks = append(p.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// Target names where a dry run would move a tenant: a registered database,
// or a URL (or env:VAR) not registered yet.
type Target struct {
	DatabaseID string
	URL        string
}

// DryRun reports what moving the tenant to target would do, changing
// nothing: no control row, no database registered, nothing created in
// either database.
func (mv *Mover) DryRun(ctx context.Context, slug string, target Target) (*Plan, error) {
	t, err := mv.reg.Lookup(ctx, slug)
	if err != nil {
		return nil, err
	}
	p := &Plan{Slug: slug, From: t.DatabaseID, To: target.DatabaseID}
	if target.DatabaseID == "" {
		p.To = "(" + target.URL + ")"
	}
	p.check("schema version", t.SchemaVersion == mv.reg.LatestVersion(), "tenant schema at %d, this binary's latest %d", t.SchemaVersion, mv.reg.LatestVersion())
	var unfinished *int64
	if err := mv.op.Control().QueryRow(ctx, `SELECT max(id) FROM control.tenant_moves WHERE tenant_id = $1 AND state NOT IN ('done', 'aborted')`,
		t.ID).Scan(&unfinished); err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	if unfinished != nil {
		p.check("no unfinished move", false, "move %d is unfinished: resume or abort it", *unfinished)
	} else {
		p.check("no unfinished move", true, "none")
	}
	src, release, err := mv.op.Pool(ctx, t.DatabaseID)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := sourcePlan(ctx, p, src, t); err != nil {
		return nil, err
	}
	var tgt *pgxpool.Pool
	switch {
	case target.DatabaseID == t.DatabaseID:
		p.check("target", false, "the tenant is already in %s", t.DatabaseID)
		return p, nil
	case target.DatabaseID != "":
		pool, release, err := mv.op.Pool(ctx, target.DatabaseID)
		if err != nil {
			p.check("target reachable", false, "%v", err)
			return p, nil
		}
		defer release()
		tgt = pool
	default:
		dsn, err := mv.op.ResolveURL(target.URL)
		if err == nil {
			tgt, err = pgxpool.New(ctx, dsn)
		}
		if err == nil {
			defer tgt.Close()
			err = tgt.Ping(ctx)
		}
		if err != nil {
			p.check("target reachable", false, "%v", err)
			return p, nil
		}
	}
	p.check("target reachable", true, "yes")
	return p, targetPlan(ctx, p, tgt, t)
}

// sourcePlan sizes the tenant and checks what the source must allow:
// logical decoding, a free slot and WAL sender, and the mover's login
// privileges (REPLICATION for the slot, ownership of the tables for the
// publication).
func sourcePlan(ctx context.Context, p *Plan, src *pgxpool.Pool, t *tenancy.Tenant) error {
	err := src.QueryRow(ctx, `SELECT count(*) FILTER (WHERE c.relname <> $2),
			coalesce(sum(greatest(coalesce(s.n_live_tup, 0), c.reltuples::bigint, 0)), 0)::bigint,
			coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
		WHERE n.nspname = $1 AND c.relkind = 'r'`, t.Schema, markerTable).Scan(&p.Tables, &p.Rows, &p.Bytes)
	if err != nil {
		return fmt.Errorf("dry run: size: %w", err)
	}
	p.EstimatedCopy = (time.Duration(p.Bytes) * time.Second / copyBytesPerSecond).Round(time.Second)
	var walLevel string
	var slotsFree, sendersFree int
	var super, replication, ownsAll bool
	err = src.QueryRow(ctx, `SELECT current_setting('wal_level'),
			current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
			current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication),
			r.rolsuper, r.rolreplication,
			NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT pg_has_role(c.relowner, 'USAGE'))
		FROM pg_roles r WHERE r.rolname = current_user`, t.Schema).Scan(&walLevel, &slotsFree, &sendersFree, &super, &replication, &ownsAll)
	if err != nil {
		return fmt.Errorf("dry run: source settings: %w", err)
	}
	p.check("source wal_level", walLevel == "logical", "wal_level = %s (logical needed; a restart applies it)", walLevel)
	p.check("source replication slot", slotsFree > 0, "%d free of max_replication_slots", slotsFree)
	p.check("source wal sender", sendersFree > 0, "%d free of max_wal_senders", sendersFree)
	p.check("source REPLICATION", super || replication, "superuser %t, REPLICATION %t (creates the slot; the subscription connects as this login)", super, replication)
	p.check("source owns tenant tables", super || ownsAll, "publication and change-log triggers need the tables' owner")
	return nil
}

// targetPlan checks what the target must allow: creating a subscription
// (PostgreSQL 15: superuser), enough logical replication workers, and no
// copy of the tenant there already.
func targetPlan(ctx context.Context, p *Plan, tgt *pgxpool.Pool, t *tenancy.Tenant) error {
	var version, workers int
	var super, schemaThere bool
	err := tgt.QueryRow(ctx, `SELECT current_setting('server_version_num')::int,
			current_setting('max_logical_replication_workers')::int, r.rolsuper,
			EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)
		FROM pg_roles r WHERE r.rolname = current_user`, t.Schema).Scan(&version, &workers, &super, &schemaThere)
	if errors.Is(err, pgx.ErrNoRows) {
		return errors.New("dry run: target: current user not in pg_roles")
	}
	if err != nil {
		return fmt.Errorf("dry run: target settings: %w", err)
	}
	p.check("target subscription rights", super, "superuser %t (PostgreSQL %d needs one to CREATE SUBSCRIPTION)", super, version/10000)
	p.check("target replication workers", workers >= 2, "max_logical_replication_workers = %d (the apply worker and at least one table copy)", workers)
	// A leftover copy (an aborted earlier move) is replaced: not a blocker.
	p.check("target copy of the tenant", true, "schema %s present: %t (replaced when present)", t.Schema, schemaThere)
	return nil
}
