package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/bus"
)

// costMeter measures what a bench phase costs, side effects included: CPU
// of the PatchDesk process and of the PostgreSQL cluster (from /proc), and
// transactions, statements and WAL (from PostgreSQL's statistics), from the
// phase's start until every side effect it caused has drained.
type costMeter struct {
	serverPID int
	pgPID     int
	conn      *pgx.Conn
	brokers   []string
	groups    []string
	// statements is false when pg_stat_statements is not loaded.
	statements bool
	timeout    time.Duration
}

// costConfig is what the bench flags give the meter.
type costConfig struct {
	serverPID    int
	pgPID        int
	pgData       string
	pgURL        string
	brokers      string
	groups       string
	drainTimeout time.Duration
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat CPU times: 100 on
// every Linux architecture Go supports (the kernel exports it fixed so that
// user space need not ask).
const clockTicks = 100

// newCostMeter opens the meter, or returns nil when no cost flag was given.
func newCostMeter(ctx context.Context, c costConfig) (*costMeter, error) {
	if c.serverPID == 0 && c.pgPID == 0 && c.pgData == "" && c.pgURL == "" {
		return nil, nil
	}
	if c.pgURL == "" || c.serverPID == 0 || (c.pgPID == 0 && c.pgData == "") {
		return nil, errors.New("cost meter: --server-pid, --pg-url and --pg-data (or --pg-pid) are needed together")
	}
	m := &costMeter{serverPID: c.serverPID, pgPID: c.pgPID, timeout: c.drainTimeout}
	if m.pgPID == 0 {
		pid, err := postmasterPID(c.pgData)
		if err != nil {
			return nil, err
		}
		m.pgPID = pid
	}
	for _, pid := range []int{m.serverPID, m.pgPID} {
		if _, err := procCPU(pid); err != nil {
			return nil, fmt.Errorf("cost meter: %w", err)
		}
	}
	conn, err := pgx.Connect(ctx, c.pgURL)
	if err != nil {
		return nil, fmt.Errorf("cost meter: connect: %w", err)
	}
	m.conn = conn
	if _, err := conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err == nil {
		var loaded bool
		err := conn.QueryRow(ctx, `SELECT current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%'`).Scan(&loaded)
		m.statements = err == nil && loaded
	}
	if c.brokers != "" {
		m.brokers = strings.Split(c.brokers, ",")
		m.groups = strings.Split(c.groups, ",")
	}
	return m, nil
}

func (m *costMeter) close(ctx context.Context) {
	if m != nil {
		_ = m.conn.Close(ctx)
	}
}

// postmasterPID reads the postmaster's pid from its data directory.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("cost meter: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("cost meter: postmaster.pid: %w", err)
	}
	return pid, nil
}

// procStat is the CPU a process used (utime+stime) and the CPU of its
// children it has reaped (cutime+cstime), in clock ticks, and its parent.
type procStat struct {
	self, reaped int64
	ppid         int
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime..cstime fields 14-17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k-3], 10, 64); return v }
	return procStat{self: n(14) + n(15), reaped: n(16) + n(17), ppid: int(n(4))}, nil
}

// procCPU is the CPU time a process used.
func procCPU(pid int) (time.Duration, error) {
	s, err := readProcStat(pid)
	if err != nil {
		return 0, err
	}
	return ticks(s.self), nil
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicks }

// clusterCPU is the CPU time of a PostgreSQL cluster: the postmaster, its
// live children (backends, walwriter, checkpointer, autovacuum…) and its
// exited children, whose time the kernel adds to the postmaster's reaped
// total when it collects them. byKind splits it by process title (client
// backends, autovacuum, walwriter…; "exited" for reaped children).
func clusterCPU(postmaster int) (total time.Duration, byKind map[string]time.Duration, err error) {
	root, err := readProcStat(postmaster)
	if err != nil {
		return 0, nil, fmt.Errorf("postmaster %d: %w", postmaster, err)
	}
	byKind = map[string]time.Duration{"postmaster": ticks(root.self), "exited": ticks(root.reaped)}
	sum := root.self + root.reaped
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readProcStat(pid)
		if err != nil || s.ppid != postmaster {
			continue // gone meanwhile (its time is then in root.reaped next time) or not ours
		}
		sum += s.self + s.reaped
		byKind[processKind(pid)] += ticks(s.self + s.reaped)
	}
	return ticks(sum), byKind, nil
}

// processKind names a PostgreSQL child by its process title: "backend"
// for client connections, else the auxiliary process ("walwriter",
// "autovacuum worker"…).
func processKind(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "other"
	}
	title := strings.TrimSpace(strings.TrimPrefix(strings.ReplaceAll(string(b), "\x00", " "), "postgres: "))
	for _, kind := range []string{"autovacuum worker", "autovacuum launcher", "walwriter", "checkpointer", "background writer",
		"logical replication", "stats", "walsender"} {
		if strings.HasPrefix(title, kind) {
			return kind
		}
	}
	return "backend"
}

