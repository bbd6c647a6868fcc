package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// switchCases returns the string literals of the cases of the switch on
// variable tag in function fn of file, as the dispatcher accepts them.
func switchCases(t *testing.T, file, fn, tag string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		d, ok := n.(*ast.FuncDecl)
		if !ok || d.Name.Name != fn {
			return true
		}
		ast.Inspect(d.Body, func(n ast.Node) bool {
			sw, ok := n.(*ast.SwitchStmt)
			if !ok || !switchesOn(sw, tag) {
				return true
			}
			for _, stmt := range sw.Body.List {
				for _, e := range stmt.(*ast.CaseClause).List {
					if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						out = append(out, s)
					}
				}
			}
			return false
		})
		return false
	})
	if len(out) == 0 {
		t.Fatalf("no switch on %s found in %s of %s", tag, fn, file)
	}
	return out
}

// switchesOn reports whether sw is `switch tag {` or `switch tag, … := …; tag {`.
func switchesOn(sw *ast.SwitchStmt, tag string) bool {
	id, ok := sw.Tag.(*ast.Ident)
	return ok && id.Name == tag
}

// names reports whether text names word as a whole word.
func names(text, word string) bool {
	return regexp.MustCompile(`(^|[^a-z-])` + regexp.QuoteMeta(word) + `($|[^a-z-])`).MatchString(text)
}

// TestUsageNamesEverySubcommand: every command run accepts is in the usage
// text, and every tenants subcommand runTenants accepts is in both the
// tenants usage and the top-level usage (issue 10.12).
func TestUsageNamesEverySubcommand(t *testing.T) {
	t.Parallel()
	for _, cmd := range switchCases(t, "main.go", "run", "cmd") {
		if strings.HasPrefix(cmd, "-") || cmd == "help" {
			continue
		}
		if !names(usage, cmd) {
			t.Errorf("usage does not name the command %q", cmd)
		}
	}
	tenantsLine := usage[strings.Index(usage, "  tenants"):]
	tenantsLine = tenantsLine[:strings.Index(tenantsLine, "\n  search")]
	subs := switchCases(t, "tenants.go", "runTenants", "sub")
	for _, sub := range subs {
		if !names(tenantsUsage, "patchdesk tenants "+sub) && !strings.Contains(tenantsUsage, "tenants "+sub+"|") &&
			!strings.Contains(tenantsUsage, "|"+sub+" ") {
			t.Errorf("tenants usage does not show the subcommand %q", sub)
		}
		if !names(tenantsLine, sub) {
			t.Errorf("top-level usage does not name the tenants subcommand %q: %q", sub, tenantsLine)
		}
	}
	for _, flag := range []string{"--resume", "--abort"} {
		if !strings.Contains(tenantsUsage, "move "+flag) && !strings.Contains(tenantsUsage, "| "+flag) {
			t.Errorf("tenants usage does not show move %s", flag)
		}
		if !strings.Contains(tenantsLine, flag) {
			t.Errorf("top-level usage does not show move %s", flag)
		}
	}
}
