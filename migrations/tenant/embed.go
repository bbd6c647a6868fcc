// Package tenant holds the goose migrations applied to every tenant schema.
package tenant

import "embed"

// FS is the set of tenant migrations; each runs with search_path pinned to one tenant schema.
//
//go:embed *.sql
var FS embed.FS
