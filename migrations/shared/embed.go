// Package shared holds the goose migrations of the control schema.
package shared

import "embed"

// FS is the set of control-plane migrations, applied with goose to schema control.
//
//go:embed *.sql
var FS embed.FS

// InfraFS is the set of per-database migrations (schema infra: the outbox),
// applied to every database that holds tenant schemas.
//
//go:embed infra/*.sql
var InfraFS embed.FS
