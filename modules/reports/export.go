package reports

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/patchdesk/patchdesk/modules/audit"
	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Export is the state of a CSV export.
type Export struct {
	ID         uuid.UUID  `json:"id"`
	Status     string     `json:"status"`
	RowCount   *int       `json:"row_count"`
	Error      *string    `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
	csv        *string
}

// RequestExport records an export and schedules its generation (owner/admin; audited).
func (s *Service) RequestExport(ctx context.Context, sub authz.Subject, t *tenancy.Tenant) (uuid.UUID, error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.ReportsExport, Resource: authz.ResourceReports}); err != nil {
		return uuid.Nil, err
	}
	var id uuid.UUID
	err := s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO report_exports (requested_by) VALUES ($1) RETURNING id`, sub.MemberID).Scan(&id); err != nil {
			return fmt.Errorf("record export: %w", err)
		}
		return audit.Record(ctx, tx, sub.MemberID, "report.exported", "export:"+id.String(), nil)
	})
	if err != nil {
		return uuid.Nil, err
	}
	// The row is committed before its job is queued (the job lives in another
	// schema, out of the tenant's transaction): if this insert fails or the
	// process dies first, SweepExports queues it later.
	if err := s.jobs.Insert(ctx, t.DatabaseID, exportJob(t.ID, id)); err != nil {
		return uuid.Nil, err
	}
	if _, err := s.SweepExports(ctx, t); err != nil {
		return id, err
	}
	return id, nil
}

func exportJob(tenant, export uuid.UUID) river.InsertManyParams {
	return river.InsertManyParams{Args: exportArgs{TenantID: tenant, ExportID: export}}
}

// staleExport is how long an export may stay pending before its job is
// assumed lost. Queueing again is harmless before that too (jobs are unique
// by arguments), this only saves the insert while the job is on its way.
const staleExport = 30 * time.Second

// SweepExports queues a job for every export of the tenant still pending
// after staleExport: a row whose job insert failed, or was never made
// because the process stopped between the two, would otherwise stay pending
// forever. It runs whenever an export is requested or looked at pending,
// which are the moments someone waits for one; it returns how many it queued.
func (s *Service) SweepExports(ctx context.Context, t *tenancy.Tenant) (int, error) {
	var ids []uuid.UUID
	err := s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM report_exports WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
			ORDER BY created_at LIMIT 100`, staleExport.Seconds())
		if err != nil {
			return fmt.Errorf("find stale exports: %w", err)
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	params := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		params[i] = exportJob(t.ID, id)
	}
	if err := s.jobs.Insert(ctx, t.DatabaseID, params...); err != nil {
		return 0, fmt.Errorf("queue stale exports: %w", err)
	}
	return len(ids), nil
}

// GetExport returns an export's state and, once done, its CSV.
func (s *Service) GetExport(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, id uuid.UUID) (*Export, error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.ReportsExport, Resource: authz.ResourceReports}); err != nil {
		return nil, err
	}
	var e Export
	err := s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		return tx.QueryRow(ctx, `SELECT id, status, row_count, error, created_at, finished_at, csv FROM report_exports WHERE id = $1`, id).
			Scan(&e.ID, &e.Status, &e.RowCount, &e.Error, &e.CreatedAt, &e.FinishedAt, &e.csv)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.Errorf(errs.ErrNotFound, "export not found")
	}
	if err != nil {
		return nil, err
	}
	if e.Status == "pending" && time.Since(e.CreatedAt) > staleExport {
		if _, err := s.SweepExports(ctx, t); err != nil {
			return nil, err
		}
	}
	return &e, nil
}

type exportArgs struct {
	TenantID uuid.UUID `json:"tenant_id"`
	ExportID uuid.UUID `json:"export_id"`
}

// Kind names the job for River.
func (exportArgs) Kind() string { return "patchdesk.report-export" }

// InsertOpts puts exports on their own queue.
func (exportArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "exports", MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type exportWorker struct {
	river.WorkerDefaults[exportArgs]
	svc *Service
}

// Work generates the CSV from the reports read model.
func (w *exportWorker) Work(ctx context.Context, job *river.Job[exportArgs]) error {
	t, err := w.svc.reg.ByID(ctx, job.Args.TenantID)
	if err != nil {
		return river.JobCancel(err)
	}
	setStatus := func(status string, csvText *string, rows *int, msg *string) error {
		return w.svc.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE report_exports SET status = $2, csv = $3, row_count = $4, error = $5,
				finished_at = CASE WHEN $2 IN ('done', 'failed') THEN now() END WHERE id = $1`, job.Args.ExportID, status, csvText, rows, msg)
			return err
		})
	}
	if err := setStatus("running", nil, nil, nil); err != nil {
		return err
	}
	var out string
	var n int
	err = w.svc.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		out, n, err = w.svc.writeCSV(ctx, tx)
		return err
	})
	if err != nil {
		if job.Attempt >= job.MaxAttempts {
			msg := err.Error()
			return errors.Join(err, setStatus("failed", nil, nil, &msg))
		}
		return err
	}
	return setStatus("done", &out, &n, nil)
}

