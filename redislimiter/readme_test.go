package redislimiter

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/servicedesk-go/servicedesk/internal/readmetest"
)

// TestREADMECompiles builds the Go blocks of the repository's README.md
// fenced as "```go redislimiter": they import this module (and go-redis),
// which the root module's own README test cannot build.
func TestREADMECompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds README blocks with the go command")
	}
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	readmetest.Check(t, readme, "```go redislimiter", dir, readmetest.Fragments{
		Free: map[string]string{
			"ctx":    "context.Context",
			"site":   "string",
			"auth":   "servicedesk.Option",
			"logger": "*slog.Logger",
		},
		Imports: map[string]string{
			"context": "context", "os": "os", "slog": "log/slog", "time": "time",
			"redis":        "github.com/redis/go-redis/v9",
			"servicedesk":  "github.com/servicedesk-go/servicedesk",
			"redislimiter": "github.com/servicedesk-go/servicedesk/redislimiter",
		},
	})
}
