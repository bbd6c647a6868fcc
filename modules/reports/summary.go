package reports

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Summary is the answer of GET /reports/summary.
type Summary struct {
	From              string         `json:"from"`
	To                string         `json:"to"`
	Created           int            `json:"created"`
	Resolved          int            `json:"resolved"`
	BacklogByStatus   map[string]int `json:"backlog_by_status"`
	FirstResponseP50S *float64       `json:"first_response_p50_s"`
	ResolutionP50S    *float64       `json:"resolution_p50_s"`
	SLABreaches       int            `json:"sla_breaches"`
	ByAssignee        []AssigneeLoad `json:"by_assignee"`
	ByDay             []Day          `json:"by_day"`
}

// AssigneeLoad is the number of waiting tickets held by one assignee.
type AssigneeLoad struct {
	AssigneeID uuid.UUID `json:"assignee_id"`
	Open       int       `json:"open"`
}

// Day is one day of activity.
type Day struct {
	Day      string `json:"day"`
	Created  int    `json:"created"`
	Resolved int    `json:"resolved"`
}

// maxRange bounds a summary's date range.
const maxRange = 366 * 2

// Summarize reads the aggregates for [from, to] (UTC dates, inclusive).
// Times are medians over tickets created in the range; the backlog and the
// per-assignee load are current. SLA breaches stay 0 until SLAs exist.
func (s *Service) Summarize(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, fromS, toS string) (*Summary, error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.ReportsRead, Resource: authz.ResourceReports}); err != nil {
		return nil, err
	}
	from, to, err := dateRange(fromS, toS)
	if err != nil {
		return nil, err
	}
	sum := &Summary{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), BacklogByStatus: map[string]int{},
		ByAssignee: []AssigneeLoad{}, ByDay: []Day{}}
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		return errors.Join(readDays(ctx, tx, from, to, sum), readBacklog(ctx, tx, sum), readTimes(ctx, tx, from, to, sum), readLoad(ctx, tx, sum))
	})
	if err != nil {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	return sum, nil
}

func dateRange(fromS, toS string) (time.Time, time.Time, error) {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	from, to := today.AddDate(0, 0, -29), today
	var err error
	if fromS != "" {
		if from, err = time.Parse(time.DateOnly, fromS); err != nil {
			return from, to, errs.Errorf(errs.ErrInvalidInput, "from must be YYYY-MM-DD")
		}
	}
	if toS != "" {
		if to, err = time.Parse(time.DateOnly, toS); err != nil {
			return from, to, errs.Errorf(errs.ErrInvalidInput, "to must be YYYY-MM-DD")
		}
	}
	if to.Before(from) || to.Sub(from) > maxRange*24*time.Hour {
		return from, to, errs.Errorf(errs.ErrInvalid, "from must be before to, at most %d days apart", maxRange)
	}
	return from, to, nil
}

func readDays(ctx context.Context, tx tenancy.Tx, from, to time.Time, sum *Summary) error {
	rows, err := tx.Query(ctx, `SELECT day::text, created, resolved FROM report_daily WHERE day BETWEEN $1 AND $2 ORDER BY day`, from, to)
	if err != nil {
		return err
	}
	sum.ByDay, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Day, error) {
		var d Day
		err := r.Scan(&d.Day, &d.Created, &d.Resolved)
		sum.Created += d.Created
		sum.Resolved += d.Resolved
		return d, err
	})
	return err
}

func readBacklog(ctx context.Context, tx tenancy.Tx, sum *Summary) error {
	rows, err := tx.Query(ctx, `SELECT status, count FROM report_backlog WHERE count <> 0`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			status string
			n      int
		)
		if err := rows.Scan(&status, &n); err != nil {
			return err
		}
		sum.BacklogByStatus[status] = n
	}
	return rows.Err()
}

func readTimes(ctx context.Context, tx tenancy.Tx, from, to time.Time, sum *Summary) error {
	return tx.QueryRow(ctx, `SELECT
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at))
				FILTER (WHERE first_response_at IS NOT NULL),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at))
				FILTER (WHERE resolved_at IS NOT NULL)
		FROM report_tickets WHERE NOT deleted AND created_at >= $1 AND created_at < $2`,
		from, to.AddDate(0, 0, 1)).Scan(&sum.FirstResponseP50S, &sum.ResolutionP50S)
}

func readLoad(ctx context.Context, tx tenancy.Tx, sum *Summary) error {
	rows, err := tx.Query(ctx, `SELECT assignee_id, count(*) FROM report_tickets
		WHERE NOT deleted AND status IN ('open', 'in_progress', 'pending') AND assignee_id IS NOT NULL
		GROUP BY assignee_id ORDER BY count(*) DESC, assignee_id`)
	if err != nil {
		return err
	}
	sum.ByAssignee, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (AssigneeLoad, error) {
		var a AssigneeLoad
		return a, r.Scan(&a.AssigneeID, &a.Open)
	})
	return err
}

func ignoreNoRows(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}
