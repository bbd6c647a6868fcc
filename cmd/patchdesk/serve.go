package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Demo tenant created by serve --demo.
const (
	demoSlug     = "demo"
	demoEmail    = "owner@demo.patchdesk.test"
	demoPassword = "demo-password-1"
)

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c := bindConfig(fs)
	demo := fs.Bool("demo", false, "create a demo tenant with a known login and print it")
	runMigrations := fs.Bool("migrate", true, "apply pending tenant migrations at start")
	if _, err := parse(fs, args, c); err != nil {
		return err
	}
	log := newLogger(c)
	slog.SetDefault(log)
	log.InfoContext(ctx, "starting", "version", version(), "config", fmt.Sprintf("%+v", c.Redacted()))

	// Start-up order; shutdown runs the deferred steps in reverse.
	reg, err := openRegistry(ctx, c, log)
	if err != nil {
		return err
	}
	defer reg.Close()
	if *runMigrations {
		if err := reg.MigrateTenants(ctx, tenancy.MigrateOptions{}, func(r tenancy.MigrateResult) {
			if !r.OK() {
				log.ErrorContext(ctx, "tenant migration failed", "tenant", r.Slug, "err", r.Err)
			}
		}); err != nil {
			log.ErrorContext(ctx, "some tenants are not migrated and will answer 503", "err", err)
		}
	}
	metrics := obs.NewMetrics()
	metrics.Registry.MustRegister(reg.Collector())
	app, err := api.New(reg, log, metrics, api.Config{
		BaseDomain:      c.BaseDomain,
		MembersHTTP:     members.HandlerConfig{SignupsPerMinute: c.SignupsPerMinute},
		TokenPerMinute:  c.TokenPerMinute,
		TenantPerMinute: c.TenantPerMinute,
	})
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
	wg.Go(func() { reg.Listen(bg) })
	defer func() { stopBG(); wg.Wait() }()

	return listenAndServe(ctx, log, c.HTTPAddr, app.Handler)
}

// listenAndServe serves until ctx ends, then drains in-flight requests.
func listenAndServe(ctx context.Context, log *slog.Logger, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
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
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
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
		})
	}
	if err != nil {
		return fmt.Errorf("demo tenant: %w", err)
	}
	fmt.Printf("demo tenant %q: log in with %s / %s\n", demoSlug, demoEmail, demoPassword)
	fmt.Printf("  curl -X POST http://HOST/t/%s/api/v1/sessions -d '{\"email\":%q,\"password\":%q}'\n", demoSlug, demoEmail, demoPassword)
	return nil
}
