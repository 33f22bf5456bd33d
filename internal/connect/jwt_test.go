package connect

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSignVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	u, _ := url.Parse("https://jira.example.com/jira/rest/servicedeskapi/servicedesk/1/customer?query=a+b&limit=5")
	secrets := func(k string) (string, bool) { return map[string]string{"my-app": "shh"}[k], k == "my-app" }

	tok, err := Sign("my-app", "shh", "GET", u, "/jira", now, 3*time.Minute)
	require.NoError(t, err)

	iss, err := Verify(tok, secrets, "GET", u, "/jira", now.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, "my-app", iss)

	other, _ := url.Parse("https://jira.example.com/jira/rest/servicedeskapi/servicedesk/2/customer?query=a+b&limit=5")
	for name, check := range map[string]func() error{
		"another request": func() error { _, err := Verify(tok, secrets, "GET", other, "/jira", now); return err },
		"another method":  func() error { _, err := Verify(tok, secrets, "DELETE", u, "/jira", now); return err },
		"expired":         func() error { _, err := Verify(tok, secrets, "GET", u, "/jira", now.Add(10*time.Minute)); return err },
		"wrong secret": func() error {
			_, err := Verify(tok, func(string) (string, bool) { return "nope", true }, "GET", u, "/jira", now)
			return err
		},
		"unknown app": func() error {
			_, err := Verify(tok, func(string) (string, bool) { return "", false }, "GET", u, "/jira", now)
			return err
		},
		"garbage": func() error { _, err := Verify("a.b.c", secrets, "GET", u, "/jira", now); return err },
	} {
		assert.ErrorIs(t, check(), ErrInvalidToken, name)
	}
}

// BenchmarkSign is the cost Connect adds to every attempt.
func BenchmarkSign(b *testing.B) {
	u, _ := url.Parse("https://your-domain.atlassian.net/rest/servicedeskapi/servicedesk/1/customer?limit=50&query=fred%20smith&start=100")
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Sign("com.example.app", "shared-secret", "GET", u, "", now, 3*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
