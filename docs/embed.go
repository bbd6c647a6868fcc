// Package docs embeds the documents the binary serves: the OpenAPI
// contract (docs/openapi.yaml), so that /api/v1/openapi.yaml is always the
// document the tests validated against.
package docs

import (
	"embed"
	"fmt"
)

//go:embed openapi.yaml
var files embed.FS

// OpenAPI returns docs/openapi.yaml as built into the binary.
func OpenAPI() ([]byte, error) {
	b, err := files.ReadFile("openapi.yaml")
	if err != nil {
		return nil, fmt.Errorf("embedded openapi.yaml: %w", err)
	}
	return b, nil
}
