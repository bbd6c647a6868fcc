package move

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Verifying a copy without reading it inside the freeze (ADR 0005, "Verify
// before the freeze"). The checksum of a table is a row count and a sum of
// row hashes, so it is additive: the checksum now is the checksum at some
// snapshot plus the changes committed since. Before the freeze, each side
// gets a change log (row triggers adding +hash for a new row version and
// -hash for an old one, into an unlogged table of schema infra, which the
// publication does not carry) and then a baseline: every table's checksum in
// one REPEATABLE READ snapshot, taken while writes continue, with that
// snapshot (pg_current_snapshot) as the marker. Inside the freeze only the
// log entries of transactions the marker does not see are summed: a cost
// that follows the writes of the last seconds, not the tenant's size.
//
// The two sides' markers need not be the same moment: each side's checksum
// is rebuilt at the end of the catch-up from its own baseline and log, and
// only those are compared.

// changeLog names a move's change log table, and its trigger functions
// (suffixed with the table's position), in schema infra of both databases.
func (m *Move) changeLog() string { return m.name() + "_changes" }

// tableSum is a table's checksum: row count and the sum of row hashes.
type tableSum struct {
	n int64
	h big.Int
}

func (s tableSum) String() string {
	return strconv.FormatInt(s.n, 10) + " rows, hash sum " + s.h.String()
}

// baseline is one side's checksums at its marker snapshot.
type baseline struct {
	snapshot string // pg_current_snapshot() of the checksums' transaction
	sums     map[string]*tableSum
}

// installChangeLog creates a side's change log, its trigger functions and
// the triggers on every tenant table; an earlier attempt's are replaced, and
// its log entries are pruned after the baseline (pruneChangeLog). On the
// source, the triggers must be in place before any transaction the baseline
// will not see writes, so they are created holding the tenant's freeze lock:
// no tenant transaction is running then. On the target the apply worker
// writes (session_replication_role = replica), so its triggers fire always;
// it may be applying a transaction that holds one table and waits for
// another this DDL holds, so a deadlock or lock timeout is retried.
func (mv *Mover) installChangeLog(ctx context.Context, e *moveEnv, pool *pgxpool.Pool, source bool) error {
	cols, err := storedColumns(ctx, pool, e.t.Schema)
	if err != nil {
		return err
	}
	log := pgx.Identifier{"infra", e.m.changeLog()}.Sanitize()
	stmts := []string{
		`CREATE UNLOGGED TABLE IF NOT EXISTS ` + log + ` (tbl text NOT NULL, xid xid8 NOT NULL, n int NOT NULL, h numeric NOT NULL)`,
	}
	for i, tb := range e.tables {
		fn := pgx.Identifier{"infra", e.m.changeLog() + "_" + strconv.Itoa(i)}.Sanitize()
		hashOf := func(rec string) string {
			exprs := make([]string, len(cols[tb]))
			for j, c := range cols[tb] {
				exprs[j] = rec + "." + c
			}
			return `hash_record_extended(ROW(` + strings.Join(exprs, ", ") + `), 0)::numeric`
		}
		ins := `INSERT INTO ` + log + ` (tbl, xid, n, h) VALUES (` + quoteLiteral(tb) + `, pg_current_xact_id(), `
		// SECURITY DEFINER: the tenant's role writes the log without any
		// right on schema infra. TimeZone as in the checksum (text forms).
		stmts = append(stmts, `CREATE OR REPLACE FUNCTION `+fn+`() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
			SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $f$
			BEGIN
				IF TG_OP = 'INSERT' THEN `+ins+`1, `+hashOf("NEW")+`);
				ELSIF TG_OP = 'DELETE' THEN `+ins+`-1, -`+hashOf("OLD")+`);
				ELSE `+ins+`0, `+hashOf("NEW")+` - `+hashOf("OLD")+`);
				END IF;
				RETURN NULL;
			END $f$`,
			`REVOKE ALL ON FUNCTION `+fn+`() FROM PUBLIC`,
			`CREATE OR REPLACE TRIGGER `+e.m.name()+` AFTER INSERT OR UPDATE OR DELETE ON `+e.qualified(tb)+
				` FOR EACH ROW EXECUTE FUNCTION `+fn+`()`)
		if !source {
			stmts = append(stmts, `ALTER TABLE `+e.qualified(tb)+` ENABLE ALWAYS TRIGGER `+e.m.name())
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("install change log: %w", err)
	}
	defer conn.Release()
	begin := func() (pgx.Tx, time.Time, error) {
		if source {
			return e.freeze(ctx, conn.Conn())
		}
		tx, err := conn.Begin(ctx)
		if err == nil {
			_, err = tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`)
		}
		return tx, time.Now(), err
	}
	for attempt := 0; ; attempt++ {
		err = func() error {
			tx, frozen, err := begin()
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
			for _, s := range stmts {
				if _, err := tx.Exec(ctx, s); err != nil {
					return fmt.Errorf("install change log: %w", err)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				return fmt.Errorf("install change log: %w", err)
			}
			if source {
				e.changeLogPause = time.Since(frozen)
			}
			return nil
		}()
		// Another session's lock on a table (an export, a migration, the
		// apply worker) makes the DDL give up rather than hold writes up:
		// the attempt is retried a few times.
		var pgErr *pgconn.PgError
		if err == nil || attempt == 4 || !errors.As(err, &pgErr) || (pgErr.Code != "55P03" && pgErr.Code != "40P01") {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pruneChangeLog deletes the log entries a side's baseline already
// counts (those of transactions its snapshot sees, an earlier attempt's
// included), so that the freeze reads only the entries after it.
func pruneChangeLog(ctx context.Context, pool *pgxpool.Pool, m *Move, b *baseline) error {
	if _, err := pool.Exec(ctx, `DELETE FROM `+pgx.Identifier{"infra", m.changeLog()}.Sanitize()+
		` WHERE pg_visible_in_snapshot(xid, $1::pg_snapshot)`, b.snapshot); err != nil {
		return fmt.Errorf("prune change log: %w", err)
	}
	return nil
}

// dropChangeLog removes a move's triggers, functions and log from a
// database in tx; what is already gone is skipped. Dropping a trigger locks
// its table exclusively, so on a side that serves the tenant tx must hold
// the tenant's freeze lock (see dropSourceChangeLog).
func dropChangeLog(ctx context.Context, tx pgx.Tx, m *Move) error {
	// One round trip: inside the freeze each one counts.
	_, err := tx.Exec(ctx, `DO $d$ DECLARE f regprocedure; BEGIN
		FOR f IN SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = 'infra' AND p.proname LIKE `+quoteLiteral(m.changeLog()+`\_%`)+` LOOP
			EXECUTE 'DROP FUNCTION ' || f::text || ' CASCADE'; -- the triggers go with their functions
		END LOOP;
		DROP TABLE IF EXISTS `+pgx.Identifier{"infra", m.changeLog()}.Sanitize()+`;
	END $d$`)
	if err != nil {
		return fmt.Errorf("drop change log: %w", err)
	}
	return nil
}

// dropSourceChangeLog drops the change log of the source, which may be
// serving the tenant (an abort): holding the freeze lock, no tenant
// transaction waits behind the tables' exclusive locks for long.
func (e *moveEnv) dropSourceChangeLog(ctx context.Context) error {
	var installed bool
	if err := e.src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'infra' AND p.proname LIKE $1) OR to_regclass($2) IS NOT NULL`,
		e.m.changeLog()+`\_%`, "infra."+e.m.changeLog()).Scan(&installed); err != nil {
		return fmt.Errorf("find change log: %w", err)
	}
	if !installed { // no need to hold the tenant's writes
		return nil
	}
	conn, err := e.src.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("drop change log: %w", err)
	}
	defer conn.Release()
	tx, _, err := e.freeze(ctx, conn.Conn())
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := dropChangeLog(ctx, tx, e.m); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("drop change log: %w", err)
	}
	return nil
}

// takeBaseline checksums every table of a side in one snapshot, which it
// returns as the marker.
func takeBaseline(ctx context.Context, e *moveEnv, conn *pgx.Conn) (*baseline, error) {
	b := &baseline{sums: map[string]*tableSum{}}
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL TimeZone = 'UTC'`); err != nil {
			return err
		}
		// The snapshot is taken by this first query, before any table is read.
		if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&b.snapshot); err != nil {
			return fmt.Errorf("marker snapshot: %w", err)
		}
		cols, err := storedColumns(ctx, tx, e.t.Schema)
		if err != nil {
			return err
		}
		for _, tb := range e.tables {
			s := &tableSum{}
			var h string
			if err := tx.QueryRow(ctx, checksumSQL(e.qualified(tb), cols[tb])).Scan(&s.n, &h); err != nil {
				return fmt.Errorf("checksum %s: %w", tb, err)
			}
			if _, ok := s.h.SetString(h, 10); !ok {
				return fmt.Errorf("checksum %s: hash sum %q", tb, h)
			}
			b.sums[tb] = s
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// baselines is both sides' baselines.
type baselines struct{ src, tgt *baseline }

// prepareVerify installs both change logs and takes both baselines, the
// two full reads concurrently, all while the tenant keeps writing.
func (mv *Mover) prepareVerify(ctx context.Context, e *moveEnv) (*baselines, error) {
	if err := mv.installChangeLog(ctx, e, e.tgt, false); err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if err := mv.installChangeLog(ctx, e, e.src, true); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	start := time.Now()
	var b baselines
	var srcErr, tgtErr error
	var wg sync.WaitGroup
	for _, side := range []struct {
		pool *pgxpool.Pool
		dst  **baseline
		err  *error
	}{{e.src, &b.src, &srcErr}, {e.tgt, &b.tgt, &tgtErr}} {
		wg.Go(func() {
			conn, err := side.pool.Acquire(ctx)
			if err != nil {
				*side.err = err
				return
			}
			defer conn.Release()
			*side.dst, *side.err = takeBaseline(ctx, e, conn.Conn())
		})
	}
	wg.Wait()
	if srcErr != nil {
		return nil, fmt.Errorf("source baseline: %w", srcErr)
	}
	if tgtErr != nil {
		return nil, fmt.Errorf("target baseline: %w", tgtErr)
	}
	if err := pruneChangeLog(ctx, e.src, e.m, b.src); err != nil {
		return nil, err
	}
	if err := pruneChangeLog(ctx, e.tgt, e.m, b.tgt); err != nil {
		return nil, err
	}
	var rows int64
	for _, s := range b.src.sums {
		rows += s.n
	}
	e.opts.Log.InfoContext(ctx, "move baseline", "move", e.m.ID, "tenant", e.m.Slug, "rows", rows, "took", time.Since(start))
	return &b, nil
}

// changesSince sums a side's change log over the transactions its marker
// snapshot does not see, per table.
func changesSince(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, m *Move, snapshot string) (map[string]*tableSum, error) {
	rows, err := q.Query(ctx, `SELECT tbl, coalesce(sum(n), 0), coalesce(sum(h), 0)::text FROM `+
		pgx.Identifier{"infra", m.changeLog()}.Sanitize()+
		` WHERE NOT pg_visible_in_snapshot(xid, $1::pg_snapshot) GROUP BY tbl`, snapshot)
	if err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	out := map[string]*tableSum{}
	for rows.Next() {
		var tb, h string
		s := &tableSum{}
		if err := rows.Scan(&tb, &s.n, &h); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read change log: %w", err)
		}
		if _, ok := s.h.SetString(h, 10); !ok {
			rows.Close()
			return nil, fmt.Errorf("read change log: hash sum %q", h)
		}
		out[tb] = s
	}
	return out, rows.Err()
}

// current is a side's checksums now: baseline plus the changes since.
func (b *baseline) current(changes map[string]*tableSum) map[string]tableSum {
	out := make(map[string]tableSum, len(b.sums))
	for tb, s := range b.sums {
		var c tableSum
		c.n = s.n
		c.h.Set(&s.h)
		if d, ok := changes[tb]; ok {
			c.n += d.n
			c.h.Add(&c.h, &d.h)
		}
		out[tb] = c
	}
	return out
}

// verifyChanges, inside the freeze and after the catch-up, compares both
// sides' checksums rebuilt from baseline and change log.
func (e *moveEnv) verifyChanges(ctx context.Context, b *baselines, tx pgx.Tx, target *pgx.Conn) error {
	var tgtChanges map[string]*tableSum
	var tgtErr error
	var wg sync.WaitGroup
	wg.Go(func() { tgtChanges, tgtErr = changesSince(ctx, target, e.m, b.tgt.snapshot) })
	srcChanges, srcErr := changesSince(ctx, tx, e.m, b.src.snapshot)
	wg.Wait()
	if err := errors.Join(srcErr, tgtErr); err != nil {
		return err
	}
	src, tgt := b.src.current(srcChanges), b.tgt.current(tgtChanges)
	for _, tb := range e.tables {
		s, t := src[tb], tgt[tb]
		if s.n != t.n || s.h.Cmp(&t.h) != 0 {
			return fmt.Errorf("verify %s: source has %s, target %s", tb, s, t)
		}
	}
	return nil
}
