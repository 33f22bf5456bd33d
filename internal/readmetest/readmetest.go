// Package readmetest builds the Go blocks of a README with the compiler,
// so that no line a reader copies fails to build (as
// WithTokenSource(ConnectUserTokenSource(...)) once did: two results). The
// root module's README test and redislimiter's (whose blocks import a
// module the root cannot) both use it.
package readmetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// Fragments says how to complete a fragment: a block that is not a whole
// program.
type Fragments struct {
	// Free are the names fragments use without declaring them (ctx, c,
	// site...), with the type each stands for.
	Free map[string]string
	// Imports are the packages fragments may name, by the name they use.
	Imports map[string]string
}

// Check builds every block of readme fenced as fence ("```go", say) in the
// module whose root is dir (the test's working directory), and fails t
// with the compiler's messages, pointing at README lines, if one does not
// build.
//
// A block that is a whole program is built as it is; a fragment is built
// in a function (or as it is, if it declares one), with imports added for
// the packages it names, its free names declared, and each variable it
// declares marked used (a README line stops where the reader goes on). The
// blocks reach `go build` through -overlay: nothing is written into the
// source tree.
func Check(t testing.TB, readme []byte, fence string, dir string, f Fragments) {
	t.Helper()
	blocks := regexp.MustCompile("(?s)"+regexp.QuoteMeta(fence)+"\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatalf("the README has no %s block", fence)
	}
	tmp := t.TempDir()
	overlay := map[string]string{}
	var lines []int // where each block starts in the README, for messages
	for i, m := range blocks {
		src, err := f.program(string(m[1]))
		if err != nil {
			t.Fatalf("README block %d: %v\n%s", i, err, m[1])
		}
		backing := filepath.Join(tmp, fmt.Sprintf("block%d.go", i))
		if err := os.WriteFile(backing, src, 0o600); err != nil {
			t.Fatal(err)
		}
		overlay[filepath.Join(dir, "internal", "readmecheck", fmt.Sprintf("block%d", i), "main.go")] = backing
		lines = append(lines, bytes.Count(readme[:bytes.Index(readme, m[0])], []byte("\n"))+1)
	}
	cfg, err := json.Marshal(map[string]any{"Replace": overlay})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-overlay", cfgPath, "./internal/readmecheck/...")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := string(out)
		for i, line := range lines {
			msg = strings.ReplaceAll(msg, fmt.Sprintf("block%d.go", i), fmt.Sprintf("README.md block at line %d (as built)", line))
		}
		t.Fatalf("README blocks do not compile:\n%s", msg)
	}
}

// program turns a README block into a file that builds.
func (f Fragments) program(block string) ([]byte, error) {
	if strings.HasPrefix(block, "package ") {
		return []byte(block), nil
	}
	// The free names the block uses (it may declare some itself: then the
	// package-level one is shadowed), and the packages of their types.
	var decls strings.Builder
	uses := block
	for name, typ := range f.Free {
		if regexp.MustCompile(`\b` + name + `\b`).MatchString(block) {
			fmt.Fprintf(&decls, "var %s %s\nvar _ = %s\n", name, typ, name)
			uses += " " + typ
		}
	}
	var names []string
	for name := range f.Imports {
		if regexp.MustCompile(`\b` + name + `\.`).MatchString(uses) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("package readmecheck\n\nimport (\n")
	for _, name := range names {
		fmt.Fprintf(&b, "\t%q\n", f.Imports[name])
	}
	b.WriteString(")\n\n")
	b.WriteString(decls.String())
	if strings.HasPrefix(strings.TrimSpace(block), "func ") {
		b.WriteString(block) // a declaration, such as a test function
		return format.Source([]byte(b.String()))
	}
	result := ""
	if regexp.MustCompile(`return (err|nil)\b`).MatchString(block) {
		result = " error"
	}
	body := block
	for _, name := range declaredNames(block) {
		body += "\n_ = " + name
	}
	if result != "" {
		body += "\nreturn nil"
	}
	fmt.Fprintf(&b, "func _()%s {\n%s\n}\n", result, body)
	return format.Source([]byte(b.String()))
}

// declaredNames are the variables a fragment declares at its top level.
func declaredNames(block string) []string {
	f, err := parser.ParseFile(token.NewFileSet(), "", "package p\nfunc _() {\n"+block+"\n}", 0)
	if err != nil {
		return nil // the build says what is wrong
	}
	seen := map[string]bool{}
	var names []string
	add := func(id *ast.Ident) {
		if id.Name != "_" && !seen[id.Name] {
			seen[id.Name] = true
			names = append(names, id.Name)
		}
	}
	for _, stmt := range f.Decls[0].(*ast.FuncDecl).Body.List {
		switch s := stmt.(type) {
		case *ast.AssignStmt:
			if s.Tok == token.DEFINE {
				for _, lhs := range s.Lhs {
					if id, ok := lhs.(*ast.Ident); ok {
						add(id)
					}
				}
			}
		case *ast.DeclStmt:
			if gd, ok := s.Decl.(*ast.GenDecl); ok {
				for _, spec := range gd.Specs {
					if vs, ok := spec.(*ast.ValueSpec); ok {
						for _, id := range vs.Names {
							add(id)
						}
					}
				}
			}
		}
	}
	return names
}
