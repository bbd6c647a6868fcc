package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/patchdesk/patchdesk/modules/jobs"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// echoArgs is a job that reports its payload to the test.
type echoArgs struct {
	Payload string `json:"payload"`
}

func (echoArgs) Kind() string { return "test_echo" }

type echoWorker struct {
	river.WorkerDefaults[echoArgs]
	done chan string
}

func (w *echoWorker) Work(_ context.Context, j *river.Job[echoArgs]) error {
	w.done <- j.Args.Payload
	return nil
}

// TestInsertedJobsAreWorked: a job inserted in a database's queue is worked
// by Run on the real River tables of that database, and Run returns once
// its context ends.
func TestInsertedJobsAreWorked(t *testing.T) {
	t.Parallel()
	reg := tenancytest.New(t, nil)
	q, err := jobs.New(jobs.Config{Poll: 50 * time.Millisecond}, reg)
	if err != nil {
		t.Fatal(err)
	}
	w := &echoWorker{done: make(chan string, 1)}
	if err := jobs.Add(q, w); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- q.Run(ctx) }()
	dbs, err := reg.Databases(ctx)
	if err != nil || len(dbs) == 0 {
		t.Fatalf("databases: %v %v", dbs, err)
	}
	err = q.Insert(ctx, dbs[0], river.InsertManyParams{Args: echoArgs{Payload: "hello"}, InsertOpts: &river.InsertOpts{Queue: "deliveries"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-w.done:
		if got != "hello" {
			t.Fatalf("worked %q", got)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the job was never worked")
	}
	cancel()
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
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
