package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/tenancy"
)

const deadletterUsage = `usage: patchdesk deadletter list|replay [--group G] [--id ID] [flags]

  list     show the dead-lettered messages: id, consumer group, event, the
           error that made the consumer give up, and whether it was replayed
  replay   send the selected dead letters (default: every one not replayed
           yet) back through their consumer group's handler; consumers
           deduplicate by event id, so replaying twice changes nothing
`

// deadletterFlags are the flags of the deadletter subcommands.
type deadletterFlags struct {
	group  string
	id     string
	asJSON bool
	again  bool
}

// deadletter lists dead-lettered messages or replays them through their
// consumer once their cause is fixed.
func deadletter(ctx context.Context, args []string) error { return deadletterTo(ctx, os.Stdout, args) }

// deadletterTo is deadletter writing its output to w.
func deadletterTo(ctx context.Context, w io.Writer, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand\n%s", deadletterUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("deadletter "+sub, flag.ContinueOnError)
	c := bindConfig(fs)
	var f deadletterFlags
	fs.StringVar(&f.group, "group", "", "only dead letters of this consumer group")
	fs.StringVar(&f.id, "id", "", "only this dead letter (its id from list)")
	fs.BoolVar(&f.asJSON, "json", false, "JSON output (list)")
	fs.BoolVar(&f.again, "again", false, "replay dead letters that were already replayed too (replay)")
	if _, err := parse(fs, args[1:], c); err != nil {
		return err
	}
	brokers, err := doctorBrokers(c)
	if err != nil {
		return err
	}
	log := newLogger(c)
	reg, err := openRegistry(ctx, c, log)
	if err != nil {
		return err
	}
	defer reg.Close()
	switch sub {
	case "list":
		return deadletterList(ctx, w, reg, brokers, f)
	case "replay":
		return deadletterReplay(ctx, w, c, reg, brokers, f)
	default:
		return fmt.Errorf("unknown deadletter subcommand %q\n%s", sub, deadletterUsage)
	}
}

// deadLetterRow is a dead letter with its replay record, as list prints it.
type deadLetterRow struct {
	bus.DeadMessage
	Replays    int        `json:"replays"`
	ReplayedAt *time.Time `json:"replayed_at,omitempty"`
}

// selectDeadLetters reads the dead-letter topic and keeps the ones the
// flags select.
func selectDeadLetters(ctx context.Context, reg *tenancy.Registry, brokers []string, f deadletterFlags) ([]deadLetterRow, error) {
	all, err := bus.ReadDeadLetters(ctx, brokers)
	if err != nil {
		return nil, err
	}
	replays, err := reg.Replays(ctx)
	if err != nil {
		return nil, err
	}
	var out []deadLetterRow
	for _, d := range all {
		if (f.group != "" && d.Group != f.group) || (f.id != "" && d.ID != f.id) {
			continue
		}
		row := deadLetterRow{DeadMessage: d}
		if rp, ok := replays[d.ID]; ok {
			row.Replays, row.ReplayedAt = rp.Replays, &rp.ReplayedAt
		}
		out = append(out, row)
	}
	if f.id != "" && len(out) == 0 {
		return nil, fmt.Errorf("no dead letter %q (of group %q) in %s", f.id, f.group, bus.TopicDeadLetter)
	}
	return out, nil
}

func deadletterList(ctx context.Context, w io.Writer, reg *tenancy.Registry, brokers []string, f deadletterFlags) error {
	rows, err := selectDeadLetters(ctx, reg, brokers, f)
	if err != nil {
		return err
	}
	if f.asJSON {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("deadletter list: %w", err)
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tGROUP\tEVENT\tTYPE\tTENANT\tTIME\tSTATE\tERROR")
	for _, r := range rows {
		state := "waiting"
		if r.Replays > 0 {
			state = fmt.Sprintf("replayed x%d", r.Replays)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Group, r.EventID, r.EventType, r.TenantID,
			r.Time.UTC().Format(time.RFC3339), state, oneLine(r.Error, 100))
	}
	return tw.Flush()
}

// deadletterReplay runs each selected dead letter through the handler of
// the group that gave up on it, in this process, and records the successes.
// The handler is the consumer's own (same deduplication by event id), so a
// replay after a partial success, or twice, applies the event once.
func deadletterReplay(ctx context.Context, w io.Writer, c *config, reg *tenancy.Registry, brokers []string, f deadletterFlags) error {
	rows, err := selectDeadLetters(ctx, reg, brokers, f)
	if err != nil {
		return err
	}
	handlers, err := consumerHandlers(ctx, c, reg, brokers)
	if err != nil {
		return err
	}
	replayed, skipped, failed := 0, 0, 0
	for _, r := range rows {
		if r.Replays > 0 && !f.again {
			skipped++
			continue
		}
		h, err := handlers.Handler(r.Group)
		if err != nil {
			fmt.Fprintf(w, "%s: FAILED: %v\n", r.ID, err)
			failed++
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = h(hctx, r.Original())
		cancel()
		if err == nil {
			err = reg.RecordReplay(ctx, r.ID, r.Group, r.EventID)
		}
		if err != nil {
			fmt.Fprintf(w, "%s: FAILED (%s, event %s): %v\n", r.ID, r.Group, r.EventID, err)
			failed++
			continue
		}
		fmt.Fprintf(w, "%s: replayed through %s (event %s)\n", r.ID, r.Group, r.EventID)
		replayed++
	}
	fmt.Fprintf(w, "replayed %d, skipped %d already replayed (--again replays them), failed %d\n", replayed, skipped, failed)
	if failed > 0 {
		return fmt.Errorf("deadletter replay: %d of %d failed", failed, replayed+failed)
	}
	return nil
}

// consumerHandlers builds the application as a worker would, without
// starting anything, to reach the consumer groups' handlers.
func consumerHandlers(ctx context.Context, c *config, reg *tenancy.Registry, brokers []string) (*api.Workers, error) {
	dur, err := loadDurability()
	if err != nil {
		return nil, err
	}
	log := newLogger(c)
	metrics := obs.NewMetrics()
	acfg, err := c.attachments()
	if err != nil {
		return nil, err
	}
	cfg := api.Config{
		Attachments: acfg,
		Notify: notify.Config{
			SMTPURL: c.SMTPURL, MailDir: filepath.Join(c.DataDir, "mail"), MailFrom: c.MailFrom,
			AllowPrivateWebhooks: c.WebhookAllowPrivate,
		},
	}
	dur.apply(&cfg.Jobs, &cfg.Notify)
	app, err := api.New(ctx, reg, log, metrics, cfg)
	if err != nil {
		return nil, fmt.Errorf("deadletter replay: %w", err)
	}
	w, err := api.Background(app, reg, metrics, log, api.BackgroundConfig{Brokers: brokers})
	if err != nil {
		return nil, fmt.Errorf("deadletter replay: %w", err)
	}
	return w, nil
}

// oneLine shortens s to one line of at most n runes for a table cell.
func oneLine(s string, n int) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' || r == '\t' {
			r = ' '
		}
		if len(out) == n {
			return string(out) + "…"
		}
		out = append(out, r)
	}
	return string(out)
}
