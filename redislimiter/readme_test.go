package redislimiter

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

// TestREADMECompiles builds the Go blocks of the repository's README.md
// fenced as "```go redislimiter": they import this module (and go-redis),
// which the root module's own README test cannot build. A fragment is
// built in a function, with imports for the packages it names and its
// free names (site, auth, logger) declared. The blocks reach `go build`
// through -overlay; nothing is written into the source tree.
func TestREADMECompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds README blocks with the go command")
	}
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```go redislimiter\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```go redislimiter block")
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	overlay := map[string]string{}
	lines := map[string]int{}
	for i, m := range blocks {
		src, err := readmeProgram(string(m[1]))
		if err != nil {
			t.Fatalf("README block %d: %v\n%s", i, err, m[1])
		}
		name := fmt.Sprintf("block%d.go", i)
		backing := filepath.Join(tmp, name)
		if err := os.WriteFile(backing, src, 0o600); err != nil {
			t.Fatal(err)
		}
		overlay[filepath.Join(root, "internal", "readmecheck", fmt.Sprintf("block%d", i), "main.go")] = backing
		lines[name] = bytes.Count(readme[:bytes.Index(readme, m[0])], []byte("\n")) + 1
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
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := string(out)
		for name, line := range lines {
			msg = strings.ReplaceAll(msg, name, fmt.Sprintf("README.md block at line %d (as built)", line))
		}
		t.Fatalf("README blocks do not compile:\n%s", msg)
	}
}

// readmeFree are the names README fragments use without declaring them.
var readmeFree = map[string]string{
	"ctx":    "context.Context",
	"site":   "string",
	"auth":   "servicedesk.Option",
	"logger": "*slog.Logger",
}

// readmePackages are the packages README fragments may name.
var readmePackages = map[string]string{
	"context": "context", "os": "os", "slog": "log/slog", "time": "time",
	"redis":        "github.com/redis/go-redis/v9",
	"servicedesk":  "github.com/servicedesk-go/servicedesk",
	"redislimiter": "github.com/servicedesk-go/servicedesk/redislimiter",
}

func readmeProgram(block string) ([]byte, error) {
	var decls strings.Builder
	uses := block
	for name, typ := range readmeFree {
		if regexp.MustCompile(`\b` + name + `\b`).MatchString(block) {
			fmt.Fprintf(&decls, "var %s %s\n", name, typ)
			uses += " " + typ
		}
	}
	var imports []string
	for name, path := range readmePackages {
		if regexp.MustCompile(`\b` + name + `\.`).MatchString(uses) {
			imports = append(imports, fmt.Sprintf("%q", path))
		}
	}
	sort.Strings(imports)
	body := block
	for _, name := range declared(block) {
		body += "\n_ = " + name
	}
	src := fmt.Sprintf("package readmecheck\n\nimport (\n%s\n)\n\n%s\nfunc _() {\n%s\n}\n",
		strings.Join(imports, "\n"), decls.String(), body)
	return format.Source([]byte(src))
}

// declared are the variables a fragment declares at its top level.
func declared(block string) []string {
	f, err := parser.ParseFile(token.NewFileSet(), "", "package p\nfunc _() {\n"+block+"\n}", 0)
	if err != nil {
		return nil // the build says what is wrong
	}
	var names []string
	for _, stmt := range f.Decls[0].(*ast.FuncDecl).Body.List {
		if s, ok := stmt.(*ast.AssignStmt); ok && s.Tok == token.DEFINE {
			for _, lhs := range s.Lhs {
				if id, ok := lhs.(*ast.Ident); ok && id.Name != "_" {
					names = append(names, id.Name)
				}
			}
		}
	}
	return names
}