// costSnapshot is the state of the counters at one moment.
type costSnapshot struct {
	server, pg time.Duration
	pgKinds    map[string]time.Duration
	xacts      int64
	wal        int64
}

func (m *costMeter) snapshot(ctx context.Context) (costSnapshot, error) {
	var s costSnapshot
	var err error
	if s.server, err = procCPU(m.serverPID); err != nil {
		return s, fmt.Errorf("server cpu: %w", err)
	}
	if s.pg, s.pgKinds, err = clusterCPU(m.pgPID); err != nil {
		return s, err
	}
	// Statistics are flushed by backends at transaction end, at most once a
	// second: pg_stat_force_next_flush is ours only; the wait in drain lets
	// the others catch up.
	err = m.conn.QueryRow(ctx, `SELECT (SELECT sum(xact_commit + xact_rollback)::bigint FROM pg_stat_database),
		pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint`).Scan(&s.xacts, &s.wal)
	if err != nil {
		return s, fmt.Errorf("cost meter: read statistics: %w", err)
	}
	return s, nil
}

// start resets the statement statistics and takes the first snapshot.
func (m *costMeter) start(ctx context.Context) (costSnapshot, error) {
	if m.statements {
		if _, err := m.conn.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
			return costSnapshot{}, fmt.Errorf("cost meter: reset statements: %w", err)
		}
	}
	return m.snapshot(ctx)
}

