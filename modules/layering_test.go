// Package modules_test enforces the import rule of docs/adr/0006-module-layering.md:
// business modules never import each other; platform packages never import a
// business module; only composition modules (api, web) wire modules together;
// nothing below cmd imports cmd; the domain packages errs, page and events
// stay free of net/http.
package modules_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const modulePath = "github.com/patchdesk/patchdesk/"

// platform packages are shared machinery and contracts any module may use.
var platform = []string{"address", "audit", "authz", "bus", "errs", "events", "jobs", "obs", "outbox", "page", "ratelimit", "respond"}

// composition modules assemble the others into an HTTP surface.
var composition = []string{"api", "web"}

// httpFree packages are used by services and consumers: no net/http in them.
var httpFree = []string{"address", "errs", "page", "events"}

// importRule reports why a (non-test) file of module from may not import path, or "".
func importRule(from, path string) string {
	if strings.HasPrefix(path, modulePath+"cmd") {
		return "nothing imports cmd"
	}
	if path == "net/http" && slices.Contains(httpFree, from) {
		return from + " is used by services and consumers and must stay free of net/http"
	}
	rest, ok := strings.CutPrefix(path, modulePath+"modules/")
	if !ok {
		return ""
	}
	to, _, _ := strings.Cut(rest, "/")
	switch {
	case to == from:
		return ""
	case strings.HasSuffix(rest, "test") && strings.Contains(rest, "/"):
		return "test support packages (" + rest + ") are for tests only"
	case slices.Contains(composition, from):
		return ""
	case slices.Contains(composition, to):
		return "only cmd imports the composition module " + to
	case slices.Contains(platform, to):
		return ""
	case slices.Contains(platform, from):
		return "platform package " + from + " must not depend on business module " + to
	default:
		return "business module " + from + " must not import business module " + to +
			" (react to its events, or declare a small interface that api wires)"
	}
}

// TestModuleLayering walks every non-test Go file under modules/ and tenancy/.
func TestModuleLayering(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, dir := range []string{"modules", "tenancy"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			parts := strings.Split(filepath.ToSlash(rel), "/")
			if strings.HasSuffix(parts[len(parts)-2], "test") {
				return nil // test support (apitest, notifytest, tenancytest) wires everything on purpose
			}
			from := "tenancy"
			if parts[0] == "modules" {
				from = parts[1]
			}
			checked++
			for _, imp := range imports(t, path) {
				if from == "tenancy" && strings.HasPrefix(imp, modulePath+"modules/") {
					t.Errorf("%s imports %s: tenancy is below every module", rel, imp)
				} else if why := importRule(from, imp); from != "tenancy" && why != "" {
					t.Errorf("%s imports %s: %s", rel, imp, why)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked < 50 {
		t.Fatalf("only %d files checked: is the walk rooted at the module?", checked)
	}
}

func imports(t *testing.T, path string) []string {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var out []string
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		out = append(out, p)
	}
	return out
}

// TestImportRuleCatchesViolations proves the rule refuses what it must and
// allows what the design wants.
func TestImportRuleCatchesViolations(t *testing.T) {
	t.Parallel()
	m := modulePath + "modules/"
	tests := []struct {
		from, path string
		refused    bool
	}{
		{"search", m + "tickets", true},
		{"reports", m + "members", true},
		{"notify", m + "api", true},
		{"authz", m + "tickets", true},
		{"events", "net/http", true},
		{"errs", "net/http", true},
		{"tickets", m + "api/apitest", true},
		{"tickets", modulePath + "cmd/patchdesk", true},
		{"tickets", m + "events", false},
		{"notify", m + "outbox", false},
		{"respond", m + "errs", false},
		{"api", m + "tickets", false},
		{"web", m + "search", false},
		{"tickets", "net/http", false},
		{"tickets", modulePath + "tenancy", false},
	}
	for _, tc := range tests {
		if got := importRule(tc.from, tc.path) != ""; got != tc.refused {
			t.Errorf("%s importing %s: refused=%v, want %v", tc.from, tc.path, got, tc.refused)
		}
	}
}
