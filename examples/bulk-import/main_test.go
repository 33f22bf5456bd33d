package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

func noEnv(string) string { return "" }

func TestImportSampleIntoTheFake(t *testing.T) {
	t.Parallel()
	var out, progress bytes.Buffer
	require.NoError(t, run(context.Background(), nil, &out, &progress, noEnv))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	assert.Equal(t, "6 rows: 6 on desk HELP (4 created, 2 had an account already), 0 refused, 0 failed", lines[0],
		"grace is on the desk, ada has an account on no desk: both found and added")
	assert.Regexp(t, `^rate limits: paced or paused \d+ of \d+ calls, .+ in all; 429 answers: \d+; calls that gave up waiting: 0$`, lines[1])
	assert.Contains(t, progress.String(), "importing customers: 6/6")
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
	srv := servicedesktest.NewServer(servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{Method: "POST", Requests: 50}))
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
	assert.Equal(t, "30 rows: 30 on desk 1 (30 created, 0 had an account already), 0 refused, 0 failed", firstLine(first.String()))
	require.NoError(t, run(context.Background(), []string{"-csv", path}, &second, &bytes.Buffer{}, getenv))
	assert.Equal(t, "30 rows: 30 on desk 1 (0 created, 30 had an account already), 0 refused, 0 failed", firstLine(second.String()))
	assert.Len(t, srv.Customers("1"), 30)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestAccountsOnNoDeskConverge: emails whose accounts exist but are on no
// desk are found (Jira's user search, through Ensure) and added, on Cloud
// by account id and on Data Center below a context path by username; the
// second run changes nothing. Each row is one Ensure: 2 requests for a new
// email, 3 for an existing one.
func TestAccountsOnNoDeskConverge(t *testing.T) {
	t.Parallel()
	for _, dc := range []bool{false, true} {
		opts := []servicedesktest.Option{
			servicedesktest.WithCustomer("", "p1@example.com", "P1"),
			servicedesktest.WithCustomer("", "p2@example.com", "P2"),
		}
		if dc {
			opts = append(opts, servicedesktest.WithDataCenter(), servicedesktest.WithContextPath("/jira"))
		}
		srv := servicedesktest.NewServer(opts...)
		defer srv.Close()
		env := map[string]string{"JSM_BASE_URL": srv.URL, "JSM_EMAIL": servicedesktest.AdminEmail, "JSM_API_TOKEN": servicedesktest.AdminToken, "JSM_SERVICE_DESK": "1"}
		path := filepath.Join(t.TempDir(), "people.csv")
		require.NoError(t, os.WriteFile(path, []byte("p1@example.com,P1\np2@example.com,P2\np3@example.com,P3\n"), 0o600))
		for run_ := 0; run_ < 2; run_++ {
			before := len(srv.Requests())
			var out bytes.Buffer
			require.NoError(t, run(context.Background(), []string{"-csv", path}, &out, &bytes.Buffer{}, func(k string) string { return env[k] }))
			want := "3 rows: 3 on desk 1 (1 created, 2 had an account already), 0 refused, 0 failed"
			wantRequests := 1 + 2 + 3 + 3 // the desk looked at first, then 2 a new email, 3 an existing one
			if run_ == 1 {
				want = "3 rows: 3 on desk 1 (0 created, 3 had an account already), 0 refused, 0 failed"
				wantRequests = 1 + 3*3
			}
			assert.Equal(t, want, firstLine(out.String()), "dc=%v, run %d", dc, run_+1)
			// On Data Center, look-ups made before the client learnt the
			// form (one at least, one per worker at most) ask Cloud's first.
			probes := 0
			for _, r := range srv.Requests()[before:] {
				if r.Status == 404 && strings.HasSuffix(r.Path, "/rest/api/3/user/search") {
					probes++
				}
			}
			if dc {
				assert.True(t, probes >= 1 && probes <= 3, "dc=%v, run %d: %d probes", dc, run_+1, probes)
			} else {
				assert.Zero(t, probes)
			}
			assert.Len(t, srv.Requests()[before:], wantRequests+probes, "dc=%v, run %d", dc, run_+1)
		}
		assert.Len(t, srv.Customers("1"), 3, "dc=%v", dc)
		for _, r := range srv.Requests() {
			assert.NotEqual(t, 0, r.Status, "dc=%v", dc)
			if strings.HasSuffix(r.Path, "/user/search") && r.Status == 200 {
				assert.Equal(t, dc, strings.Contains(r.Path, "/rest/api/2/"), "dc=%v: %s", dc, r.Path)
			}
		}
	}
}

// TestUnknownDeskImportsNothing: a mistyped desk is found out before any
// account is created (customers cannot be deleted through the API).
func TestUnknownDeskImportsNothing(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer()
	defer srv.Close()
	env := map[string]string{"JSM_BASE_URL": srv.URL, "JSM_EMAIL": servicedesktest.AdminEmail, "JSM_API_TOKEN": servicedesktest.AdminToken}
	var out bytes.Buffer
	err := run(context.Background(), []string{"-desk", "NOPE"}, &out, &bytes.Buffer{}, func(k string) string { return env[k] })
	require.ErrorIs(t, err, servicedesk.ErrNotFound)
	assert.ErrorContains(t, err, "service desk NOPE")
	assert.ErrorContains(t, err, "nothing was imported")
	assert.Len(t, srv.Requests(), 1, "the look at the desk, nothing more")
}