// drain waits until the outbox is published, every consumer group has
// committed the end of the events topic, and no delivery or search refresh
// job is left to run; it returns how long that took.
func (m *costMeter) drain(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(m.timeout)
	for {
		left, what, err := m.pending(ctx)
		if err != nil {
			return 0, err
		}
		if left == 0 {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("cost meter: not drained after %s: %d %s left", m.timeout, left, what)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pending counts what is left to drain, Kafka first (which costs
// PostgreSQL nothing), then the outbox and the job queue.
func (m *costMeter) pending(ctx context.Context) (int64, string, error) {
	if len(m.brokers) > 0 {
		lag, err := groupLag(ctx, m.brokers, m.groups)
		if err != nil {
			return 0, "", err
		}
		if lag > 0 {
			return lag, "consumer lag", nil
		}
	}
	var outbox, jobs int64
	err := m.conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM infra.outbox WHERE published_at IS NULL),
		(SELECT count(*) FROM infra.river_job WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending')
			AND kind IN ('patchdesk.delivery', 'patchdesk.search-refresh'))`).Scan(&outbox, &jobs)
	if err != nil {
		return 0, "", fmt.Errorf("cost meter: read backlog: %w", err)
	}
	switch {
	case outbox > 0:
		return outbox, "unpublished outbox events", nil
	case jobs > 0:
		return jobs, "delivery and refresh jobs", nil
	}
	return 0, "", nil
}

// groupLag sums, over the events topic's partitions and the groups, the
// messages between a group's committed offset and the partition's end.
func groupLag(ctx context.Context, brokers, groups []string) (int64, error) {
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 5 * time.Second}
	meta, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{bus.TopicEvents}})
	if err != nil {
		return 0, fmt.Errorf("cost meter: kafka metadata: %w", err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return 0, fmt.Errorf("cost meter: topic %s not found", bus.TopicEvents)
	}
	var parts []int
	var req []kafkago.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		parts = append(parts, p.ID)
		req = append(req, kafkago.LastOffsetOf(p.ID))
	}
	ends, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{bus.TopicEvents: req}})
	if err != nil {
		return 0, fmt.Errorf("cost meter: kafka end offsets: %w", err)
	}
	end := map[int]int64{}
	for _, po := range ends.Topics[bus.TopicEvents] {
		end[po.Partition] = po.LastOffset
	}
	var lag int64
	for _, g := range groups {
		res, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: g, Topics: map[string][]int{bus.TopicEvents: parts}})
		if err != nil {
			return 0, fmt.Errorf("cost meter: offsets of %s: %w", g, err)
		}
		for _, p := range res.Topics[bus.TopicEvents] {
			committed := max(p.CommittedOffset, 0)
			lag += max(end[p.Partition]-committed, 0)
		}
	}
	return lag, nil
}

// costResult is a phase's cost per operation.
type costResult struct {
	ServerCPUms float64 `json:"server_cpu_ms_per_op"`
	PGCPUms     float64 `json:"pg_cpu_ms_per_op"`
	Xacts       float64 `json:"transactions_per_op"`
	Statements  float64 `json:"statements_per_op"`
	// Plans and PlanMs count statement planning (pg_stat_statements.track_planning).
	Plans    float64 `json:"plans_per_op"`
	PlanMs   float64 `json:"plan_ms_per_op"`
	WALBytes float64 `json:"wal_bytes_per_op"`
	DrainSec float64 `json:"drain_seconds"`
	// PGByKind splits PGCPUms by PostgreSQL process kind.
	PGByKind map[string]float64 `json:"pg_cpu_ms_per_op_by_process"`
	Top      []statementCost    `json:"statements,omitempty"`
}

// statementCost is one statement's share of a phase.
type statementCost struct {
	Query     string  `json:"query"`
	CallsOp   float64 `json:"calls_per_op"`
	ExecMsOp  float64 `json:"exec_ms_per_op"`
	PlanMsOp  float64 `json:"plan_ms_per_op"`
	PlansOp   float64 `json:"plans_per_op"`
	SharePct  float64 `json:"share_pct"`
	RowsPerOp float64 `json:"rows_per_op"`
}

// finish takes the last snapshot after the drain and turns the differences
// into per-operation figures.
func (m *costMeter) finish(ctx context.Context, before costSnapshot, ops int, drained time.Duration) (*costResult, error) {
	// Let backends flush their transaction counts (at most once a second).
	time.Sleep(1100 * time.Millisecond)
	after, err := m.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	per := func(v float64) float64 { return v / float64(max(ops, 1)) }
	r := &costResult{
		ServerCPUms: per(float64((after.server - before.server).Microseconds()) / 1000),
		PGCPUms:     per(float64((after.pg - before.pg).Microseconds()) / 1000),
		Xacts:       per(float64(after.xacts - before.xacts)),
		WALBytes:    per(float64(after.wal - before.wal)),
		DrainSec:    drained.Seconds(),
		PGByKind:    map[string]float64{},
	}
	for k, v := range after.pgKinds {
		if d := v - before.pgKinds[k]; d > 0 {
			r.PGByKind[k] = per(float64(d.Microseconds()) / 1000)
		}
	}
	if !m.statements {
		return r, nil
	}
	// The same statement in each tenant's schema is a different entry
	// (its relations differ): grouped by text.
	rows, err := m.conn.Query(ctx, `SELECT regexp_replace(query, '\s+', ' ', 'g') AS q, sum(calls)::bigint, sum(total_exec_time),
		sum(total_plan_time), sum(plans)::bigint, sum(rows)::bigint
		FROM pg_stat_statements WHERE toplevel AND query NOT LIKE '%pg_stat_statements%'
		GROUP BY q ORDER BY 3 DESC`)
	if err != nil {
		return nil, fmt.Errorf("cost meter: read statements: %w", err)
	}
	defer rows.Close()
	var total float64
	var all []statementCost
	for rows.Next() {
		var (
			q                      string
			calls, plans, n        int64
			execMillis, planMillis float64
		)
		if err := rows.Scan(&q, &calls, &execMillis, &planMillis, &plans, &n); err != nil {
			return nil, fmt.Errorf("cost meter: read statements: %w", err)
		}
		r.Statements += per(float64(calls))
		total += execMillis
		r.PlanMs += per(planMillis)
		r.Plans += per(float64(plans))
		all = append(all, statementCost{Query: q, CallsOp: per(float64(calls)), ExecMsOp: per(execMillis), PlanMsOp: per(planMillis),
			PlansOp: per(float64(plans)), RowsPerOp: per(float64(n))})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cost meter: read statements: %w", err)
	}
	for i := range all {
		if total > 0 {
			all[i].SharePct = 100 * all[i].ExecMsOp * float64(max(ops, 1)) / total
		}
	}
	r.Top = all[:min(len(all), 15)]
	return r, nil
}

// printCost writes the cost table and, per phase, its costliest statements.
func printCost(out io.Writer, results []benchResult) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "op\tserver CPU ms/op\tPG CPU ms/op\txacts/op\tstmts/op\tWAL B/op\tdrain s\t\n")
	for _, r := range results {
		if c := r.Cost; c != nil {
			fmt.Fprintf(w, "%s\t%.2f\t%.2f\t%.1f\t%.1f\t%.0f\t%.2f\t\n", r.Op, c.ServerCPUms, c.PGCPUms, c.Xacts, c.Statements, c.WALBytes, c.DrainSec)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if r.Cost == nil {
			continue
		}
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(r.Cost.PGByKind)) {
			kinds = append(kinds, fmt.Sprintf("%s %.2f", k, r.Cost.PGByKind[k]))
		}
		fmt.Fprintf(out, "\n%s: PostgreSQL CPU ms/op by process: %s\n", r.Op, strings.Join(kinds, ", "))
		if len(r.Cost.Top) == 0 {
			continue
		}
		fmt.Fprintf(out, "%s: statements by execution time (pg_stat_statements, top level)\n", r.Op)
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintf(out, "(planning: %.1f plans/op, %.3f ms/op; 0 unless pg_stat_statements.track_planning)\n", r.Cost.Plans, r.Cost.PlanMs)
		fmt.Fprintf(w, "calls/op\texec ms/op\tplans/op\tplan ms/op\tshare\tstatement\n")
		for _, s := range r.Cost.Top {
			q := s.Query
			if len(q) > 110 {
				q = q[:110] + "…"
			}
			fmt.Fprintf(w, "%.2f\t%.3f\t%.2f\t%.3f\t%.1f%%\t%s\n", s.CallsOp, s.ExecMsOp, s.PlansOp, s.PlanMsOp, s.SharePct, q)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}
