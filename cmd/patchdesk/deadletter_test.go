package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/search"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestDeadLetterReplay dead-letters a real event end to end: the search
// consumer of a running serve cannot write a tenant's index (its table is
// renamed away), gives up and dead-letters the ticket event on the embedded
// broker. doctor reports it waiting; deadletter list shows it; a replay
// before the fix fails and records nothing; after the fix the replay goes
// through the search consumer's handler and the ticket is indexed; replaying
// again is skipped, and forced (--again) it changes nothing, because the
// consumer deduplicates on its processed-event key.
func TestDeadLetterReplay(t *testing.T) {
	t.Parallel()
	s := startOpsServe(t, "dlq")
	ctx := context.Background()
	admin := tenancytest.Connect(t, s.dsn)
	var schema string
	if err := admin.QueryRow(ctx, `SELECT schema_name FROM control.tenants WHERE slug = 'dlq'`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	docs := pgx.Identifier{schema, "search_docs"}.Sanitize()
	if _, err := admin.Exec(ctx, `ALTER TABLE `+docs+` RENAME TO search_docs_off`); err != nil {
		t.Fatal(err)
	}
	ticket := post(t, s.base+"/t/dlq/api/v1/tickets", s.token, map[string]any{"title": "lost in search", "body": "x"})

	var dead []bus.DeadMessage
	apitest.Eventually(t, 60*time.Second, "the search consumer dead-letters the ticket event", func() bool {
		var err error
		dead, err = bus.ReadDeadLetters(ctx, []string{s.kafka})
		return err == nil && len(dead) > 0
	})
	if len(dead) != 1 || dead[0].Group != search.ConsumerGroup || dead[0].EventType != "ticket.created" ||
		!strings.Contains(dead[0].Error, "search_docs") {
		t.Fatalf("dead letters: %+v", dead)
	}
	id, event := dead[0].ID, dead[0].EventID
	flags := []string{"--database-url", s.dsn, "--kafka-brokers", s.kafka}
	dl := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := deadletterTo(ctx, &out, append(args, flags...))
		return out.String(), err
	}

	rep, _ := runDoctorJSON(t, flags...)
	if c, _ := rep.check("dead letters"); c.Status != checkFail || !strings.Contains(c.Detail, search.ConsumerGroup+"=1") {
		t.Errorf("doctor does not report the waiting dead letter: %+v", c)
	}
	out, err := dl("list")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, search.ConsumerGroup) || !strings.Contains(out, "waiting") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = dl("list", "--json", "--group", search.ConsumerGroup)
	var row deadLetterRow
	if err != nil || json.Unmarshal([]byte(out), &row) != nil || row.ID != id || row.EventID != event || row.Replays != 0 {
		t.Fatalf("list --json: %v %q", err, out)
	}
	if out, _ := dl("list", "--group", "patchdesk-notify"); strings.Contains(out, id) {
		t.Errorf("list --group patchdesk-notify shows the search dead letter:\n%s", out)
	}

	// Cause not fixed: the replay fails, and nothing is recorded.
	if out, err := dl("replay", "--id", id); err == nil || !strings.Contains(out, "FAILED") {
		t.Fatalf("replay before the fix: %v\n%s", err, out)
	}
	if out, _ := dl("list"); !strings.Contains(out, "waiting") {
		t.Fatalf("a failed replay was recorded:\n%s", out)
	}

	// Fixed: the replay goes through the search consumer.
	if _, err := admin.Exec(ctx, `ALTER TABLE `+pgx.Identifier{schema, "search_docs_off"}.Sanitize()+` RENAME TO search_docs`); err != nil {
		t.Fatal(err)
	}
	if out, err := dl("replay", "--group", search.ConsumerGroup); err != nil || !strings.Contains(out, "replayed 1,") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	indexed := func() (docsN, processedN int) {
		t.Helper()
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM `+docs+` WHERE number = $1`, ticket["number"]).Scan(&docsN); err != nil {
			t.Fatal(err)
		}
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, "processed_events"}.Sanitize()+
			` WHERE consumer = $1 AND event_id = $2`, search.ConsumerGroup, event).Scan(&processedN); err != nil {
			t.Fatal(err)
		}
		return docsN, processedN
	}
	if d, p := indexed(); d != 1 || p != 1 {
		t.Fatalf("after replay: %d index rows, %d processed marks; want 1 and 1", d, p)
	}

	// Again: skipped by default; forced, the consumer's dedupe absorbs it.
	if out, err := dl("replay"); err != nil || !strings.Contains(out, "replayed 0, skipped 1") {
		t.Fatalf("second replay: %v\n%s", err, out)
	}
	if out, err := dl("replay", "--again", "--id", id); err != nil || !strings.Contains(out, "replayed 1,") {
		t.Fatalf("forced replay: %v\n%s", err, out)
	}
	if d, p := indexed(); d != 1 || p != 1 {
		t.Fatalf("after a forced replay: %d index rows, %d processed marks; want 1 and 1", d, p)
	}
	if out, _ := dl("list"); !strings.Contains(out, "replayed x2") {
		t.Errorf("list does not show two replays:\n%s", out)
	}
	rep, _ = runDoctorJSON(t, flags...)
	if c, _ := rep.check("dead letters"); c.Status != checkOK {
		t.Errorf("doctor after the replay: %+v", c)
	}
	if _, err := dl("replay", "--id", "0-999"); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("no dead letter %q", "0-999")) {
		t.Errorf("replay of an unknown id: %v", err)
	}
}
