package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Demo tenant created by serve --demo.
const (
	demoSlug     = "demo"
	demoEmail    = "owner@demo.patchdesk.test"
	demoPassword = "demo-password-1"
)

// Process roles: the public API, the background workers, or both.
const (
	roleAll    = "all"
	roleAPI    = "api"
	roleWorker = "worker"
)

func serve(ctx context.Context, args []string) error {
	return runProcess(ctx, "serve", args, roleAll)
}

func worker(ctx context.Context, args []string) error {
	return runProcess(ctx, "worker", args, roleWorker)
}

func runProcess(ctx context.Context, name string, args []string, defaultRole string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c := bindConfig(fs)
	demo := fs.Bool("demo", false, "create a demo tenant with a known login and print it")
	runMigrations := fs.Bool("migrate", true, "apply pending tenant migrations at start")
	role := fs.String("role", defaultRole, "what this process runs: all, api (HTTP only) or worker (relay, consumers, deliveries)")
	if _, err := parse(fs, args, c); err != nil {
		return err
	}
	if !slices.Contains([]string{roleAll, roleAPI, roleWorker}, *role) {
		return fmt.Errorf("--role must be all, api or worker")
	}
	log := newLogger(c)
	slog.SetDefault(log)
	log.InfoContext(ctx, "starting", "version", version(), "role", *role, "config", fmt.Sprintf("%+v", c.Redacted()))

	// Start-up order; shutdown runs the deferred steps in reverse.
	reg, err := openRegistry(ctx, c, log)
	if err != nil {
		return err
	}
	defer reg.Close()
	if *runMigrations {
		migrateAtStart(ctx, reg, log)
	}
	dur, err := loadDurability()
	if err != nil {
		return err
	}
	brokers, stopBroker, err := kafkaBrokers(ctx, c, dur.Retention, log)
	if err != nil {
		return err
	}
	defer stopBroker()

	metrics := obs.NewMetrics()
	// Tenant counts query the control database: cached, so scrapes never do.
	metrics.Registry.MustRegister(obs.NewCachedCollector(reg.Collector(), 0))
	// Fleet health (tenants behind, tier moves) queries it too; pool usage is in memory.
	metrics.Registry.MustRegister(obs.NewCachedCollector(reg.HealthCollector(), 0), reg.PoolCollector())
	acfg, err := c.attachments()
	if err != nil {
		return err
	}
	cfg := api.Config{
		BaseDomain:  c.BaseDomain,
		Attachments: acfg,
		MembersHTTP: members.HandlerConfig{SignupsPerMinute: c.SignupsPerMinute, LoginsPerMinute: c.LoginsPerMinute,
			LoginsPerIPPerMinute: c.LoginsPerIP, AuthFailuresPerMinute: c.AuthFailuresPerMinute},
		TokenPerMinute:  c.TokenPerMinute,
		TenantPerMinute: c.TenantPerMinute,
		Notify: notify.Config{
			SMTPURL: c.SMTPURL, MailDir: filepath.Join(c.DataDir, "mail"), MailFrom: c.MailFrom,
			AllowPrivateWebhooks: c.WebhookAllowPrivate,
		},
		ReadyChecks:         []api.ReadyCheck{{Name: "broker", Check: func(ctx context.Context) error { return bus.Ping(ctx, brokers) }}},
		TrustForwardedProto: c.TrustForwardedProto,
		MetricsToken:        c.MetricsToken,
	}
	dur.apply(&cfg.Jobs, &cfg.Notify)
	app, err := api.New(ctx, reg, log, metrics, cfg)
	if err != nil {
		return err
	}
	if *demo {
		if err := ensureDemo(ctx, reg, app.Members); err != nil {
			return err
		}
	}

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }() // after HTTP drained: stop consumers, relay, jobs
	wg.Go(func() { reg.Listen(bg) })
	wg.Go(func() { maintain(bg, reg, log) })
	if *role != roleAPI {
		workers, err := api.Background(app, reg, metrics, log, api.BackgroundConfig{Brokers: brokers})
		if err != nil {
			return err
		}
		runners, err := workers.All()
		if err != nil {
			return err
		}
		for _, run := range runners {
			wg.Go(func() {
				if err := run(bg); err != nil {
					log.Error("background worker stopped", "err", err)
				}
			})
		}
	}
	h := app.Handler
	if *role == roleWorker {
		h = app.OpsHandler
	}
	if c.MetricsAddr != "" && c.MetricsAddr != "off" {
		mln, err := net.Listen("tcp", c.MetricsAddr)
		switch {
		case err != nil && metricsAddrExplicit(fs):
			return fmt.Errorf("metrics listener on %s: %w", c.MetricsAddr, err)
		case err != nil:
			// The default port is taken (another process on this host):
			// /metrics stays reachable on the public listener for loopback.
			log.WarnContext(ctx, "no dedicated metrics listener", "addr", c.MetricsAddr, "err", err)
		default:
			wg.Go(func() {
				if err := serveOn(bg, log, mln, app.MetricsHandler); err != nil {
					log.Error("metrics listener stopped", "err", err)
				}
			})
		}
	}
	return listenAndServe(ctx, log, c.HTTPAddr, h)
}

