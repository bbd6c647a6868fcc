package move

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// prepareTarget builds an empty copy of the tenant's schema in the target:
// role, schema, migrations at the same version, tables emptied (the initial
// copy brings their rows), and the marker table.
func (mv *Mover) prepareTarget(ctx context.Context, e *moveEnv) error {
	if err := dropSubscription(ctx, e.tgt, e.src, e.m.name()); err != nil {
		return err
	}
	if err := pgx.BeginFunc(ctx, e.tgt, func(tx pgx.Tx) error { return dropChangeLog(ctx, tx, e.m) }); err != nil {
		return err
	}
	if _, err := e.tgt.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{e.t.Schema}.Sanitize()+` CASCADE`); err != nil {
		return fmt.Errorf("clear target schema: %w", err)
	}
	if err := mv.op.BuildSchema(ctx, e.tgt, e.t); err != nil {
		return fmt.Errorf("build target schema: %w", err)
	}
	schema, role := pgx.Identifier{e.t.Schema}.Sanitize(), pgx.Identifier{e.t.Role}.Sanitize()
	return pgx.BeginFunc(ctx, e.tgt, func(tx pgx.Tx) error {
		// Replica mode: the append-only triggers must not stop this TRUNCATE.
		stmts := []string{
			`SET LOCAL session_replication_role = replica`,
			`REVOKE ALL ON ` + pgx.Identifier{e.t.Schema, "goose_db_version"}.Sanitize() + ` FROM ` + role,
			`TRUNCATE ` + e.tableList(),
			`CREATE TABLE ` + schema + `.` + markerTable + ` (id int PRIMARY KEY, token uuid NOT NULL)`,
			`REVOKE ALL ON ` + schema + `.` + markerTable + ` FROM ` + role,
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("prepare target: %w", err)
			}
		}
		return nil
	})
}

// startReplication publishes the tenant's schema from the source and
// subscribes the target to it. The slot is created separately because a
// subscription cannot create its slot on the server it runs on.
func (mv *Mover) startReplication(ctx context.Context, e *moveEnv) error {
	name := e.m.name()
	schema, role := pgx.Identifier{e.t.Schema}.Sanitize(), pgx.Identifier{e.t.Role}.Sanitize()
	src := []string{
		`CREATE TABLE IF NOT EXISTS ` + schema + `.` + markerTable + ` (id int PRIMARY KEY, token uuid NOT NULL)`,
		`REVOKE ALL ON ` + schema + `.` + markerTable + ` FROM ` + role,
	}
	for _, s := range src {
		if _, err := e.src.Exec(ctx, s); err != nil {
			return fmt.Errorf("prepare source: %w", err)
		}
	}
	var exists bool
	if err := e.src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("find publication: %w", err)
	}
	if !exists {
		// A list of tables rather than FOR TABLES IN SCHEMA, which on
		// PostgreSQL 15 needs a superuser: the tables' owner may publish them.
		if _, err := e.src.Exec(ctx, `CREATE PUBLICATION `+name+` FOR TABLE `+e.tableList()+`, `+schema+`.`+markerTable); err != nil {
			return fmt.Errorf("create publication: %w", err)
		}
	}
	if err := e.src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("find slot: %w", err)
	}
	if !exists {
		if _, err := e.src.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, name); err != nil {
			return fmt.Errorf("create replication slot: %w", err)
		}
	}
	if err := e.tgt.QueryRow(ctx, subscriptionExists, name).Scan(&exists); err != nil {
		return fmt.Errorf("find subscription: %w", err)
	}
	if !exists {
		sql, err := createSubscriptionSQL(name, e.src.Config().ConnString(), "copy_data = true")
		if err != nil {
			return err
		}
		if _, err := e.tgt.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create subscription: %w", err)
		}
	}
	return nil
}

// createSubscriptionSQL is the CREATE SUBSCRIPTION of a move (name is made
// of hex digits and an id, never user input). The connection string comes
// from the source pool's DSN, rebuilt as a URL by net/url, so that any
// character of a password is percent-encoded for libpq, and then quoted as
// an SQL string literal (quotes doubled; standard_conforming_strings keeps
// backslashes literal). CREATE SUBSCRIPTION takes no bind parameters.
func createSubscriptionSQL(name, srcDSN, with string) (string, error) {
	conninfo, err := conninfoURL(srcDSN)
	if err != nil {
		return "", fmt.Errorf("create subscription: %w", err)
	}
	return `CREATE SUBSCRIPTION ` + name + ` CONNECTION ` + quoteLiteral(conninfo) + ` PUBLICATION ` + name +
		` WITH (create_slot = false, slot_name = ` + quoteLiteral(name) + `, ` + with + `)`, nil
}

