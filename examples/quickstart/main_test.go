package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

func TestRunAgainstTheEmbeddedFake(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, func(string) string { return "" }))
	got := out.String()
	assert.Contains(t, got, "using the in-memory JSM")
	assert.Contains(t, got, "1. Created Fred F. User <fred@example.com> as qm:")
	assert.Contains(t, got, "2. Fred F. User is a customer of service desk HELP")
	assert.Contains(t, got, "   - Mary Jones <mary@example.com>\n   - Fred F. User <fred@example.com>\n   2 in all")
	assert.Contains(t, got, "4. Removed Fred F. User from service desk HELP")
}

func TestRunAgainstAConfiguredSite(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithCustomer("1", "fred@example.com", "Fred Existing"))
	defer srv.Close()
	env := map[string]string{
		"JSM_BASE_URL": srv.URL, "JSM_EMAIL": servicedesktest.AdminEmail,
		"JSM_API_TOKEN": servicedesktest.AdminToken, "JSM_SERVICE_DESK": "1",
	}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, func(k string) string { return env[k] }))
	assert.Contains(t, out.String(), "1. fred@example.com already has an account")
	assert.Contains(t, out.String(), "4. Removed Fred Existing from service desk 1")
	assert.Empty(t, srv.Customers("1"))
}

func TestRunRefusesPartialConfiguration(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), &bytes.Buffer{}, func(k string) string {
		if k == "JSM_BASE_URL" {
			return "https://x.atlassian.net"
		}
		return ""
	})
	assert.ErrorContains(t, err, "set all of")
}

// TestRunFindsAnAccountOnNoDesk: an email whose account is on no desk is
// found with Jira's user search and added.
func TestRunFindsAnAccountOnNoDesk(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithCustomer("", "fred@example.com", "Fred Elsewhere"))
	defer srv.Close()
	env := map[string]string{
		"JSM_BASE_URL": srv.URL, "JSM_EMAIL": servicedesktest.AdminEmail,
		"JSM_API_TOKEN": servicedesktest.AdminToken, "JSM_SERVICE_DESK": "HELP",
	}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, func(k string) string { return env[k] }))
	assert.Contains(t, out.String(), "1. fred@example.com already has an account")
	assert.Contains(t, out.String(), "2. Fred Elsewhere is a customer of service desk HELP")
	assert.Contains(t, out.String(), "   - Fred Elsewhere <fred@example.com>\n   1 in all")
}

// TestRunAgainstDataCenter: a Data Center site below a context path, whose
// accounts have usernames and no account ids.
func TestRunAgainstDataCenter(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithDataCenter(), servicedesktest.WithContextPath("/jira"),
		servicedesktest.WithCustomer("", "fred@example.com", "Fred DC"))
	defer srv.Close()
	env := map[string]string{
		"JSM_BASE_URL": srv.URL, "JSM_EMAIL": servicedesktest.AdminEmail,
		"JSM_API_TOKEN": servicedesktest.AdminToken, "JSM_SERVICE_DESK": "HELP",
	}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, func(k string) string { return env[k] }))
	assert.Contains(t, out.String(), "2. Fred DC is a customer of service desk HELP")
	assert.Contains(t, out.String(), "4. Removed Fred DC from service desk HELP")
	assert.Empty(t, srv.Customers("HELP"))
}
