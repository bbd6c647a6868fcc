package move

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/patchdesk/patchdesk/tenancy"
)

// freezeAndSwitch first verifies the copy up to a marker while the tenant
// keeps writing (verify.go; the change log's install pauses writes for
// milliseconds), then freezes: the only moment requests wait. Holding the
// tenant's freeze lock (no tenant transaction runs; new ones queue), it hands
// the tenant's unpublished outbox rows to the target, waits for the last
// changes to replicate, verifies every table from its baseline and the
// changes since (never reading the tables), advances sequences, seals the source
// (its tenant role loses all rights, so queued transactions fail there and
// tenancy.Tx retries them on the new placement), then flips the placement
// and tells every process.
func (mv *Mover) freezeAndSwitch(ctx context.Context, e *moveEnv) error {
	// Everything that reads whole tables happens here, before the freeze.
	e.progress(ctx, "verify baseline", nil)
	baselineStart := time.Now()
	base, err := mv.prepareVerify(ctx, e)
	baselineTook := time.Since(baselineStart)
	if err != nil {
		return fmt.Errorf("verify before the freeze: %w", err)
	}
	if err := e.fault(FaultBaselined); err != nil {
		return err
	}
	e.progress(ctx, "freeze", nil)
	// The freeze holds back every tenant transaction, which hold pooled
	// connections while they wait: the mover must not need the pool itself.
	conns, err := e.ownConns(ctx)
	if err != nil {
		return err
	}
	defer conns.close(ctx)
	tx, frozen, err := e.freeze(ctx, conns.freeze)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	phases := map[string]time.Duration{"lock": time.Since(frozen).Round(time.Millisecond)}
	phase := func(name string, fn func() error) error {
		start := time.Now()
		err := fn()
		phases[name] = time.Since(start).Round(time.Millisecond)
		return err
	}
	for _, p := range []struct {
		name string
		fn   func() error
	}{
		{"outbox", func() error { return mv.handOverOutbox(ctx, e, tx, conns.target) }},
		{"catch-up", func() error { return e.awaitMarker(ctx, conns.marker, conns.target) }},
		{"verify", func() error { return e.verifyChanges(ctx, base, tx, conns.target) }},
		{"sequences", func() error { return e.advanceSequences(ctx, conns.target) }},
		{"fault", func() error { return e.fault(FaultFrozen) }},
		// The target serves the tenant from the flip on: its change log goes
		// now, while nothing but this freeze touches its tables.
		{"drop target log", func() error {
			return pgx.BeginFunc(ctx, conns.target, func(ttx pgx.Tx) error { return dropChangeLog(ctx, ttx, e.m) })
		}},
		{"seal", func() error { return sealSchema(ctx, tx, e.t) }},
		{"commit", func() error { return tx.Commit(ctx) }},
	} {
		if err != nil {
			break
		}
		err = phase(p.name, p.fn)
	}
	if err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	err = phase("flip", func() error { return mv.flipPlacement(ctx, e, frozen) })
	recorded := map[string]time.Duration{"verify baseline": baselineTook, "change log pause": e.changeLogPause}
	for name, d := range phases {
		recorded["freeze."+name] = d
	}
	mv.recordPhases(ctx, e.m, recorded)
	e.opts.Log.InfoContext(ctx, "move freeze", "move", e.m.ID, "tenant", e.t.Slug, "total", time.Since(frozen), "phases", phases)
	return err
}

// moveConns are connections a freeze opens for itself.
type moveConns struct {
	freeze, marker, target *pgx.Conn
}

func (c *moveConns) close(ctx context.Context) {
	for _, conn := range []*pgx.Conn{c.freeze, c.marker, c.target} {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}
}

func (e *moveEnv) ownConns(ctx context.Context) (*moveConns, error) {
	c := &moveConns{}
	var err error
	for _, x := range []struct {
		dst  **pgx.Conn
		pool *pgxpool.Pool
	}{{&c.freeze, e.src}, {&c.marker, e.src}, {&c.target, e.tgt}} {
		if *x.dst, err = pgx.ConnectConfig(ctx, x.pool.Config().ConnConfig.Copy()); err != nil {
			c.close(ctx)
			return nil, fmt.Errorf("connect for the freeze: %w", err)
		}
	}
	return c, nil
}