// conninfoURL rewrites a DSN (URL or keyword/value) as a postgres:// URL.
// A URL keeps its parameters; keyword/value DSNs are parsed by pgconn and
// keep host, port, user, password, database and whether TLS is used. A
// keyword/value DSN that verifies certificates or names certificate files
// is refused: pgconn does not give those settings back, and rebuilding it
// without them would let the subscription, which carries the source's
// password, skip verifying the server.
func conninfoURL(dsn string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse source dsn: %w", err)
		}
		return u.String(), nil // url.String percent-encodes what the input left raw
	}
	for _, kw := range []string{"verify-ca", "verify-full", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword"} {
		if strings.Contains(dsn, kw) {
			return "", fmt.Errorf("source dsn: TLS settings (%s) of a keyword/value DSN cannot be carried to the subscription; register the database with a postgres:// URL", kw)
		}
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("parse source dsn: %w", err)
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), Path: "/" + cfg.Database}
	if strings.HasPrefix(cfg.Host, "/") { // a Unix socket directory goes in the host parameter
		u.Host = ""
	}
	u.User = url.UserPassword(cfg.User, cfg.Password)
	q := url.Values{}
	if strings.HasPrefix(cfg.Host, "/") {
		q.Set("host", cfg.Host)
		q.Set("port", strconv.Itoa(int(cfg.Port)))
	}
	q.Set("sslmode", sslMode(cfg))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// sslMode recovers the sslmode pgconn derived its TLS settings from, as
// far as a subscription needs it.
func sslMode(cfg *pgconn.Config) string {
	if cfg.TLSConfig == nil {
		return "disable"
	}
	for _, fb := range cfg.Fallbacks {
		if fb.TLSConfig == nil {
			return "prefer"
		}
	}
	return "require"
}

// quoteLiteral quotes s as an SQL string literal under
// standard_conforming_strings (the default since PostgreSQL 9.1).
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// waitSynced waits until the initial copy of every table has finished.
func (mv *Mover) waitSynced(ctx context.Context, e *moveEnv) error {
	start := time.Now()
	deadline := start.Add(e.opts.SyncTimeout)
	var reported time.Time
	for {
		if e.opts.Progress != nil && time.Since(reported) >= time.Second {
			reported = time.Now()
			if p, err := e.readCopyProgress(ctx, start); err == nil {
				e.progress(ctx, "initial copy", p)
			} else {
				e.opts.Log.WarnContext(ctx, "move progress", "move", e.m.ID, "err", err)
			}
		}
		var pending, total int
		err := e.tgt.QueryRow(ctx, `SELECT count(*) FILTER (WHERE sr.srsubstate <> 'r'), count(*)
			FROM pg_subscription_rel sr JOIN pg_subscription s ON s.oid = sr.srsubid WHERE s.subname = $1`, e.m.name()).Scan(&pending, &total)
		if err != nil {
			return fmt.Errorf("check initial copy: %w", err)
		}
		if total == len(e.tables)+1 && pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("initial copy not done after %s (%d of %d tables pending)", e.opts.SyncTimeout, pending, total)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// subscriptionExists looks a subscription up in the pool's own database
// (pg_subscription is shared by the whole cluster).
const subscriptionExists = `SELECT EXISTS (SELECT 1 FROM pg_subscription
	WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()))`

// dropSubscription removes a move's subscription from the target without
// waiting on the source. Its main slot is left for dropPublication. Slots of
// table copies still in progress are dropped here first: DROP SUBSCRIPTION
// would otherwise wait for them to go inactive, which on a single cluster
// can be forever.
func dropSubscription(ctx context.Context, tgt, src *pgxpool.Pool, name string) error {
	var oid uint32
	err := tgt.QueryRow(ctx, `SELECT oid FROM pg_subscription
		WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, name).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find subscription: %w", err)
	}
	for _, s := range []string{`ALTER SUBSCRIPTION ` + name + ` DISABLE`, `ALTER SUBSCRIPTION ` + name + ` SET (slot_name = NONE)`} {
		if _, err := tgt.Exec(ctx, s); err != nil {
			return fmt.Errorf("drop subscription: %w", err)
		}
	}
	conn, err := tgt.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("drop subscription: %w", err)
	}
	defer conn.Release()
	// A table-copy worker that was starting when the subscription was
	// disabled can still be creating its slot, which waits for every running
	// transaction of the source cluster, and DROP SUBSCRIPTION waits for that
	// worker. So each round ends the subscription's workers on the target,
	// drops the copy slots on the source, and gives DROP a bounded time.
	var last error
	for range 5 {
		if _, err := tgt.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_subscription
			WHERE subid = $1 AND pid IS NOT NULL`, oid); err != nil {
			return fmt.Errorf("stop subscription workers: %w", err)
		}
		if err := dropSlots(ctx, src, "pg_"+strconv.FormatUint(uint64(oid), 10)+"_sync_%"); err != nil {
			return err
		}
		if last = dropBounded(ctx, conn.Conn(), name); last == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(last, &pgErr) || pgErr.Code != "57014" { // only a statement timeout is worth another round
			break
		}
	}
	return fmt.Errorf("drop subscription: %w", last)
}

// dropBounded runs DROP SUBSCRIPTION under a statement timeout, resetting
// the session setting before the connection goes back to the pool.
func dropBounded(ctx context.Context, conn *pgx.Conn, name string) error {
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `RESET statement_timeout`) }()
	if _, err := conn.Exec(ctx, `SET statement_timeout = '10s'`); err != nil {
		return err
	}
	_, err := conn.Exec(ctx, `DROP SUBSCRIPTION `+name)
	return err
}

