package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

func noEnv(string) string { return "" }

func TestImportSampleIntoTheFake(t *testing.T) {
	t.Parallel()
	var out, progress bytes.Buffer
	require.NoError(t, run(context.Background(), nil, &out, &progress, noEnv))
	assert.Equal(t, "6 rows: 5 created, 1 already had an account, 6 added to desk HELP, 0 refused, 0 failed\n", out.String())
	assert.Contains(t, progress.String(), "creating customers: 6/6")
}

func TestImportReportsBadRowsAndFails(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "people.csv")
	require.NoError(t, os.WriteFile(path, []byte("a@example.com,A\nnot-an-email,B\n\nA@EXAMPLE.com,A again\nc@example.com\n"), 0o600))
	var out bytes.Buffer
	err := run(context.Background(), []string{"-csv", path}, &out, &bytes.Buffer{}, noEnv)
	require.ErrorContains(t, err, "3 rows did not import")
	assert.Contains(t, out.String(), `line 2: "not-an-email" is not an email address`)
	assert.Contains(t, out.String(), "line 4: A@EXAMPLE.com repeats line 1")
	assert.Contains(t, out.String(), "line 5: want 2 fields, got 1")
	assert.Contains(t, out.String(), "1 created")
}

func TestDryRunSendsNothing(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer()
	defer srv.Close()
	env := map[string]string{"JSM_BASE_URL": srv.URL, "JSM_EMAIL": servicedesktest.AdminEmail, "JSM_API_TOKEN": servicedesktest.AdminToken}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-dry-run", "-desk", "1"}, &out, &bytes.Buffer{}, func(k string) string { return env[k] }))
	assert.Equal(t, "dry run: 6 customers to import, 0 rows refused; nothing sent\n", out.String())
	assert.Empty(t, srv.Requests())
}

// TestRerunIsSafe imports a file twice into one site: the second run finds
// every customer already there and changes nothing.
func TestRerunIsSafe(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithRateLimit(20, 10*time.Millisecond))
	defer srv.Close()
	env := map[string]string{"JSM_BASE_URL": srv.URL, "JSM_EMAIL": servicedesktest.AdminEmail, "JSM_API_TOKEN": servicedesktest.AdminToken, "JSM_SERVICE_DESK": "1"}
	getenv := func(k string) string { return env[k] }
	var lines []string
	for i := 0; i < 30; i++ {
		lines = append(lines, fmt.Sprintf("p%02d@example.com,Person %02d", i, i))
	}
	path := filepath.Join(t.TempDir(), "people.csv")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600))

	var first, second bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-csv", path, "-concurrency", "8"}, &first, &bytes.Buffer{}, getenv))
	assert.Equal(t, "30 rows: 30 created, 0 already had an account, 30 added to desk 1, 0 refused, 0 failed\n", first.String())
	require.NoError(t, run(context.Background(), []string{"-csv", path}, &second, &bytes.Buffer{}, getenv))
	assert.Equal(t, "30 rows: 0 created, 30 already had an account, 30 added to desk 1, 0 refused, 0 failed\n", second.String())
	assert.Len(t, srv.Customers("1"), 30)
}
