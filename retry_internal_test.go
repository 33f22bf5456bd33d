package servicedesk

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoffStaysWithinBounds(t *testing.T) {
	t.Parallel()
	min, max := 100*time.Millisecond, 2*time.Second
	for retry := 0; retry < 40; retry++ {
		ceiling := max
		if retry < 5 {
			ceiling = min << retry
		}
		for i := 0; i < 200; i++ {
			w := backoff(min, max, retry)
			require.GreaterOrEqual(t, w, min)
			require.LessOrEqual(t, w, ceiling, "retry %d", retry)
		}
	}
	assert.Equal(t, time.Duration(0), backoff(0, 0, 3))
	assert.Equal(t, time.Second, backoff(time.Second, time.Second, 10))
}

// TestServerWaitIsAFloor: whatever the jitter picks, the wait is at least
// what Retry-After (seconds or HTTP date) or X-RateLimit-Reset asks, even
// above the configured maximum.
func TestServerWaitIsAFloor(t *testing.T) {
	t.Parallel()
	c := &Client{maxRetries: 3, retryWaitMin: time.Millisecond, retryWaitMax: 2 * time.Millisecond, limitWait: time.Hour}
	now := time.Now()
	cases := map[string]struct {
		header http.Header
		floor  time.Duration
	}{
		"seconds":   {http.Header{"Retry-After": {"3"}}, 3 * time.Second},
		"http date": {http.Header{"Retry-After": {now.Add(10 * time.Second).UTC().Format(http.TimeFormat)}}, 8 * time.Second},
		"reset":     {http.Header{"X-Ratelimit-Reset": {now.Add(5 * time.Minute).UTC().Format("2006-01-02T15:04Z")}}, 4 * time.Minute},
		"zero with reset": {http.Header{"Retry-After": {"0"}, "X-Ratelimit-Reset": {now.Add(2 * time.Second).UTC().Format(time.RFC3339Nano)}},
			1500 * time.Millisecond},
	}
	for name, tc := range cases {
		cl := &call{ctx: context.Background(), c: c, r: &request{method: http.MethodGet, idempotent: true}, n: 1}
		reason, wait := cl.retryWait(&http.Response{StatusCode: 429, Header: tc.header}, nil, now)
		require.Equal(t, "rate limited", reason, name)
		assert.GreaterOrEqual(t, wait, tc.floor, name)
	}
}

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	c := &Client{maxRetries: 3, retryWaitMin: time.Millisecond, retryWaitMax: time.Millisecond, limitWait: time.Hour}
	for status, want := range map[int][2]bool{ // {idempotent, create}
		429: {true, true}, 500: {true, false}, 502: {true, false}, 503: {true, false}, 504: {true, false},
		400: {false, false}, 401: {false, false}, 404: {false, false}, 409: {false, false}, 412: {false, false}, 501: {false, false},
	} {
		for i, idempotent := range []bool{true, false} {
			cl := &call{ctx: context.Background(), c: c, r: &request{method: http.MethodPost, idempotent: idempotent}, n: 1}
			reason, _ := cl.retryWait(&http.Response{StatusCode: status, Header: http.Header{}}, nil, time.Now())
			assert.Equal(t, want[i], reason != "", "status %d idempotent %v", status, idempotent)
		}
	}
	// No retry once attempts are spent.
	cl := &call{ctx: context.Background(), c: c, r: &request{idempotent: true}, n: 4}
	reason, _ := cl.retryWait(&http.Response{StatusCode: 503, Header: http.Header{}}, nil, time.Now())
	assert.Empty(t, reason)
}

func TestTransportErrorPolicy(t *testing.T) {
	t.Parallel()
	c := &Client{maxRetries: 3, retryWaitMin: time.Millisecond, retryWaitMax: time.Millisecond, limitWait: time.Hour}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	noHost := &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}
	dnsBusy := &net.DNSError{Err: "server misbehaving", Name: "x.example", IsTemporary: true}
	cert := &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}
	cases := []struct {
		name              string
		err               error
		idempotent, creat bool
	}{
		{"refused", refused, true, true},
		{"reset after sending", reset, true, false},
		{"unexpected EOF", io.ErrUnexpectedEOF, true, false},
		{"unknown host", noHost, false, false},
		{"temporary DNS failure", dnsBusy, true, true},
		{"certificate", cert, false, false},
		{"our credentials", &credentialsError{err: errors.New("revoked")}, false, false},
		{"redirect loop", &redirectError{errors.New("stopped after 10 redirects")}, false, false},
		{"redirect refused by the user", &url.Error{Op: "Get", URL: "https://x", Err: &redirectError{errors.New("no thanks")}}, false, false},
	}
	for _, tc := range cases {
		for _, idempotent := range []bool{true, false} {
			cl := &call{ctx: context.Background(), c: c, r: &request{idempotent: idempotent}, n: 1}
			reason, _ := cl.retryWait(nil, tc.err, time.Now())
			got := reason != ""
			want := tc.creat
			if idempotent {
				want = tc.idempotent
			}
			assert.Equal(t, want, got, "%s, idempotent %v", tc.name, idempotent)
		}
	}
}

func TestRedactedURL(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "", redactedURL(nil))
	u, _ := url.Parse("https://me:s3cret@x.atlassian.net/rest/api/3/myself?a=b")
	assert.Equal(t, "https://x.atlassian.net/rest/api/3/myself?a=b", redactedURL(u))
	assert.Equal(t, "me", u.User.Username(), "the URL given is left as it was")
	plain, _ := url.Parse("https://x.atlassian.net/")
	assert.Equal(t, "https://x.atlassian.net/", redactedURL(plain))
}
