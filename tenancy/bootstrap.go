package tenancy

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EnsureDatabase creates the database named in dsn when it does not exist,
// connecting to the server's "postgres" database to do so.
func EnsureDatabase(ctx context.Context, dsn string) error {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return fmt.Errorf("connect to %s: %w", cc.Database, err)
	}
	name := cc.Database
	admin := cc.Copy()
	admin.Database = "postgres"
	conn, err = pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize())
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") { // 42P04: a replica won the race
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// SetStatus suspends or resumes a tenant and tells every process at once.
func (r *Registry) SetStatus(ctx context.Context, slug, status string) (*Tenant, error) {
	if status != StatusActive && status != StatusSuspended {
		return nil, fmt.Errorf("set status of %q: unsupported status %q", slug, status)
	}
	t, err := scanTenant(r.control.QueryRow(ctx, `UPDATE control.tenants SET status = $2, updated_at = now()
		WHERE slug = $1 AND status IN ('active', 'suspended') RETURNING `+tenantColumns, slug, status))
	if err != nil {
		return nil, fmt.Errorf("set status of %q: %w", slug, err)
	}
	r.notifyChanged(ctx, slug)
	r.audit(ctx, t, "tenant."+status, nil)
	return t, nil
}
