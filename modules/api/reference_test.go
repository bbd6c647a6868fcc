package api_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
)

// TestReferenceIsServed: the binary serves the document it was built with,
// as YAML and JSON, and the reference page with its vendored renderer,
// whose CSP is loosened for styles and the worker only.
func TestReferenceIsServed(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	file, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := s.Call(t, "GET", "/api/v1/openapi.yaml", "", nil)
	if y.Status != 200 || string(y.Body) != string(file) || !strings.HasPrefix(y.Header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("openapi.yaml: %d %s, %d bytes (file %d)", y.Status, y.Header.Get("Content-Type"), len(y.Body), len(file))
	}
	var fromYAML map[string]any
	if err := yaml.Unmarshal(file, &fromYAML); err != nil {
		t.Fatal(err)
	}
	j := s.Call(t, "GET", "/api/v1/openapi.json", "", nil)
	var fromJSON map[string]any
	if j.Status != 200 || json.Unmarshal(j.Body, &fromJSON) != nil {
		t.Fatalf("openapi.json: %s", j)
	}
	if fromJSON["openapi"] != "3.1.0" || len(fromJSON["paths"].(map[string]any)) != len(fromYAML["paths"].(map[string]any)) ||
		len(fromJSON["webhooks"].(map[string]any)) == 0 {
		t.Fatalf("the JSON document differs from the YAML one")
	}
	page := s.Call(t, "GET", "/api/docs", "", nil)
	csp := page.Header.Get("Content-Security-Policy")
	if page.Status != 200 || !strings.Contains(string(page.Body), `<script src="/api/docs/redoc.standalone.js">`) ||
		strings.Contains(string(page.Body), "<script>") || !strings.Contains(csp, "style-src 'self' 'unsafe-inline'") ||
		strings.Contains(csp, "script-src") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("reference page: %d, CSP %q\n%.300s", page.Status, csp, page.Body)
	}
	for _, f := range []string{"redoc.standalone.js", "init.js"} {
		r := s.Call(t, "GET", "/api/docs/"+f, "", nil)
		if r.Status != 200 || len(r.Body) < 100 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") {
			t.Fatalf("%s: %d %s", f, r.Status, r.Header.Get("Content-Type"))
		}
	}
	if r := s.Call(t, "GET", "/api/docs/secrets.txt", "", nil); !r.IsProblem(404) {
		t.Fatalf("unknown asset: %s", r)
	}
	// The rest of the API keeps the strict policy.
	if csp := j.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("openapi.json CSP loosened: %q", csp)
	}
}

// TestDocumentFigures logs the size of the contract for the closing note
// and holds its floor: every operation has an operationId, a summary and a
// 4xx response.
func TestDocumentFigures(t *testing.T) {
	t.Parallel()
	file, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]map[string]any `yaml:"paths"`
		Webhooks   map[string]map[string]map[string]any `yaml:"webhooks"`
		Components struct {
			Schemas map[string]any `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(file, &doc); err != nil {
		t.Fatal(err)
	}
	ops := 0
	for path, item := range doc.Paths {
		for method, op := range item {
			ops++
			responses, _ := op["responses"].(map[string]any)
			has4xx := false
			for code := range responses {
				has4xx = has4xx || strings.HasPrefix(code, "4")
			}
			if op["operationId"] == nil || op["summary"] == nil || !has4xx {
				t.Errorf("%s %s lacks an operationId, a summary or a 4xx response", method, path)
			}
		}
	}
	t.Logf("openapi.yaml: %d paths, %d operations, %d webhooks, %d schemas", len(doc.Paths), ops, len(doc.Webhooks), len(doc.Components.Schemas))
}