// csvHeader lists the export columns.
var csvHeader = []string{"number", "title", "status", "priority", "assignee", "requester", "created_at", "resolved_at",
	"first_response_s", "resolution_s"}

// writeCSV renders one row per live ticket from the read model.
func (s *Service) writeCSV(ctx context.Context, tx tenancy.Tx) (string, int, error) {
	rows, err := tx.Query(ctx, `SELECT number, title, status, priority, assignee_id, coalesce(requester_email, ''), created_at,
			resolved_at, extract(epoch FROM first_response_at - created_at)::bigint, extract(epoch FROM resolved_at - created_at)::bigint
		FROM report_tickets WHERE NOT deleted ORDER BY number`)
	if err != nil {
		return "", 0, fmt.Errorf("read tickets for export: %w", err)
	}
	type line struct {
		number                  int64
		title, status, priority string
		assignee                *uuid.UUID
		requester               string
		created                 time.Time
		resolved                *time.Time
		firstResponse, resolve  *int64
	}
	lines, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (line, error) {
		var l line
		return l, r.Scan(&l.number, &l.title, &l.status, &l.priority, &l.assignee, &l.requester, &l.created, &l.resolved, &l.firstResponse, &l.resolve)
	})
	if err != nil {
		return "", 0, fmt.Errorf("read tickets for export: %w", err)
	}
	emails := map[uuid.UUID]string{}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(csvHeader)
	for _, l := range lines {
		assignee := ""
		if l.assignee != nil {
			email, ok := emails[*l.assignee]
			if !ok {
				email, err = s.assigneeEmail(ctx, tx, *l.assignee)
				if err != nil {
					return "", 0, fmt.Errorf("export ticket %d: %w", l.number, err)
				}
				emails[*l.assignee] = email
			}
			assignee = email
		}
		_ = w.Write([]string{strconv.FormatInt(l.number, 10), cell(l.title), l.status, l.priority, cell(assignee), cell(l.requester),
			l.created.UTC().Format(time.RFC3339), timeCell(l.resolved), intCell(l.firstResponse), intCell(l.resolve)})
	}
	w.Flush()
	return b.String(), len(lines), w.Error()
}

// assigneeEmail returns an assignee's address, or "" for a member no longer
// active; any other failure is the export's.
func (s *Service) assigneeEmail(ctx context.Context, tx tenancy.Tx, id uuid.UUID) (string, error) {
	email, _, err := s.dir.MemberContact(ctx, tx, id)
	if errors.Is(err, errs.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("assignee contact: %w", err)
	}
	return email, nil
}

// cell neutralises spreadsheet formulas (CSV injection): a cell that
// starts with = + - @ ; a tab or a carriage return, or their full-width
// forms, is prefixed with a quote so spreadsheets show it as text. Leading
// whitespace and invisible format characters (zero-width space and joiners,
// BOM, bidi marks, soft hyphen) are looked through, since spreadsheets
// ignore or trim them before deciding that a cell is a formula.
func cell(s string) string {
	for _, r := range s {
		switch {
		case strings.ContainsRune(formulaStarts, r):
			return "'" + s
		case unicode.IsSpace(r) || unicode.Is(unicode.Cf, r):
			continue
		}
		return s
	}
	return s
}

// formulaStarts are the characters that make a spreadsheet read a cell as a
// formula (or, for ; in some locales, split it), ASCII and full-width.
const formulaStarts = "=+-@;\t\r＝＋－＠；"

func timeCell(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func intCell(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}
