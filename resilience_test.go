package servicedesk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/servicedesk-go/servicedesk"
)

func addOne(c *servicedesk.Client, ctx context.Context) error {
	return c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
}

func TestRetryAfterOneSecondIsHonoured(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://x.atlassian.net",
		[]reply{{status: 429, header: map[string]string{"Retry-After": "1"}}, {status: 204}})
	start := time.Now()
	require.NoError(t, addOne(c, context.Background()))
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "waited at least Retry-After")
	assert.Len(t, w.all(), 2)
}

func TestRetryAfterBeyondDeadlineReturnsTheAnswer(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://x.atlassian.net", []reply{{
		status: 429, body: `{"errorMessage":"Rate limit exceeded."}`,
		header: map[string]string{"Retry-After": "30", "X-RateLimit-Remaining": "0", "RateLimit-Reason": "jira-burst-based"},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.Customers.List(ctx, "1", nil)
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "gave up at once instead of sleeping into the deadline")
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 30*time.Second, apiErr.RetryAfter)
	assert.Equal(t, 1, apiErr.Attempts)
	assert.Equal(t, "jira-burst-based", apiErr.RateLimit.Reason)
	assert.Equal(t, 0, apiErr.RateLimit.Remaining)
	assert.Len(t, w.all(), 1)
}

func TestCancelDuringBackoffWait(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 503, header: map[string]string{"Retry-After": "20"}}},
		servicedesk.WithRateLimitWait(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Customers.List(ctx, "1", nil)
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 10*time.Second, "did not sit out the 20 s wait")
	assert.Len(t, w.all(), 1)
}

func TestServiceUnavailableStormThenSuccess(t *testing.T) {
	t.Parallel()
	html := reply{status: 503, body: "<html><title>Service Unavailable</title></html>", header: map[string]string{"Content-Type": "text/html"}}
	c, w := mockClient(t, "https://x.atlassian.net", []reply{html, html, html, html, {status: 204}})
	require.NoError(t, addOne(c, context.Background()))
	assert.Len(t, w.all(), 5, "four retries by default")

	c2, w2 := mockClient(t, "https://x.atlassian.net", []reply{html}, servicedesk.WithMaxRetries(2))
	err := addOne(c2, context.Background())
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 3, apiErr.Attempts)
	assert.Equal(t, "Service Unavailable", apiErr.Message)
	assert.Len(t, w2.all(), 3)
}

// scriptedTransport fails its first attempts with errs, then hands over to
// next, recording how many attempts it saw.
type scriptedTransport struct {
	mu   sync.Mutex
	errs []error
	n    int
	next http.RoundTripper
}

func (s *scriptedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.n++
	var err error
	if len(s.errs) > 0 {
		err, s.errs = s.errs[0], s.errs[1:]
	}
	s.mu.Unlock()
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return s.next.RoundTrip(req)
}

func refused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "connection refused"}}
}