// freeze takes the tenant's freeze lock exclusively in a new source
// transaction: it waits for in-flight tenant transactions, and new ones queue
// behind it. A short lock_timeout keeps a long-running transaction from
// holding the queue up: the attempt is given up and retried. It returns the
// transaction and when the queueing began.
func (e *moveEnv) freeze(ctx context.Context, conn *pgx.Conn) (pgx.Tx, time.Time, error) {
	hi, lo := e.freezeKey[0], e.freezeKey[1]
	var last error
	for attempt := 0; attempt < 20; attempt++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("begin freeze: %w", err)
		}
		start := time.Now()
		_, err = tx.Exec(ctx, `SET LOCAL lock_timeout = '300ms'`)
		if err == nil {
			_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, hi, lo)
		}
		if err == nil {
			return tx, start, nil
		}
		_ = tx.Rollback(context.WithoutCancel(ctx))
		last = err
		select {
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil, time.Time{}, fmt.Errorf("freeze writes: %w", last)
}

// handOverOutbox moves the tenant's unpublished outbox rows to the target's
// outbox (same event ids, so consumers deduplicate if the relay also
// published some), deleting them from the source in the freeze transaction.
func (mv *Mover) handOverOutbox(ctx context.Context, e *moveEnv, tx pgx.Tx, target *pgx.Conn) error {
	rows, err := tx.Query(ctx, `DELETE FROM infra.outbox WHERE tenant_id = $1 AND published_at IS NULL
		RETURNING event_id, tenant_id, ticket_id, type, payload, created_at`, e.t.ID)
	if err != nil {
		return fmt.Errorf("take outbox rows: %w", err)
	}
	type event struct {
		id, tenant uuid.UUID
		ticket     *uuid.UUID
		typ        string
		payload    []byte
		at         time.Time
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (event, error) {
		var ev event
		return ev, row.Scan(&ev.id, &ev.tenant, &ev.ticket, &ev.typ, &ev.payload, &ev.at)
	})
	if err != nil {
		return fmt.Errorf("take outbox rows: %w", err)
	}
	if len(events) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, ev := range events {
		batch.Queue(`INSERT INTO infra.outbox (event_id, tenant_id, ticket_id, type, payload, created_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING`, ev.id, ev.tenant, ev.ticket, ev.typ, ev.payload, ev.at)
	}
	batch.Queue(`SELECT pg_notify('patchdesk_outbox', '')`)
	if err := target.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("hand over outbox rows: %w", err)
	}
	return nil
}

