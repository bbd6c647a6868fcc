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
	err = s.jobs.Insert(ctx, t.DatabaseID, river.InsertManyParams{Args: exportArgs{TenantID: t.ID, ExportID: id}})
	return id, err
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
	return &e, err
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
			if _, ok := emails[*l.assignee]; !ok {
				emails[*l.assignee], _, _ = s.dir.MemberContact(ctx, tx, *l.assignee)
			}
			assignee = emails[*l.assignee]
		}
		_ = w.Write([]string{strconv.FormatInt(l.number, 10), cell(l.title), l.status, l.priority, cell(assignee), cell(l.requester),
			l.created.UTC().Format(time.RFC3339), timeCell(l.resolved), intCell(l.firstResponse), intCell(l.resolve)})
	}
	w.Flush()
	return b.String(), len(lines), w.Error()
}

// cell neutralises spreadsheet formulas: a cell starting with = + - @ or a
// tab/CR is prefixed with a quote so spreadsheets show it as text.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

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