func TestCreateRetriesOnlyWhatNeverReachedTheServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{"accountId":"qm:1","displayName":"A"}`))
	}))
	t.Cleanup(srv.Close)
	create := func(tr *scriptedTransport) error {
		c, err := servicedesk.NewClient(srv.URL, servicedesk.WithHTTPClient(&http.Client{Transport: tr}),
			servicedesk.WithRetryWait(time.Millisecond, time.Millisecond))
		require.NoError(t, err)
		_, err = c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "a@b.co", DisplayName: "A"})
		return err
	}

	tr := &scriptedTransport{errs: []error{refused(), &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}, next: http.DefaultTransport}
	require.NoError(t, create(tr), "connection refused: the request never left")
	assert.Equal(t, 3, tr.n)

	tr = &scriptedTransport{errs: []error{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}, next: http.DefaultTransport}
	err := create(tr)
	require.ErrorIs(t, err, syscall.ECONNRESET, "reset after sending: the customer may exist")
	assert.Equal(t, 1, tr.n)

	// The same failure is retried for an idempotent operation.
	tr = &scriptedTransport{errs: []error{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, io.ErrUnexpectedEOF}, next: http.DefaultTransport}
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithHTTPClient(&http.Client{Transport: tr}), servicedesk.WithRetryWait(time.Millisecond, time.Millisecond))
	require.NoError(t, err)
	_ = c.Customers.Remove(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
	assert.Equal(t, 3, tr.n)
}

func TestHostileBodies(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 20<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("query") {
		case "huge":
			_, _ = w.Write([]byte(`{"values":[],"junk":"` + big + `"}`))
		case "endless":
			_, _ = w.Write([]byte(`{"values":[],"junk":"`))
			chunk := []byte(strings.Repeat("y", 64<<10))
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "reset":
			hj, _ := w.(http.Hijacker)
			conn, buf, _ := hj.Hijack()
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"values\":[{\"accountId\":")
			_ = buf.Flush()
			_ = conn.Close()
		case "error-huge":
			w.WriteHeader(500)
			_, _ = w.Write([]byte(big))
		}
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	for _, q := range []string{"huge", "endless", "reset"} {
		_, err := c.Customers.List(context.Background(), "1", &servicedesk.ListCustomersOptions{Query: q})
		require.ErrorIs(t, err, servicedesk.ErrInvalidResponse, q)
	}
	_, err = c.Customers.List(context.Background(), "1", &servicedesk.ListCustomersOptions{Query: "huge"})
	assert.Contains(t, err.Error(), "larger than")
	_, err = c.Customers.List(context.Background(), "1", &servicedesk.ListCustomersOptions{Query: "error-huge"})
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Len(t, apiErr.Body, 1<<20)
	assert.LessOrEqual(t, len(apiErr.Message), 300)
}

func TestHTTPClientTimeoutBoundsAnAttempt(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithHTTPClient(&http.Client{Timeout: 20 * time.Millisecond}), servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	var netErr net.Error
	require.ErrorAs(t, err, &netErr)
	assert.True(t, netErr.Timeout())
	assert.ErrorContains(t, err, "attempt timed out after 20ms (the http.Client's Timeout)", "names what set the bound")
}

func TestLogging(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{
		{status: 503, header: map[string]string{"X-AREQUESTID": "r-1"}},
		{status: 204, header: map[string]string{"X-AREQUESTID": "r-2", "X-RateLimit-Remaining": "41"}},
	}, basicAuth(), servicedesk.WithLogger(logger))
	require.NoError(t, addOne(c, context.Background()))

	mu.Lock()
	out := buf.String()
	mu.Unlock()
	assert.NotContains(t, out, testToken)
	assert.NotContains(t, out, wantBasic()[len("Basic "):])
	assert.NotContains(t, out, "Authorization")
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		recs = append(recs, rec)
	}
	require.Len(t, recs, 3)
	assert.Equal(t, "DEBUG", recs[0]["level"])
	assert.Equal(t, "servicedesk: attempt", recs[0]["msg"])
	assert.Equal(t, "POST", recs[0]["method"])
	assert.Equal(t, "/rest/servicedeskapi/servicedesk/1/customer", recs[0]["path"])
	assert.EqualValues(t, 503, recs[0]["status"])
	assert.EqualValues(t, 1, recs[0]["attempt"])
	assert.Equal(t, "r-1", recs[0]["request_id"])
	assert.Contains(t, recs[0], "duration")
	assert.Equal(t, "WARN", recs[1]["level"])
	assert.Equal(t, "servicedesk: retrying", recs[1]["msg"])
	assert.Equal(t, "503 Service Unavailable", recs[1]["reason"])
	assert.Contains(t, recs[1], "wait")
	assert.EqualValues(t, 2, recs[2]["attempt"])
	assert.EqualValues(t, 41, recs[2]["ratelimit_remaining"])
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRateLimitHook(t *testing.T) {
	t.Parallel()
	var seen []servicedesk.RateLimit
	var mu sync.Mutex
	reset := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Minute)
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 204, header: map[string]string{
		"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "7", "X-RateLimit-NearLimit": "true",
		"X-RateLimit-Reset": reset.Format("2006-01-02T15:04Z"),
	}}}, servicedesk.WithRateLimitHook(func(rl servicedesk.RateLimit) {
		mu.Lock()
		seen = append(seen, rl)
		mu.Unlock()
	}))
	require.NoError(t, addOne(c, context.Background()))
	require.Len(t, seen, 1)
	assert.Equal(t, servicedesk.RateLimit{Limit: 100, Remaining: 7, NearLimit: true, FillRate: -1, RetryAfter: -1, Reset: reset}, seen[0])
}