// metricsAddrExplicit reports whether the operator chose the metrics
// address (flag or environment) rather than leaving the default.
func metricsAddrExplicit(fs *flag.FlagSet) bool {
	_, explicit := os.LookupEnv("PATCHDESK_METRICS_ADDR")
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "metrics-addr" })
	return explicit
}

// maintain drops the retired copies of past tier moves once their retention passed.
func maintain(ctx context.Context, reg *tenancy.Registry, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := reg.DropRetired(ctx); err != nil {
				log.WarnContext(ctx, "drop retired copies", "err", err)
			} else if n > 0 {
				log.InfoContext(ctx, "dropped retired copies", "count", n)
			}
		}
	}
}

func migrateAtStart(ctx context.Context, reg *tenancy.Registry, log *slog.Logger) {
	err := reg.MigrateTenants(ctx, tenancy.MigrateOptions{}, func(r tenancy.MigrateResult) {
		if !r.OK() {
			log.ErrorContext(ctx, "tenant migration failed", "tenant", r.Slug, "err", r.Err)
		}
	})
	if err != nil {
		log.ErrorContext(ctx, "some tenants are not migrated and will answer 503", "err", err)
	}
}

// kafkaBrokers returns the configured cluster, or starts the embedded broker
// (persisted under the data directory) and returns its address. Topics are
// created when missing, and their retention set.
func kafkaBrokers(ctx context.Context, c *config, retention bus.Retention, log *slog.Logger) ([]string, func(), error) {
	stop := func() {}
	var brokers []string
	if c.KafkaBrokers != "" {
		brokers = strings.Split(c.KafkaBrokers, ",")
	} else {
		b, err := bus.StartBroker(c.KafkaAddr, filepath.Join(c.DataDir, "kafka"))
		if err != nil {
			return nil, nil, err
		}
		log.InfoContext(ctx, "embedded Kafka-protocol broker started", "addr", b.Addr())
		brokers, stop = []string{b.Addr()}, b.Close
	}
	if err := bus.EnsureTopicsWith(ctx, brokers, retention); err != nil {
		stop()
		return nil, nil, err
	}
	return brokers, stop, nil
}

// listenAndServe serves until ctx ends, then drains in-flight requests.
func listenAndServe(ctx context.Context, log *slog.Logger, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return serveOn(ctx, log, ln, h)
}

// serveOn serves on ln until ctx ends, then drains in-flight requests.
func serveOn(ctx context.Context, log *slog.Logger, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.InfoContext(ctx, "listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// ensureDemo creates the demo tenant unless it exists, and prints its login.
func ensureDemo(ctx context.Context, reg *tenancy.Registry, svc *members.Service) error {
	_, err := reg.Lookup(ctx, demoSlug)
	if errors.Is(err, tenancy.ErrTenantNotFound) {
		_, err = svc.Signup(ctx, members.SignupParams{
			Slug: demoSlug, Name: "Demo", AdminEmail: demoEmail, AdminName: "Demo Owner", Password: demoPassword,
			Operator: true, // "demo" is reserved for exactly this tenant
		})
	}
	if err != nil {
		return fmt.Errorf("demo tenant: %w", err)
	}
	fmt.Printf("demo tenant %q: log in with %s / %s\n", demoSlug, demoEmail, demoPassword)
	fmt.Printf("  curl -X POST http://HOST/t/%s/api/v1/sessions -d '{\"email\":%q,\"password\":%q}'\n", demoSlug, demoEmail, demoPassword)
	return nil
}
