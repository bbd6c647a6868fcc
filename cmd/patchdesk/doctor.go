package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/outbox"
	"github.com/patchdesk/patchdesk/modules/reports"
	"github.com/patchdesk/patchdesk/modules/search"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Check outcomes of doctor: FAIL needs a human (non-zero exit), WARN is
// worth a look, SKIP could not be checked because another check failed.
const (
	checkOK   = "OK"
	checkWarn = "WARN"
	checkFail = "FAIL"
	checkSkip = "SKIP"
)

// consumerGroups are the groups doctor reports the lag of.
func consumerGroups() []string {
	return []string{notify.ConsumerGroup, reports.ConsumerGroup, search.ConsumerGroup}
}

// errNeedsHuman is doctor's error when some check failed: the table says which.
var errNeedsHuman = errors.New("doctor: some checks failed (see FAIL rows)")

// doctorCheck is one row of doctor's report.
type doctorCheck struct {
	Check  string `json:"check"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// doctorReport is what doctor prints (--json) and decides its exit code on.
type doctorReport struct {
	OK     bool          `json:"ok"`
	Checks []doctorCheck `json:"checks"`
}

func (r *doctorReport) add(check, status, detail string, args ...any) {
	r.Checks = append(r.Checks, doctorCheck{Check: check, Status: status, Detail: fmt.Sprintf(detail, args...)})
}

// doctorLimits are the thresholds past which doctor warns or fails.
type doctorLimits struct {
	OutboxAge  time.Duration
	Lag        int64
	MoveStuck  time.Duration
	DeadWindow time.Duration
}

// doctor checks a deployment from the outside, read-only: the control
// schema, tenants, relays, outboxes, the broker and its topics, consumer
// lag, dead letters, dead deliveries and tier moves. It exits non-zero when
// a check fails.
func doctor(ctx context.Context, args []string) error { return doctorTo(ctx, os.Stdout, args) }

// doctorTo is doctor writing its report to w.
func doctorTo(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	c := bindConfig(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var lim doctorLimits
	fs.DurationVar(&lim.OutboxAge, "outbox-age", 5*time.Minute, "fail when a database's oldest unpublished event is older")
	fs.Int64Var(&lim.Lag, "max-lag", 1000, "warn when a consumer group lags by more messages")
	fs.DurationVar(&lim.MoveStuck, "move-stuck-after", 15*time.Minute, "fail when a tier move stays in one step longer")
	fs.DurationVar(&lim.DeadWindow, "dead-window", 24*time.Hour, "how far back dead deliveries are counted")
	if _, err := parse(fs, args, c); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil)) // the report is the output
	rep := runDoctor(ctx, c, log, lim)
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("doctor: %w", err)
		}
	} else {
		printDoctor(w, rep)
	}
	if !rep.OK {
		return errNeedsHuman
	}
	return nil
}

func printDoctor(w io.Writer, rep doctorReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, c := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Check, c.Status, c.Detail)
	}
	_ = tw.Flush()
	if rep.OK {
		fmt.Fprintln(w, "\nall checks passed")
	} else {
		fmt.Fprintln(w, "\nsome checks FAILED: see docs/runbook.md")
	}
}

// runDoctor runs every check; one failing check never hides the others.
func runDoctor(ctx context.Context, c *config, log *slog.Logger, lim doctorLimits) doctorReport {
	var rep doctorReport
	runChecks(ctx, c, log, lim, &rep)
	rep.OK = true
	for _, ch := range rep.Checks {
		rep.OK = rep.OK && ch.Status != checkFail
	}
	return rep
}

// runChecks adds every check's row to rep.
func runChecks(ctx context.Context, c *config, log *slog.Logger, lim doctorLimits, rep *doctorReport) {
	reg, err := openRegistryReadOnly(ctx, c, log)
	if err != nil {
		rep.add("control database", checkFail, "%v", err)
	} else {
		defer reg.Close()
		checkControl(ctx, reg, rep, lim)
	}
	brokers, err := doctorBrokers(c)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = bus.Ping(pctx, brokers)
		cancel()
	}
	if err != nil {
		rep.add("broker", checkFail, "%v", err)
		for _, name := range []string{"topics", "consumer lag", "dead letters"} {
			rep.add(name, checkSkip, "broker unreachable")
		}
		return
	}
	rep.add("broker", checkOK, "%s reachable", strings.Join(brokers, ","))
	checkBroker(ctx, brokers, reg, rep, lim)
}

// openRegistryReadOnly opens the control plane without migrating it (a
// schema behind is reported, not fixed) and without creating the database.
func openRegistryReadOnly(ctx context.Context, c *config, log *slog.Logger) (*tenancy.Registry, error) {
	cfg := tenancy.Config{DatabaseURL: c.DatabaseURL, Logger: log, ResolveEnv: lookupEnv, NoMigrate: true, MaxConns: 4}
	if c.SecretKey != "" {
		key, err := tenancy.ParseSecretKey(c.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tenancy.SecretKeyEnv, err)
		}
		cfg.SecretKey = key
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return tenancy.Open(octx, cfg)
}

// doctorBrokers is the cluster to check: KAFKA_BROKERS, or the embedded
// broker's address when it is fixed (PATCHDESK_KAFKA_ADDR).
func doctorBrokers(c *config) ([]string, error) {
	if c.KafkaBrokers != "" {
		return strings.Split(c.KafkaBrokers, ","), nil
	}
	if _, port, err := net.SplitHostPort(c.KafkaAddr); err == nil && port != "0" {
		return []string{c.KafkaAddr}, nil
	}
	return nil, errors.New("no broker address: set KAFKA_BROKERS, or PATCHDESK_KAFKA_ADDR to the embedded broker's fixed address")
}

func checkControl(ctx context.Context, reg *tenancy.Registry, rep *doctorReport, lim doctorLimits) {
	have, want, err := reg.ControlVersion(ctx)
	switch {
	case err != nil:
		rep.add("control schema", checkFail, "%v", err)
		return // the other control checks read tables that may not exist
	case have < want:
		rep.add("control schema", checkFail, "version %d, binary needs %d: run patchdesk migrate", have, want)
	case have > want:
		rep.add("control schema", checkWarn, "version %d is newer than this binary's %d: an older binary is running", have, want)
	default:
		rep.add("control schema", checkOK, "version %d", have)
	}

	if counts, err := reg.CountByTierStatus(ctx); err != nil {
		rep.add("tenants", checkFail, "%v", err)
	} else {
		status, failed := checkOK, 0
		var parts []string
		for k, n := range counts {
			parts = append(parts, fmt.Sprintf("%s/%s=%d", k[0], k[1], n))
			if k[1] == tenancy.StatusFailed {
				failed += n
			}
		}
		if failed > 0 {
			status = checkWarn
		}
		rep.add("tenants", status, "%s", strings.Join(sorted(parts), " "))
	}

	behind, err := reg.TenantsBehind(ctx)
	switch {
	case err != nil:
		rep.add("tenants behind", checkFail, "%v", err)
	case len(behind) > 0:
		var slugs []string
		for i, t := range behind {
			if i == 5 {
				slugs = append(slugs, fmt.Sprintf("and %d more", len(behind)-5))
				break
			}
			slugs = append(slugs, fmt.Sprintf("%s (v%d)", t.Slug, t.SchemaVersion))
		}
		rep.add("tenants behind", checkFail, "%d below v%d, answered 503: %s; run patchdesk migrate",
			len(behind), reg.LatestVersion(), strings.Join(slugs, ", "))
	default:
		rep.add("tenants behind", checkOK, "every tenant at v%d", reg.LatestVersion())
	}

	if dbs, err := outbox.Inspect(ctx, reg); err != nil {
		rep.add("relay/outbox", checkFail, "%v", err)
	} else {
		for _, d := range dbs {
			name := "relay/outbox " + d.Database
			detail := fmt.Sprintf("backlog %d, oldest %s", d.Backlog, d.Oldest.Round(time.Second))
			switch {
			case !d.Leader:
				rep.add(name, checkFail, "no relay leads this database (is a worker running?); %s", detail)
			case d.Oldest > lim.OutboxAge:
				rep.add(name, checkFail, "relay leads but events wait: %s", detail)
			default:
				rep.add(name, checkOK, "relay leads; %s", detail)
			}
		}
	}

	checkDeadDeliveries(ctx, reg, rep, lim.DeadWindow)

	moves, err := reg.UnfinishedMoves(ctx)
	switch {
	case err != nil:
		rep.add("tier moves", checkFail, "%v", err)
	case len(moves) == 0:
		rep.add("tier moves", checkOK, "none in progress")
	}
	for _, m := range moves {
		name := fmt.Sprintf("tier move %d", m.ID)
		detail := fmt.Sprintf("%s %s→%s in %s for %s", m.Slug, m.FromDatabase, m.ToDatabase, m.State, m.InState.Round(time.Second))
		switch {
		case m.Error != "":
			rep.add(name, checkFail, "%s, stopped: %s (resume or abort it)", detail, m.Error)
		case m.InState > lim.MoveStuck:
			rep.add(name, checkFail, "%s: stuck (resume or abort it)", detail)
		default:
			rep.add(name, checkOK, "%s", detail)
		}
	}
}

// checkDeadDeliveries counts, over every servable tenant, the deliveries
// that gave up within the window: customers' endpoints or mail broken.
func checkDeadDeliveries(ctx context.Context, reg *tenancy.Registry, rep *doctorReport, window time.Duration) {
	list, err := reg.List(ctx)
	if err != nil {
		rep.add("dead deliveries", checkFail, "%v", err)
		return
	}
	since := time.Now().Add(-window)
	total, worst, worstN := 0, "", 0
	var errs []string
	for _, t := range list {
		if t.Status != tenancy.StatusActive && t.Status != tenancy.StatusSuspended || t.SchemaVersion < reg.LatestVersion() {
			continue
		}
		var n int
		err := reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
			var err error
			n, err = notify.CountDead(ctx, tx, since)
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", t.Slug, err))
			continue
		}
		total += n
		if n > worstN {
			worst, worstN = t.Slug, n
		}
	}
	switch {
	case len(errs) > 0:
		rep.add("dead deliveries", checkFail, "could not read %d tenants: %s", len(errs), errs[0])
	case total > 0:
		rep.add("dead deliveries", checkWarn, "%d in the last %s (most: %s with %d); see the tenant's delivery list and resend",
			total, window, worst, worstN)
	default:
		rep.add("dead deliveries", checkOK, "none in the last %s", window)
	}
}

func checkBroker(ctx context.Context, brokers []string, reg *tenancy.Registry, rep *doctorReport, lim doctorLimits) {
	if topics, err := bus.Topics(ctx, brokers); err != nil {
		rep.add("topics", checkFail, "%v", err)
	} else {
		for _, t := range topics {
			if p := t.Problem(); p != "" {
				rep.add("topic "+t.Topic, checkFail, "%s", p)
			} else {
				rep.add("topic "+t.Topic, checkOK, "%d partitions, retention.ms=%s", t.Partitions, t.RetentionMS)
			}
		}
	}
	for _, g := range consumerGroups() {
		lag, err := bus.GroupLag(ctx, brokers, bus.TopicEvents, g)
		switch {
		case err != nil:
			rep.add("lag "+g, checkFail, "%v", err)
		case lag > lim.Lag:
			rep.add("lag "+g, checkWarn, "%d messages behind (more than %d): is the group consuming?", lag, lim.Lag)
		default:
			rep.add("lag "+g, checkOK, "%d messages behind", lag)
		}
	}
	dead, err := bus.ReadDeadLetters(ctx, brokers)
	if err != nil {
		rep.add("dead letters", checkFail, "%v", err)
		return
	}
	var replays map[string]tenancy.Replay
	if reg != nil {
		if replays, err = reg.Replays(ctx); err != nil {
			rep.add("dead letters", checkFail, "%v", err)
			return
		}
	}
	pending := map[string]int{}
	n := 0
	for _, d := range dead {
		if _, done := replays[d.ID]; !done {
			pending[d.Group]++
			n++
		}
	}
	if n == 0 {
		rep.add("dead letters", checkOK, "none waiting (%d in the topic, all replayed)", len(dead))
		return
	}
	var parts []string
	for g, k := range pending {
		parts = append(parts, fmt.Sprintf("%s=%d", g, k))
	}
	rep.add("dead letters", checkFail, "%d waiting (%s): fix the cause, then patchdesk deadletter replay", n, strings.Join(sorted(parts), " "))
}

// sorted sorts strings in place and returns them.
func sorted(s []string) []string {
	slices.Sort(s)
	return s
}
