package servicedesk_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk/internal/readmetest"
)

// TestREADMECompiles type-checks every Go block of README.md with the
// compiler (see readmetest.Check), so that no line a reader copies fails
// to build.
func TestREADMECompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every README block with the go command")
	}
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	root, err := os.Getwd()
	require.NoError(t, err)
	readmetest.Check(t, readme, "```go", root, readmetest.Fragments{
		Free: map[string]string{
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
		},
		Imports: map[string]string{
			"context": "context", "errors": "errors", "fmt": "fmt", "log": "log", "os": "os", "time": "time",
			"math": "math", "strconv": "strconv", "http": "net/http", "url": "net/url", "slog": "log/slog",
			"atomic": "sync/atomic", "testing": "testing", "oauth2": "golang.org/x/oauth2",
			"servicedesk":     "github.com/servicedesk-go/servicedesk",
			"servicedesktest": "github.com/servicedesk-go/servicedesk/servicedesktest",
			"forge":           "github.com/servicedesk-go/servicedesk/forge",
			"httptest":        "net/http/httptest",
			"strings":         "strings",
		},
	})
}
