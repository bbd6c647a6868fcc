// Package jobs runs PatchDesk's scheduled work (delivery attempts, report
// exports) on River, with one River client per tenant database and its tables
// in that database's infra schema. Modules register workers before Run and
// insert jobs for a tenant's database.
package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
)

// Databases gives the job queue its databases; *tenancy.Registry implements it.
type Databases interface {
	Databases(ctx context.Context) ([]string, error)
	JobDriver(ctx context.Context, databaseID string) (riverdriver.Driver[pgx.Tx], error)
}

// Config configures the queue.
type Config struct {
	// Poll is how often due jobs are looked for without a notification (default 1s).
	Poll time.Duration
	// MaxAttempts is River's default attempt limit (default 12).
	MaxAttempts int
	// RescueAfter is how long a job may stay running before River makes it
	// retryable again (default 5m). It must exceed the longest job timeout;
	// River's default, an hour, left deliveries stuck after a database blip
	// kept the completer from recording an attempt.
	RescueAfter time.Duration
	Log         *slog.Logger
}

// QueueSearch is the queue of search index refreshes.
const QueueSearch = "search"

// QueueMaintenance is the queue of housekeeping jobs (expiring idempotency
// keys): one worker, they are neither urgent nor many.
const QueueMaintenance = "maintenance"

// Queues, with their concurrency.
var queues = map[string]river.QueueConfig{
	"deliveries":     {MaxWorkers: 20},
	"exports":        {MaxWorkers: 2},
	QueueSearch:      {MaxWorkers: 2},
	QueueMaintenance: {MaxWorkers: 1},
}

// Queue inserts and works jobs.
type Queue struct {
	cfg     Config
	dbs     Databases
	workers *river.Workers

	mu       sync.Mutex
	clients  map[string]*river.Client[pgx.Tx]
	periodic []periodicJob
}

// periodicJob is a job every database's queue inserts on a schedule.
type periodicJob struct {
	every time.Duration
	args  func(databaseID string) river.JobArgs
}

// New builds a queue; register workers with Add before Run.
func New(cfg Config, dbs Databases) (*Queue, error) {
	cfg.Poll = cmp.Or(cfg.Poll, time.Second)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, 12)
	cfg.RescueAfter = cmp.Or(cfg.RescueAfter, 5*time.Minute)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if dbs == nil {
		return nil, errors.New("jobs: databases are required")
	}
	return &Queue{cfg: cfg, dbs: dbs, workers: river.NewWorkers(), clients: map[string]*river.Client[pgx.Tx]{}}, nil
}

// Add registers the worker of one job kind.
func Add[T river.JobArgs](q *Queue, w river.Worker[T]) error {
	if err := river.AddWorkerSafely(q.workers, w); err != nil {
		return fmt.Errorf("register job worker: %w", err)
	}
	return nil
}

// Periodic makes every database's queue insert the job args builds for it
// every interval, and once at start. River inserts periodic jobs from the
// elected leader of each database only, so several worker processes do not
// multiply them. Register before Run.
func (q *Queue) Periodic(every time.Duration, args func(databaseID string) river.JobArgs) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.periodic = append(q.periodic, periodicJob{every: every, args: args})
}

// Insert schedules jobs in a database's queue.
func (q *Queue) Insert(ctx context.Context, databaseID string, params ...river.InsertManyParams) error {
	_, err := q.InsertNew(ctx, databaseID, params...)
	return err
}

// InsertNew schedules jobs in a database's queue and reports how many were
// new: a unique job that is already queued or running is skipped.
func (q *Queue) InsertNew(ctx context.Context, databaseID string, params ...river.InsertManyParams) (int, error) {
	c, err := q.client(ctx, databaseID)
	if err != nil {
		return 0, err
	}
	res, err := c.InsertMany(ctx, params)
	if err != nil {
		return 0, fmt.Errorf("insert jobs: %w", err)
	}
	n := 0
	for _, r := range res {
		if !r.UniqueSkippedAsDuplicate {
			n++
		}
	}
	return n, nil
}

func (q *Queue) client(ctx context.Context, databaseID string) (*river.Client[pgx.Tx], error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if c, ok := q.clients[databaseID]; ok {
		return c, nil
	}
	driver, err := q.dbs.JobDriver(ctx, databaseID)
	if err != nil {
		return nil, err
	}
	var periodic []*river.PeriodicJob
	for _, p := range q.periodic {
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(p.every),
			func() (river.JobArgs, *river.InsertOpts) { return p.args(databaseID), nil },
			&river.PeriodicJobOpts{RunOnStart: true}))
	}
	c, err := river.NewClient(driver, &river.Config{
		Schema:               "infra",
		Queues:               queues,
		Workers:              q.workers,
		FetchCooldown:        20 * time.Millisecond,
		FetchPollInterval:    q.cfg.Poll,
		Logger:               q.cfg.Log,
		MaxAttempts:          q.cfg.MaxAttempts,
		RescueStuckJobsAfter: q.cfg.RescueAfter,
		JobTimeout:           min(time.Minute, q.cfg.RescueAfter/2), // River requires it below the rescue
		PeriodicJobs:         periodic,
	})
	if err != nil {
		return nil, fmt.Errorf("job client for %s: %w", databaseID, err)
	}
	q.clients[databaseID] = c
	return c, nil
}

// Run works the jobs of every database until ctx ends, picking up databases
// added later (tier moves), then stops the clients, letting jobs in progress
// finish.
func (q *Queue) Run(ctx context.Context) error {
	started := map[string]*river.Client[pgx.Tx]{}
	for {
		ids, err := q.dbs.Databases(ctx)
		if err != nil && ctx.Err() == nil {
			q.cfg.Log.Warn("jobs: list databases", "err", err)
		}
		for _, id := range ids {
			if started[id] != nil {
				continue
			}
			c, err := q.client(ctx, id)
			if err == nil {
				err = c.Start(context.WithoutCancel(ctx))
			}
			if err != nil {
				q.cfg.Log.Warn("jobs: start client", "database", id, "err", err)
				continue
			}
			started[id] = c
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			continue
		}
		break
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	for _, c := range started {
		if err := c.Stop(stopCtx); err != nil {
			q.cfg.Log.Warn("stop job client", "err", err)
		}
	}
	return nil
}
