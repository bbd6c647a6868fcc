package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/patchdesk/patchdesk/modules/jobs"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

type echoArgs struct {
	N int `json:"n"`
}

func (echoArgs) Kind() string { return "test.echo" }

func (echoArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "deliveries", UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type echoWorker struct {
	river.WorkerDefaults[echoArgs]
	done chan int
}

func (w *echoWorker) Work(_ context.Context, job *river.Job[echoArgs]) error {
	w.done <- job.Args.N
	return nil
}

type tickArgs struct {
	Database string `json:"database"`
}

func (tickArgs) Kind() string { return "test.tick" }

func (tickArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: "deliveries"} }

type tickWorker struct {
	river.WorkerDefaults[tickArgs]
	done chan string
}

func (w *tickWorker) Work(_ context.Context, job *river.Job[tickArgs]) error {
	w.done <- job.Args.Database
	return nil
}

// TestQueue: a unique job inserted twice is queued once (InsertNew says
// which insert was new), jobs are worked once the queue runs, and a
// periodic job runs at start for every database, built for that database.
func TestQueue(t *testing.T) {
	t.Parallel()
	reg := tenancytest.New(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, err := jobs.New(jobs.Config{Poll: 50 * time.Millisecond}, reg)
	if err != nil {
		t.Fatal(err)
	}
	echo, tick := &echoWorker{done: make(chan int, 4)}, &tickWorker{done: make(chan string, 4)}
	if err := jobs.Add(q, echo); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Add(q, tick); err != nil {
		t.Fatal(err)
	}
	q.Periodic(time.Hour, func(db string) river.JobArgs { return tickArgs{Database: db} })
	dbs, err := reg.Databases(ctx)
	if err != nil || len(dbs) == 0 {
		t.Fatalf("databases: %v %v", dbs, err)
	}
	for i, want := range []int{1, 0} {
		n, err := q.InsertNew(ctx, dbs[0], river.InsertManyParams{Args: echoArgs{N: 7}})
		if err != nil || n != want {
			t.Fatalf("insert %d: %d new, %v; want %d", i+1, n, err, want)
		}
	}
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	timeout := time.After(60 * time.Second)
	for got := 0; got < 2; got++ {
		select {
		case n := <-echo.done:
			if n != 7 {
				t.Fatalf("echo job %d", n)
			}
		case db := <-tick.done:
			if db != dbs[0] {
				t.Fatalf("periodic job built for %q, want %q", db, dbs[0])
			}
		case <-timeout:
			t.Fatal("jobs not worked within 60s")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-echo.done:
		t.Fatalf("the unique job ran twice (%d)", n)
	default:
	}
}
func TestConstructorAndRegistrationValidate(t *testing.T) {
	t.Parallel()
	if _, err := jobs.New(jobs.Config{}, nil); err == nil {
		t.Fatal("a queue without databases was built")
	}
	q, err := jobs.New(jobs.Config{}, tenancytest.New(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Add(q, &echoWorker{}); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Add(q, &echoWorker{}); err == nil {
		t.Fatal("a second worker for the same kind was accepted")
	}
}
