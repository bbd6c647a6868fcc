// Package archive writes and reads portable tenant archives (tar.gz: a
// manifest and one CSV per table), for the operator's tenants export and
// import. They carry credentials' hashes: treat them as sensitive.
package archive

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/tenancy"
)

// manifest describes an export archive.
type manifest struct {
	Format        int       `json:"format"`
	Slug          string    `json:"slug"`
	Name          string    `json:"name"`
	SchemaVersion int64     `json:"schema_version"`
	Tables        []string  `json:"tables"`
	ExportedAt    time.Time `json:"exported_at"`
}

// Export writes a portable archive of the tenant (tar.gz: manifest.json and
// one CSV per table, with a header row) from one consistent snapshot.
// Attachments will join the archive when attachments exist.
func Export(ctx context.Context, reg *tenancy.Registry, slug string, w io.Writer) error {
	t, err := reg.Lookup(ctx, slug)
	if err != nil {
		return err
	}
	pool, release, err := reg.Operator().Pool(ctx, t.DatabaseID)
	if err != nil {
		return err
	}
	defer release()
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL TimeZone = 'UTC'`); err != nil {
			return err
		}
		tables, err := tenantTables(ctx, tx, t.Schema)
		if err != nil {
			return err
		}
		m := manifest{Format: 1, Slug: t.Slug, Name: t.Name, SchemaVersion: t.SchemaVersion, Tables: tables, ExportedAt: time.Now().UTC()}
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		if err := addFile(tw, "manifest.json", b); err != nil {
			return err
		}
		for _, table := range tables {
			cols, err := copyColumns(ctx, tx, t.Schema, table)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			sql := `COPY (SELECT ` + cols + ` FROM ` + pgx.Identifier{t.Schema, table}.Sanitize() + `) TO STDOUT WITH (FORMAT csv, HEADER)`
			if _, err := tx.Conn().PgConn().CopyTo(ctx, &buf, sql); err != nil {
				return fmt.Errorf("export %s: %w", table, err)
			}
			if err := addFile(tw, "tables/"+table+".csv", buf.Bytes()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("export %q: %w", slug, err)
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		return fmt.Errorf("export %q: %w", slug, err)
	}
	reg.Operator().Audit(ctx, t, "tenant.exported", nil)
	return nil
}

func addFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Now()}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

// tenantTables lists the tenant's own tables (not goose's version table).
func tenantTables(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, schema string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname NOT IN ('goose_db_version', $2) ORDER BY c.relname`, schema, tenancy.MoveMarkerTable)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// copyColumns lists a table's stored columns: generated ones are recomputed
// on import (an export of "*" would carry them and fail to import).
func copyColumns(ctx context.Context, tx pgx.Tx, schema, table string) (string, error) {
	rows, err := tx.Query(ctx, `SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, schema, table)
	if err != nil {
		return "", fmt.Errorf("columns of %s: %w", table, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return "", fmt.Errorf("table %s has no stored columns", table)
	}
	for i, c := range cols {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(cols, ", "), nil
}

// Import creates tenant slug from an archive made by Export: a new tenant
// (new id, schema and role) whose tables hold the archived rows.
func Import(ctx context.Context, reg *tenancy.Registry, slug, name string, src io.Reader) (*tenancy.Tenant, error) {
	files, err := readArchive(src)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil || m.Format != 1 {
		return nil, fmt.Errorf("import: not a PatchDesk export (manifest.json missing or unknown format)")
	}
	if m.SchemaVersion > reg.LatestVersion() {
		return nil, fmt.Errorf("import: archive is at schema version %d, newer than this binary's %d", m.SchemaVersion, reg.LatestVersion())
	}
	t, err := reg.Provision(ctx, tenancy.ProvisionParams{Slug: slug, Name: cmp.Or(name, m.Name)})
	if err != nil {
		return nil, err
	}
	pool, release, err := reg.Operator().Pool(ctx, t.DatabaseID)
	if err != nil {
		return nil, err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Replica mode: foreign keys and append-only triggers stay out of a bulk load.
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL TimeZone = 'UTC'`); err != nil {
			return err
		}
		present, err := tenantTables(ctx, tx, t.Schema)
		if err != nil {
			return err
		}
		for _, table := range m.Tables {
			if !slices.Contains(present, table) {
				return fmt.Errorf("table %s of the archive does not exist here", table)
			}
			data, ok := files["tables/"+table+".csv"]
			if !ok {
				return fmt.Errorf("archive lacks %s", table)
			}
			qualified := pgx.Identifier{t.Schema, table}.Sanitize()
			if _, err := tx.Exec(ctx, `DELETE FROM `+qualified); err != nil {
				return err
			}
			header, _, _ := strings.Cut(string(data), "\n")
			sql := `COPY ` + qualified + ` (` + quoteColumns(header) + `) FROM STDIN WITH (FORMAT csv, HEADER)`
			if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), sql); err != nil {
				return fmt.Errorf("import %s: %w", table, err)
			}
		}
		return resetIdentities(ctx, tx, t.Schema)
	})
	release()
	if err != nil {
		// Undo the half-imported tenant; if that fails too, say so.
		if derr := reg.Delete(context.WithoutCancel(ctx), slug); derr != nil {
			err = errors.Join(err, fmt.Errorf("remove the half-imported tenant: %w", derr))
		}
		return nil, fmt.Errorf("import %q: %w", slug, err)
	}
	reg.Operator().Audit(ctx, t, "tenant.imported", map[string]any{"from": m.Slug, "exported_at": m.ExportedAt})
	return t, nil
}

// quoteColumns turns a CSV header row into a quoted column list.
func quoteColumns(header string) string {
	cols := strings.Split(strings.TrimSpace(header), ",")
	for i, c := range cols {
		cols[i] = pgx.Identifier{strings.Trim(c, `"`)}.Sanitize()
	}
	return strings.Join(cols, ", ")
}

// resetIdentities moves identity sequences past the loaded rows.
func resetIdentities(ctx context.Context, tx pgx.Tx, schema string) error {
	rows, err := tx.Query(ctx, `SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND a.attidentity <> '' AND NOT a.attisdropped`, schema)
	if err != nil {
		return err
	}
	type col struct{ table, column string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
		var c col
		return c, r.Scan(&c.table, &c.column)
	})
	if err != nil {
		return err
	}
	for _, c := range cols {
		table := pgx.Identifier{schema, c.table}.Sanitize()
		if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), coalesce(max(`+pgx.Identifier{c.column}.Sanitize()+
			`), 0) + 1, false) FROM `+table, table, c.column); err != nil {
			return fmt.Errorf("reset identity of %s: %w", c.table, err)
		}
	}
	return nil
}

// maxArchive bounds what an import reads into memory.
const maxArchive = 2 << 30

func readArchive(r io.Reader) (map[string][]byte, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a gzip archive: %w", err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	total := int64(0)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if total += h.Size; total > maxArchive {
			return nil, errors.New("archive too large")
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		files[h.Name] = b
	}
}
