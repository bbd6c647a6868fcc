// Command patchdesk is the PatchDesk helpdesk: one binary for the API server,
// the operator CLI and the migrations.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: patchdesk <command> [flags]

commands:
  serve      run everything: HTTP API, outbox relay, consumers, delivery jobs
             (--role=api or --role=worker splits them; applies pending migrations first)
  worker     run the relay, consumers and delivery jobs without the public API
  kafka      run the embedded Kafka-protocol broker on its own
  migrate    bring the control schema and every tenant schema up to date
  tenants    list | create | move (--dry-run | --resume ID | --abort ID) | moves |
             suspend | resume | export | import | delete | gc
             ("patchdesk tenants" alone shows their flags)
  search     reindex SLUG: rebuild a tenant's search index from its tickets
  reports    rebuild SLUG: rebuild a tenant's report aggregates from its timeline
  bench      drive the HTTP API with concurrent clients and report latency
  doctor     check a deployment (schema, tenants, relays, broker, lag, dead
             letters, deliveries, tier moves); exits 1 when a human is needed
  deadletter list | replay [--group G] [--id ID]: show dead-lettered messages,
             send them back through their consumer once the cause is fixed
  version    print the version

Configuration comes from the environment (DATABASE_URL, PATCHDESK_HTTP_ADDR,
PATCHDESK_DATA_DIR, PATCHDESK_BASE_DOMAIN, PATCHDESK_LOG_FORMAT, KAFKA_BROKERS,
PATCHDESK_KAFKA_ADDR, PATCHDESK_SMTP_URL, PATCHDESK_MAIL_FROM,
PATCHDESK_WEBHOOK_ALLOW_PRIVATE, PATCHDESK_SECRET_KEY, rate limits
PATCHDESK_SIGNUP_PER_MINUTE, PATCHDESK_TOKEN_PER_MINUTE, PATCHDESK_TENANT_PER_MINUTE);
flags override it.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "patchdesk:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(ctx, rest)
	case "worker":
		return worker(ctx, rest)
	case "kafka":
		return kafka(ctx, rest)
	case "migrate":
		return migrate(ctx, rest)
	case "tenants":
		return tenants(ctx, rest)
	case "search", "reports":
		return readModel(ctx, cmd, rest)
	case "bench":
		return bench(ctx, rest)
	case "doctor":
		return doctor(ctx, rest)
	case "deadletter":
		return deadletter(ctx, rest)
	case "version":
		fmt.Println(version())
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}