// dropSlots drops the replication slots matching a LIKE pattern on a
// server, ending the walsenders that still hold them.
func dropSlots(ctx context.Context, pool *pgxpool.Pool, pattern string) error {
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE slot_name LIKE $1 AND active_pid IS NOT NULL`, pattern); err != nil {
			last = err
		}
		_, err := pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
			WHERE slot_name LIKE $1 AND NOT active`, pattern)
		var left int
		if err == nil {
			err = pool.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1`, pattern).Scan(&left)
		}
		if err == nil && left == 0 {
			return nil
		}
		if err != nil {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("drop replication slots %s: %v", pattern, last)
}

// dropPublication removes a move's slot and publication from the source.
func dropPublication(ctx context.Context, pool *pgxpool.Pool, name string) error {
	// The walsender of the subscription just dropped may still hold the slot.
	if err := dropSlots(ctx, pool, name); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `DROP PUBLICATION IF EXISTS `+name); err != nil {
		return fmt.Errorf("drop publication: %w", err)
	}
	return nil
}

// cleanUp removes the replication and retires the sealed source copy: the
// schema is renamed and recorded, to be dropped after the retention.
func (mv *Mover) cleanUp(ctx context.Context, e *moveEnv) error {
	if err := dropSubscription(ctx, e.tgt, e.src, e.m.name()); err != nil {
		return err
	}
	if err := dropPublication(ctx, e.src, e.m.name()); err != nil {
		return err
	}
	if _, err := e.tgt.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{e.t.Schema, markerTable}.Sanitize()); err != nil {
		return fmt.Errorf("drop marker: %w", err)
	}
	// Both change logs: the target's normally went in the freeze; the
	// source is sealed, so nobody waits on its tables' locks.
	for _, pool := range []*pgxpool.Pool{e.tgt, e.src} {
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return dropChangeLog(ctx, tx, e.m) }); err != nil {
			return err
		}
	}
	retired := retiredName(e.t.Schema, e.m.ID)
	var exists bool
	if err := e.src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, e.t.Schema).Scan(&exists); err != nil {
		return fmt.Errorf("find source schema: %w", err)
	}
	if !exists {
		return nil // renamed by an earlier attempt
	}
	return pgx.BeginFunc(ctx, e.src, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `ALTER SCHEMA `+pgx.Identifier{e.t.Schema}.Sanitize()+` RENAME TO `+pgx.Identifier{retired}.Sanitize()); err != nil {
			return fmt.Errorf("retire source copy: %w", err)
		}
		_, err := mv.op.Control().Exec(ctx, `INSERT INTO control.retired_copies (tenant_id, database_id, schema_name, drop_after)
			VALUES ($1, $2, $3, now() + make_interval(secs => $4))`, e.t.ID, e.m.From, retired, e.opts.Retain.Seconds())
		return err
	})
}

func retiredName(schema string, moveID int64) string {
	return schema + "_r" + strconv.FormatInt(moveID, 10)
}