func TestEchoedCredentialsAreRedacted(t *testing.T) {
	t.Parallel()
	echo := `{"errorMessage":"bad credentials: ` + testToken + ` / ` + wantBasic() + `","errorMessages":["token ` + testToken + `"],"errors":{"auth":"` + testToken + `"}}`
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 401, body: echo}}, basicAuth())
	err := addOne(c, context.Background())
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized)
	assert.NotContains(t, err.Error(), testToken)
	assert.NotContains(t, err.Error(), wantBasic()[len("Basic "):])
	assert.Contains(t, err.Error(), "[REDACTED]")
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.NotContains(t, string(apiErr.Body), testToken)
	assert.NotContains(t, apiErr.ErrorMessages[0], testToken)
	assert.NotContains(t, apiErr.Errors["auth"], testToken)

	// A Connect JWT echoed back is redacted too.
	var seen string
	c2, _ := mockClientFunc(t, func(r *http.Request) (int, string) {
		seen = strings.TrimPrefix(r.Header.Get("Authorization"), "JWT ")
		return 401, `{"errorMessage":"expired token ` + seen + ` for secret s3cr3t-shared"}`
	}, servicedesk.WithConnectJWT("app", "s3cr3t-shared"))
	err = addOne(c2, context.Background())
	require.Error(t, err)
	require.NotEmpty(t, seen)
	assert.NotContains(t, err.Error(), seen)
	assert.NotContains(t, err.Error(), "s3cr3t-shared")
}

// mockClientFunc is mockClient with a handler deciding each answer.
func mockClientFunc(t *testing.T, answer func(*http.Request) (int, string), opts ...servicedesk.Option) (*servicedesk.Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body := answer(r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, append(opts, servicedesk.WithMaxRetries(0))...)
	require.NoError(t, err)
	return c, srv
}

func TestPlainHTTPNeedsOptIn(t *testing.T) {
	t.Parallel()
	_, err := servicedesk.NewClient("http://jira.example.com", basicAuth())
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	assert.Contains(t, err.Error(), "clear text")
	for _, base := range []string{"http://127.0.0.1:8080", "http://localhost", "http://[::1]:9000", "http://127.3.4.5"} {
		_, err := servicedesk.NewClient(base, basicAuth())
		assert.NoError(t, err, base)
	}
	_, err = servicedesk.NewClient("http://jira.localhost:8080", basicAuth())
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput, ".localhost names are resolved through DNS")
	_, err = servicedesk.NewClient("http://jira.example.com", basicAuth(), servicedesk.WithInsecurePlainHTTP())
	assert.NoError(t, err)
	_, err = servicedesk.NewClient("http://jira.example.com")
	assert.NoError(t, err, "no credentials, nothing to leak")
}

// tokenFunc is an oauth2.TokenSource handing out whatever f returns.
type tokenFunc func() string

func (f tokenFunc) Token() (*oauth2.Token, error) { return &oauth2.Token{AccessToken: f()}, nil }

func TestRetryReauthenticatesEachAttempt(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	ts := tokenFunc(func() string { return "tok-" + string(rune('0'+n.Add(1))) })
	c, w := mockClient(t, "https://api.atlassian.com/ex/jira/x", []reply{{status: 503}, {status: 204}}, servicedesk.WithTokenSource(ts))
	require.NoError(t, addOne(c, context.Background()))
	reqs := w.all()
	require.Len(t, reqs, 2)
	assert.Equal(t, "Bearer tok-1", reqs[0].Header.Get("Authorization"))
	assert.Equal(t, "Bearer tok-2", reqs[1].Header.Get("Authorization"))
}