// awaitMarker writes a fresh token to the source marker (a commit after
// every tenant write, since writers are locked out) and waits for it in the
// target: then the target has applied everything.
func (e *moveEnv) awaitMarker(ctx context.Context, src, tgt *pgx.Conn) error {
	token := uuid.New()
	marker := pgx.Identifier{e.t.Schema, markerTable}.Sanitize()
	if _, err := src.Exec(ctx, `INSERT INTO `+marker+` (id, token) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token`, token); err != nil {
		return fmt.Errorf("write move marker: %w", err)
	}
	deadline := time.Now().Add(e.opts.CatchUpTimeout)
	for {
		var got uuid.UUID
		err := tgt.QueryRow(ctx, `SELECT token FROM `+marker+` WHERE id = 1`).Scan(&got)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read move marker: %w", err)
		}
		if got == token {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("target did not catch up within %s", e.opts.CatchUpTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checksumSQL fingerprints a table: row count and an order-independent sum
// of row hashes (so neither side sorts), hashing stored columns with their
// types' own hash functions rather than formatting rows as text. Generated
// columns are left out: they are recomputed from the others.
func checksumSQL(table string, columns []string) string {
	return `SELECT count(*), coalesce(sum(hash_record_extended(ROW(` + strings.Join(columns, ", ") + `), 0)::numeric), 0)::text FROM ` + table
}

// storedColumnsSQL lists a schema's stored (not generated) columns and
// whether their type has a hash function of its own (a default hash
// operator class for exactly that type). Others, such as tsvector, are
// hashed through their text form, which is as deterministic; polymorphic
// classes (enums, arrays) are counted as not having one, which costs only
// speed.
const storedColumnsSQL = `SELECT c.relname, a.attname,
	EXISTS (SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
		WHERE am.amname = 'hash' AND oc.opcdefault AND oc.opcintype = a.atttypid)
	FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
	ORDER BY c.relname, a.attnum`

// storedColumns lists each table's stored columns as expressions for
// checksumSQL.
func storedColumns(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, schema string) (map[string][]string, error) {
	rows, err := q.Query(ctx, storedColumnsSQL, schema)
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	out := map[string][]string{}
	for rows.Next() {
		var table, column string
		var hashable bool
		if err := rows.Scan(&table, &column, &hashable); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list columns: %w", err)
		}
		expr := pgx.Identifier{column}.Sanitize()
		if !hashable {
			expr += "::text"
		}
		out[table] = append(out[table], expr)
	}
	return out, rows.Err()
}

// advanceSequences sets the target's identity sequences past the copied rows
// (logical replication copies rows, not sequences), in one round trip; the
// identity columns are primary keys, so max() reads an index edge.
func (e *moveEnv) advanceSequences(ctx context.Context, target *pgx.Conn) error {
	_, err := target.Exec(ctx, `DO $s$ DECLARE c record; BEGIN
		FOR c IN SELECT format('%I.%I', n.nspname, cl.relname) AS tbl, a.attname AS col FROM pg_attribute a
			JOIN pg_class cl ON cl.oid = a.attrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
			WHERE n.nspname = `+quoteLiteral(e.t.Schema)+` AND a.attidentity <> '' AND NOT a.attisdropped LOOP
			EXECUTE format('SELECT setval(pg_get_serial_sequence(%L, %L), coalesce(max(%I), 0) + 1, false) FROM %s',
				c.tbl, c.col, c.col, c.tbl);
		END LOOP;
	END $s$`)
	if err != nil {
		return fmt.Errorf("advance identity sequences: %w", err)
	}
	return nil
}

// sealSchema takes every right on the schema away from the tenant's role:
// whatever still reaches this copy fails (and tenancy.Tx follows the move).
func sealSchema(ctx context.Context, tx pgx.Tx, t *tenancy.Tenant) error {
	schema, role := pgx.Identifier{t.Schema}.Sanitize(), pgx.Identifier{t.Role}.Sanitize()
	// One round trip (a multi-statement simple query, in the transaction).
	if _, err := tx.Exec(ctx, `REVOKE ALL ON ALL TABLES IN SCHEMA `+schema+` FROM `+role+`;
		REVOKE ALL ON ALL SEQUENCES IN SCHEMA `+schema+` FROM `+role+`;
		REVOKE ALL ON SCHEMA `+schema+` FROM `+role); err != nil {
		return fmt.Errorf("seal source: %w", err)
	}
	return nil
}

// unsealSchema gives the tenant's role its rights back (aborting a move).
func unsealSchema(ctx context.Context, pool *pgxpool.Pool, t *tenancy.Tenant) error {
	schema, role := pgx.Identifier{t.Schema}.Sanitize(), pgx.Identifier{t.Role}.Sanitize()
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, s := range []string{
			`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + role,
			`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ` + schema + ` TO ` + role,
			`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA ` + schema + ` TO ` + role,
			`REVOKE ALL ON ` + pgx.Identifier{t.Schema, "goose_db_version"}.Sanitize() + ` FROM ` + role,
		} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("unseal source: %w", err)
			}
		}
		var marker bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, t.Schema+"."+markerTable).Scan(&marker); err != nil {
			return err
		}
		if marker {
			_, err := tx.Exec(ctx, `REVOKE ALL ON `+schema+`.`+markerTable+` FROM `+role)
			return err
		}
		return nil
	})
}

// flipPlacement points the tenant at the target, records the switch and the
// freeze time in the same control transaction, and notifies every process.
func (mv *Mover) flipPlacement(ctx context.Context, e *moveEnv, frozen time.Time) error {
	return pgx.BeginFunc(ctx, mv.op.Control(), func(tx pgx.Tx) error {
		// The tier is the target's kind (a NOT NULL violation if it vanished).
		if _, err := tx.Exec(ctx, `UPDATE control.tenants SET database_id = $2, updated_at = now(),
			tier = (SELECT kind FROM control.databases WHERE id = $2) WHERE id = $1`, e.t.ID, e.m.To); err != nil {
			return fmt.Errorf("flip placement: %w", err)
		}
		freeze := int(time.Since(frozen).Milliseconds())
		if _, err := tx.Exec(ctx, `UPDATE control.tenant_moves SET state = $2, freeze_ms = $3, error = NULL, updated_at = now()
			WHERE id = $1`, e.m.ID, Switched, freeze); err != nil {
			return fmt.Errorf("record switch: %w", err)
		}
		e.m.FreezeMS = &freeze
		return mv.op.NotifyChangedTx(ctx, tx, e.t.Slug)
	})
}

// fault runs the test hook at a point inside a step.
func (e *moveEnv) fault(point string) error {
	if e.opts.Fault == nil {
		return nil
	}
	return e.opts.Fault(point)
}
