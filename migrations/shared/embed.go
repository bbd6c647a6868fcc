// Package shared holds the goose migrations of the control schema.
package shared

import "embed"

// FS is the set of control-plane migrations, applied with goose to schema control.
//
//go:embed *.sql
var FS embed.FS
