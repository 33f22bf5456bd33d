package servicedesk_test

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

	"github.com/stretchr/testify/require"
)

// TestREADMECompiles type-checks every Go block of README.md with the
// compiler, so that no line a reader copies fails to build (as
// WithTokenSource(ConnectUserTokenSource(...)) once did: two results). A
// block that is a whole program is built as it is; a fragment is built in
// a function, its imports added from the packages it names and its free
// names (ctx, c, site, auth...) declared with their README types, and each
// variable it declares marked used. The blocks are handed to `go build`
// through -overlay, so nothing is written into the source tree.
func TestREADMECompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every README block with the go command")
	}
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllSubmatch(readme, -1)
	require.NotEmpty(t, blocks)

	root, err := os.Getwd()
	require.NoError(t, err)
	tmp := t.TempDir()
	overlay := map[string]string{}
	var lines []int // where each block starts in README.md, for messages
	for i, m := range blocks {
		src, err := readmeProgram(string(m[1]))
		require.NoError(t, err, "README block %d:\n%s", i, m[1])
		backing := filepath.Join(tmp, fmt.Sprintf("block%d.go", i))
		require.NoError(t, os.WriteFile(backing, src, 0o600))
		overlay[filepath.Join(root, "internal", "readmecheck", fmt.Sprintf("block%d", i), "main.go")] = backing
		lines = append(lines, bytes.Count(readme[:bytes.Index(readme, m[0])], []byte("\n"))+1)
	}
	cfg, err := json.Marshal(map[string]any{"Replace": overlay})
	require.NoError(t, err)
	cfgPath := filepath.Join(tmp, "overlay.json")
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))

	cmd := exec.Command("go", "build", "-overlay", cfgPath, "./internal/readmecheck/...")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := string(out)
		for i, line := range lines {
			msg = strings.ReplaceAll(msg, fmt.Sprintf("block%d.go", i), fmt.Sprintf("README.md block at line %d (as built)", line))
		}
		t.Fatalf("README blocks do not compile:\n%s", msg)
	}
}

// readmeFreeNames are the names README fragments use without declaring
// them, with the type each stands for.
var readmeFreeNames = map[string]string{
	"ctx":           "context.Context",
	"c":             "*servicedesk.Client",
	"site":          "string",
	"auth":          "servicedesk.Option",
	"state":         "string",
	"r":             "*http.Request",
	"w":             "http.ResponseWriter",
	"ids":           "servicedesk.CustomerIDs",
	"appKey":        "string",
	"userAccountID": "string",
	"install":       "struct{ BaseURL, SharedSecret, OAuthClientID string }",
	"onboard":       "http.HandlerFunc",
}

// readmeImports are the packages README fragments may name.
var readmeImports = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "log": "log", "os": "os", "time": "time",
	"math": "math", "strconv": "strconv", "http": "net/http", "url": "net/url", "slog": "log/slog",
	"atomic": "sync/atomic", "testing": "testing", "oauth2": "golang.org/x/oauth2",
	"servicedesk":     "github.com/servicedesk-go/servicedesk",
	"servicedesktest": "github.com/servicedesk-go/servicedesk/servicedesktest",
	"forge":           "github.com/servicedesk-go/servicedesk/forge",
	"httptest":        "net/http/httptest",
	"strings":         "strings",
}

// readmeProgram turns a README block into a file that builds.
func readmeProgram(block string) ([]byte, error) {
	if strings.HasPrefix(block, "package ") {
		return []byte(block), nil
	}
	// The free names the block uses (it may declare some itself: then the
	// package-level one is shadowed), and the packages of their types.
	var decls strings.Builder
	uses := block
	for name, typ := range readmeFreeNames {
		if regexp.MustCompile(`\b` + name + `\b`).MatchString(block) {
			fmt.Fprintf(&decls, "var %s %s\nvar _ = %s\n", name, typ, name)
			uses += " " + typ
		}
	}
	var names []string
	for name := range readmeImports {
		if regexp.MustCompile(`\b` + name + `\.`).MatchString(uses) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("package readmecheck\n\nimport (\n")
	for _, name := range names {
		fmt.Fprintf(&b, "\t%q\n", readmeImports[name])
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

// declaredNames are the variables a fragment declares at its top level,
// which it may not use again (a README line stops where the reader goes on).
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
