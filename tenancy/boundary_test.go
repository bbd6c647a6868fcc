package tenancy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports give direct access to a database outside the scoped transaction.
var forbiddenImports = map[string]bool{
	"github.com/jackc/pgx/v5/pgxpool": true,
	"github.com/jackc/pgx/v5/stdlib":  true,
	"database/sql":                    true,
}

// TestOnlyTenancyTouchesPools fails when a package outside tenancy/ and cmd/
// imports a pool or driver, calls pgx.Connect or Registry.Operator: tenant data must only be
// reached through tenancy's scoped transaction.
func TestOnlyTenancyTouchesPools(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "tenancy" || rel == "cmd" || strings.HasPrefix(d.Name(), ".") || d.Name() == "data" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		checked++
		for _, v := range violations(t, path) {
			t.Errorf("%s: %s (only tenancy/ and cmd/ may reach a pool)", rel, v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no Go files checked: is the walk rooted at the module?")
	}
}

func violations(t *testing.T, path string) []string {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var out []string
	pgxName := ""
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if forbiddenImports[p] {
			out = append(out, "imports "+p)
		}
		if p == "github.com/jackc/pgx/v5" {
			pgxName = "pgx"
			if imp.Name != nil {
				pgxName = imp.Name.Name
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && pgxName != "" && id.Name == pgxName && strings.HasPrefix(sel.Sel.Name, "Connect") {
			out = append(out, "calls pgx."+sel.Sel.Name)
		}
		return true
	})
	// Registry.Operator hands out whole pools: a call to any method of that
	// name is one too many outside tenancy/ and cmd/.
	ast.Inspect(f, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok {
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Operator" {
				out = append(out, "calls .Operator()")
			}
		}
		return true
	})
	return out
}

func TestBoundaryCheckCatchesViolations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.go")
	src := "package bad\nimport (\n\tp \"github.com/jackc/pgx/v5\"\n\t_ \"github.com/jackc/pgx/v5/pgxpool\"\n)\nvar _ = p.Connect\nvar _ = reg.Operator().Control()\n"
	if err := writeFile(path, src); err != nil {
		t.Fatal(err)
	}
	if got := violations(t, path); len(got) != 3 {
		t.Fatalf("want 3 violations (import, connect, operator), got %v", got)
	}
}
