package servicedesk_test

// Faults a client must survive: contexts that keep their contract, hooks
// and limiters that panic, answers that try to stall it (issue 17).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

type traceKey struct{}

// contextChecker is a transport that does what httptrace and otelhttp do:
// it puts a value in the request's context and derives a context from it.
// It remembers each attempt's context and, on every later attempt, checks
// that the earlier ones kept the contract of context.Context: Done never
// reopens, and Err is set once Done is closed.
type contextChecker struct {
	mu         sync.Mutex
	ctxs       []context.Context
	dones      []<-chan struct{}
	violations []string
}

func (cc *contextChecker) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := context.WithValue(req.Context(), traceKey{}, "span")
	cc.mu.Lock()
	for i, old := range cc.ctxs {
		select {
		case <-cc.dones[i]:
			if old.Err() == nil {
				cc.violations = append(cc.violations, "Err() is nil after Done was closed")
			}
			if old.Done() != cc.dones[i] {
				cc.violations = append(cc.violations, "Done reopened")
			}
		default:
		}
	}
	cc.ctxs = append(cc.ctxs, req.Context())
	cc.dones = append(cc.dones, req.Context().Done())
	cc.mu.Unlock()
	child, cancel := context.WithCancel(ctx) // as net/http does below the transport
	defer cancel()
	resp, err := http.DefaultTransport.RoundTrip(req.WithContext(child))
	if err == nil {
		// Keep the child alive while the body is read.
		body := resp.Body
		cancelLater := cancel
		cancel = func() {}
		resp.Body = &onClose{ReadCloser: body, f: cancelLater}
	}
	return resp, err
}

type onClose struct {
	io.ReadCloser
	f func()
}

func (o *onClose) Close() error {
	err := o.ReadCloser.Close()
	o.f()
	return err
}

// TestAttemptContextsKeepTheirContract: an attempt that times out is
// retried with a fresh bound, and the timed-out attempt's context stays
// done with its error set. A hand-made context that reopened Done let a
// context derived by a transport see Done closed and Err nil, and
// net/http panicked on a goroutine nobody could recover
// ("context: internal error: missing cancel error").
func TestAttemptContextsKeepTheirContract(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n.Add(1) == 1 {
			select { // the first attempt outlives its bound
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	cc := &contextChecker{}
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithHTTPClient(&http.Client{Transport: cc}),
		servicedesk.WithTimeout(100*time.Millisecond), servicedesk.WithMaxRetries(2),
		servicedesk.WithRetryWait(time.Millisecond, time.Millisecond))
	require.NoError(t, err)
	within(t, 10*time.Second, func() { err = addOne(c, context.Background()) })
	require.ErrorIs(t, err, servicedesk.ErrServer, "the last answer, a 503")
	assert.Equal(t, int32(3), n.Load(), "a timed-out attempt is retried")
	cc.mu.Lock()
	defer cc.mu.Unlock()
	assert.Empty(t, cc.violations)
	require.Len(t, cc.ctxs, 3)
	select {
	case <-cc.dones[0]:
		assert.Error(t, cc.ctxs[0].Err(), "the timed-out attempt's context says why it ended")
	default:
		t.Error("the timed-out attempt's context is not done")
	}
}

// bodyTracker is a transport that remembers whether the bodies of the
// answers it handed out were closed.
type bodyTracker struct {
	mu     sync.Mutex
	bodies []*trackedBody
}

type trackedBody struct {
	io.ReadCloser
	closed atomic.Bool
}

func (b *trackedBody) Close() error {
	b.closed.Store(true)
	return b.ReadCloser.Close()
}

func (bt *bodyTracker) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		tb := &trackedBody{ReadCloser: resp.Body}
		resp.Body = tb
		bt.mu.Lock()
		bt.bodies = append(bt.bodies, tb)
		bt.mu.Unlock()
	}
	return resp, err
}

func (bt *bodyTracker) open() int {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	n := 0
	for _, b := range bt.bodies {
		if !b.closed.Load() {
			n++
		}
	}
	return n
}

// recovered runs f and returns what it panicked with.
func recovered(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

func pageServer(t *testing.T, header map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"size":1,"start":0,"limit":1,"isLastPage":true,"values":[{"accountId":"a"}]}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestPanickingHooksReleaseWhatTheCallHeld: a hook that panics (and the
// caller recovers, as net/http does for handlers) leaves no slot taken and
// no answer open: with one slot, the next call goes through.
func TestPanickingHooksReleaseWhatTheCallHeld(t *testing.T) {
	t.Parallel()
	for _, which := range []string{"rate-limit hook", "attempt hook", "limiter's Done"} {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			srv := pageServer(t, map[string]string{"X-RateLimit-Remaining": "41"})
			bt := &bodyTracker{}
			var panics atomic.Int32
			boom := func() {
				if panics.Add(1) <= 3 {
					panic("boom")
				}
			}
			opts := []servicedesk.Option{servicedesk.WithHTTPClient(&http.Client{Transport: bt}), servicedesk.WithMaxInFlight(1)}
			switch which {
			case "rate-limit hook":
				opts = append(opts, servicedesk.WithRateLimitHook(func(servicedesk.RateLimit) { boom() }))
			case "attempt hook":
				opts = append(opts, servicedesk.WithHooks(servicedesk.Hooks{Attempt: func(context.Context, servicedesk.AttemptInfo) { boom() }}))
			case "limiter's Done":
				opts = append(opts, servicedesk.WithRateLimiter(&panickyLimiter{boom: boom}))
			}
			c, err := servicedesk.NewClient(srv.URL, opts...)
			require.NoError(t, err)
			var got []any
			within(t, 5*time.Second, func() { // a leaked slot would block the second call for good
				for i := 0; i < 3; i++ {
					got = append(got, recovered(func() { _, _ = c.Customers.List(context.Background(), "1", nil) }))
				}
				_, err = c.Customers.List(context.Background(), "1", nil)
			})
			assert.Equal(t, []any{"boom", "boom", "boom"}, got, "the panic reaches the caller")
			require.NoError(t, err, "the one slot is free again")
			assert.Zero(t, bt.open(), "every answer's body was closed")
		})
	}
}

type panickyLimiter struct{ boom func() }

func (*panickyLimiter) Wait(context.Context, servicedesk.Endpoint, time.Duration) error { return nil }
func (l *panickyLimiter) Done(servicedesk.Endpoint, servicedesk.Outcome)                { l.boom() }

// TestPrefetchPanicReachesTheWalker: a hook panicking on the goroutine that
// fetches the next page ahead is raised on the goroutine walking the pages,
// where it can be recovered, instead of killing the process.
func TestPrefetchPanicReachesTheWalker(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer()
	t.Cleanup(srv.Close)
	for i := 0; i < 3; i++ {
		srv.AddCustomer("1", fmt.Sprintf("p%d@example.com", i), "P")
	}
	var calls atomic.Int32
	c := fakeClient(t, srv, servicedesk.WithPrefetch(), servicedesk.WithHooks(servicedesk.Hooks{
		CallStart: func(ctx context.Context, _ servicedesk.CallInfo) context.Context {
			if calls.Add(1) == 2 { // the page fetched ahead
				panic("boom")
			}
			return ctx
		},
	}))
	n := 0
	v := recovered(func() {
		for _, err := range c.Customers.All(context.Background(), "1", &servicedesk.ListCustomersOptions{Limit: 1}) {
			require.NoError(t, err)
			n++
		}
	})
	assert.Equal(t, "boom", v)
	assert.Equal(t, 1, n, "the first page was walked")
}

// sharedRefusal hands every call the same *Error, as a limiter may.
type sharedRefusal struct{ e *servicedesk.Error }

func (l *sharedRefusal) Wait(context.Context, servicedesk.Endpoint, time.Duration) error { return l.e }
func (*sharedRefusal) Done(servicedesk.Endpoint, servicedesk.Outcome)                    {}

// TestLimitersErrorIsCopied: the client adds each call's method and URL to
// a copy of the limiter's refusal, not to the value the limiter shares.
// Without the copy, -race reports the writes and callers see each other's
// URLs.
func TestLimitersErrorIsCopied(t *testing.T) {
	t.Parallel()
	shared := &servicedesk.Error{StatusCode: 429, Message: "not sent: shared quota spent", RetryAfter: time.Minute}
	c, err := servicedesk.NewClient("https://x.atlassian.net", servicedesk.WithRateLimiter(&sharedRefusal{shared}))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			desk := fmt.Sprint(i)
			_, err := c.Customers.List(context.Background(), desk, nil)
			var apiErr *servicedesk.Error
			if assert.ErrorAs(t, err, &apiErr) {
				assert.Equal(t, "https://x.atlassian.net/rest/servicedeskapi/servicedesk/"+desk+"/customer", apiErr.URL)
			}
		}()
	}
	wg.Wait()
	assert.Empty(t, shared.URL, "the limiter's value is left as it was")
	assert.Empty(t, shared.Method)
}

// gateLimiter lets the first n Waits through and refuses the rest.
type gateLimiter struct {
	n atomic.Int32
}

func (l *gateLimiter) Wait(context.Context, servicedesk.Endpoint, time.Duration) error {
	if l.n.Add(-1) < 0 {
		return &servicedesk.Error{StatusCode: 429, Message: "not sent: the gate is shut", RetryAfter: time.Minute}
	}
	return nil
}
func (*gateLimiter) Done(servicedesk.Endpoint, servicedesk.Outcome) {}

// TestRetryIsReportedAsItHappened: AttemptInfo.Retry and the "retrying"
// log say another attempt follows only when one does: not when the
// limiter then refuses it, nor when the context ends during the wait.
func TestRetryIsReportedAsItHappened(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, ctx context.Context, opts ...servicedesk.Option) ([]servicedesk.AttemptInfo, string, error) {
		var buf bytes.Buffer
		var mu sync.Mutex
		logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
		h := &hookLog{}
		opts = append(opts, servicedesk.WithHooks(h.hooks()), servicedesk.WithLogger(logger))
		c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 503}, {status: 204}}, opts...)
		err := addOne(c, ctx)
		mu.Lock()
		defer mu.Unlock()
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.attempts, buf.String(), err
	}

	gate := &gateLimiter{}
	gate.n.Store(1)
	attempts, logs, err := run(t, context.Background(), servicedesk.WithRateLimiter(gate))
	require.ErrorIs(t, err, servicedesk.ErrServer, "the 503, as the retry was refused")
	require.Len(t, attempts, 1)
	assert.False(t, attempts[0].Retry, "the limiter refused the retry")
	assert.NotContains(t, logs, "retrying")
	assert.Contains(t, err.Error(), "not retried: the gate is shut")

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	attempts, logs, err = run(t, ctx, servicedesk.WithRetryWait(time.Minute, time.Minute))
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, attempts, 1)
	assert.False(t, attempts[0].Retry, "the context ended during the wait")
	assert.NotContains(t, logs, "retrying")

	attempts, logs, err = run(t, context.Background())
	require.NoError(t, err)
	require.Len(t, attempts, 2)
	assert.True(t, attempts[0].Retry)
	assert.False(t, attempts[1].Retry)
	assert.Contains(t, logs, "retrying")
}

// TestEveryWaitIsCounted: a call that waited out a 429's Retry-After says
// so in CallResult.Waited, and the attempt after the wait in
// AttemptInfo.Waited.
func TestEveryWaitIsCounted(t *testing.T) {
	t.Parallel()
	h := &hookLog{}
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 429, header: map[string]string{"Retry-After": "1"}}, {status: 204}},
		servicedesk.WithHooks(h.hooks()))
	require.NoError(t, addOne(c, context.Background()))
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.ends, 1)
	assert.GreaterOrEqual(t, h.ends[0].Waited, time.Second)
	require.Len(t, h.attempts, 2)
	assert.GreaterOrEqual(t, h.attempts[1].Waited, time.Second)
}

// TestRetryWaitDoesNotCapTheRateLimitWait: short backoff bounds, as tests
// set them, leave the rate-limit allowance at its own default: a 429 asking
// for a second is waited out. An allowance too short for it is named.
func TestRetryWaitDoesNotCapTheRateLimitWait(t *testing.T) {
	t.Parallel()
	replies := []reply{{status: 429, header: map[string]string{"Retry-After": "1"}}, {status: 204}}
	w := &wire{}
	mt := transportFunc(func(req *http.Request) (*http.Response, error) {
		n := len(w.all())
		w.record(req)
		r := replies[min(n, len(replies)-1)]
		resp := &http.Response{StatusCode: r.status, Header: http.Header{}, Body: http.NoBody, Request: req}
		for k, v := range r.header {
			resp.Header.Set(k, v)
		}
		return resp, nil
	})
	c, err := servicedesk.NewClient("https://x.atlassian.net", servicedesk.WithHTTPClient(&http.Client{Transport: mt}),
		servicedesk.WithRetryWait(10*time.Millisecond, 50*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, addOne(c, context.Background()), "the second's wait was within the default allowance")
	assert.Len(t, w.all(), 2)

	c, _ = mockClient(t, "https://x.atlassian.net", replies, servicedesk.WithRateLimitWait(500*time.Millisecond))
	err = addOne(c, context.Background())
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	assert.Contains(t, err.Error(), "429 Too Many Requests; retry after 1s; not retried: WithRateLimitWait allows 500ms a call")
}

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestSlotWaitIsBoundedByTheAllowance: a call waiting for a free slot on
// the wire waits no longer than WithRateLimitWait allows, and says so.
func TestSlotWaitIsBoundedByTheAllowance(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // the first call holds the only slot
		case <-release:
		case <-time.After(5 * time.Second):
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithMaxInFlight(1), servicedesk.WithRateLimitWait(100*time.Millisecond))
	require.NoError(t, err)
	go func() { _ = addOne(c, context.Background()) }()
	time.Sleep(50 * time.Millisecond) // the first call is on the wire
	within(t, 5*time.Second, func() { err = addOne(c, context.Background()) })
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Zero(t, apiErr.Attempts, "not sent")
	assert.Contains(t, err.Error(), "WithMaxInFlight")
	assert.Contains(t, err.Error(), "WithRateLimitWait allows 100ms a call")
}

// TestConnectionRefusedSaysHowManyAttempts: a call that never got an
// answer says how often it tried, as one that got 503s does.
func TestConnectionRefusedSaysHowManyAttempts(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	c, err := servicedesk.NewClient("http://"+addr, servicedesk.WithRetryWait(time.Millisecond, time.Millisecond), servicedesk.WithMaxRetries(2))
	require.NoError(t, err)
	err = addOne(c, context.Background())
	require.Error(t, err)
	assert.ErrorContains(t, err, "connection refused")
	assert.ErrorContains(t, err, "gave up after 3 attempts")
}

// TestCredentialsEchoedInHeadersOrAtTheCutAreRedacted: a server echoing the
// API token in X-AREQUESTID or RateLimit-Reason, or in a plain-text body
// right where the message is cut short, shows it nowhere: not in Error(),
// the *Error's fields, logs or hooks.
func TestCredentialsEchoedInHeadersOrAtTheCutAreRedacted(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := &hookLog{}
	var hooked []servicedesk.RateLimit
	body := strings.Repeat("x", 190) + " " + testToken + " trailing words"
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 429, body: body, header: map[string]string{
		"Content-Type":     "text/plain",
		"X-AREQUESTID":     "req-" + testToken,
		"RateLimit-Reason": "jira-burst-based " + testToken,
		"RateLimit-Policy": `"` + testToken + `";q=10;w=1`,
		"Retry-After":      "0",
	}}}, basicAuth(), servicedesk.WithLogger(logger), servicedesk.WithHooks(h.hooks()), servicedesk.WithMaxRetries(0),
		servicedesk.WithRateLimitHook(func(rl servicedesk.RateLimit) {
			mu.Lock()
			defer mu.Unlock()
			hooked = append(hooked, rl)
		}))
	err := addOne(c, context.Background())
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)

	secretBits := []string{testToken, testToken[:8]}
	texts := map[string]string{"Error()": err.Error(), "RequestID": apiErr.RequestID, "Reason": apiErr.RateLimit.Reason,
		"Message": apiErr.Message, "Body": string(apiErr.Body)}
	for _, p := range apiErr.RateLimit.Policies {
		texts["policy"] += p.Name
	}
	mu.Lock()
	texts["logs"] = buf.String()
	for _, rl := range hooked {
		texts["rate-limit hook"] += rl.Reason
	}
	mu.Unlock()
	h.mu.Lock()
	for _, a := range h.attempts {
		texts["attempt hook"] += a.RequestID + " " + a.RateLimit.Reason
	}
	for _, e := range h.ends {
		texts["end hook"] += e.RequestID
	}
	h.mu.Unlock()
	for where, text := range texts {
		require.NotEmpty(t, text, where)
		for _, bit := range secretBits {
			assert.NotContains(t, text, bit, where)
		}
	}
	assert.Contains(t, apiErr.RequestID, "[REDACTED]")
	assert.Contains(t, apiErr.Message, "[REDACTED", "redacted before it was cut short")
}

// TestAttemptErrorHoldsNoQuery: the transport error an Attempt hook sees
// does not unwrap to the *url.Error, whose text holds the query (a
// customer's email): hooks are documented never to see queries.
func TestAttemptErrorHoldsNoQuery(t *testing.T) {
	t.Parallel()
	h := &hookLog{}
	mt := transportFunc(func(*http.Request) (*http.Response, error) { return nil, io.ErrUnexpectedEOF })
	c, err := servicedesk.NewClient("https://x.atlassian.net", servicedesk.WithHTTPClient(&http.Client{Transport: mt}),
		servicedesk.WithHooks(h.hooks()), servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", &servicedesk.ListCustomersOptions{Query: "fred.flintstone@example.com"})
	require.Error(t, err)
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.attempts, 1)
	for e := h.attempts[0].Err; e != nil; e = errors.Unwrap(e) {
		var urlErr *url.Error
		assert.False(t, errors.As(e, &urlErr), "unwraps to a *url.Error")
		assert.NotContains(t, e.Error(), "fred.flintstone")
	}
	assert.ErrorIs(t, h.attempts[0].Err, io.ErrUnexpectedEOF, "the cause is still there")
}

// TestDoHead: HEAD answers carry the GET's Content-Length but no body;
// Do leaves v as it is instead of failing on an "empty body".
func TestDoHead(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "42")
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, `{"a":"0123456789012345678901234567890123"}`)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	v := map[string]string{"kept": "yes"}
	require.NoError(t, c.Do(context.Background(), http.MethodHead, "/rest/api/3/myself", nil, nil, &v))
	assert.Equal(t, map[string]string{"kept": "yes"}, v)
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", nil, nil, &v))
	assert.Len(t, v["a"], 34)
}

// TestDoSharesTheOperationsTemplate: Do on the path of a typed operation
// is paced, paused and labelled as that operation, whatever its ids look
// like (a lower-case project key was a word of its own template, paced at
// Cloud's default 100 a second instead of listing's 5).
func TestDoSharesTheOperationsTemplate(t *testing.T) {
	t.Parallel()
	l := &recordingLimiter{}
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 200, body: `{"values":[],"isLastPage":true}`}}, servicedesk.WithRateLimiter(l))
	var page servicedesk.Page[servicedesk.Customer]
	require.NoError(t, c.Do(context.Background(), "GET", "/rest/servicedeskapi/servicedesk/help/customer", nil, nil, &page))
	_, err := c.Customers.List(context.Background(), "help", nil)
	require.NoError(t, err)
	require.NoError(t, c.Do(context.Background(), "GET", "/rest/servicedeskapi/servicedesk/help/customer/extra", nil, nil, nil))
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Len(t, l.waits, 3)
	assert.Equal(t, l.waits[1], l.waits[0], "Do and List share one endpoint")
	assert.Equal(t, "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer", l.waits[0].Path)
	assert.NotEqual(t, l.waits[1].Path, l.waits[2].Path, "another path is another endpoint")
}

// TestNothingLeftHoldsTheEndpointUntilTheReset: "r=0;t=1" is the server
// saying no request will be served before the reset: the next one waits
// for it (here, longer than allowed: it is refused unsent) instead of
// going out as soon as the bucket has a token again.
func TestNothingLeftHoldsTheEndpointUntilTheReset(t *testing.T) {
	t.Parallel()
	srv, n := scripted(t, 200, map[string]string{
		"RateLimit-Policy": `"jira-burst-based";q=100;w=1`,
		"RateLimit":        `"jira-burst-based";r=0;t=1`,
	})
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithRateLimitWait(200*time.Millisecond))
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	refused := notSent(t, err, "")
	assert.Equal(t, "jira-burst-based", refused.RateLimit.Policy)
	assert.Greater(t, refused.RetryAfter, 500*time.Millisecond)
	assert.Equal(t, int32(1), n.Load())
}

// TestRefusalSaysHowDeepTheQueueIs: a call refused because the requests
// ahead of it would take longer than its allowance says how many are
// queued and what allowance would have served it.
func TestRefusalSaysHowDeepTheQueueIs(t *testing.T) {
	t.Parallel()
	ep := servicedesk.Endpoint{Method: "POST", Path: "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer"}
	srv := servicedesktest.NewServer()
	t.Cleanup(srv.Close)
	c := fakeClient(t, srv, servicedesk.WithRateLimiter(servicedesk.NewRateLimiter(servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{ep: 10}})),
		servicedesk.WithRateLimitWait(time.Second))
	add := adder(srv, c)
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- add()
		}()
	}
	wg.Wait()
	close(errs)
	var refused []string
	for err := range errs {
		if err != nil {
			refused = append(refused, err.Error())
		}
	}
	require.NotEmpty(t, refused, "8 a second, 30 at once, a second allowed")
	assert.Regexp(t, `not sent: paced at 8 a second, \d+ requests queued ahead; WithRateLimitWait's allowance has (1s|9\d\dms) left \([\d.]+m?s more would have served it\); retry after [\d.]+m?s$`, refused[0])
}

// TestRateLimitWaitBoundsTheWholeCall: what a call waits on rate limits
// adds up across its attempts: a call that sat out a pause does not then
// wait out a Retry-After past its allowance.
func TestRateLimitWaitBoundsTheWholeCall(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://x.atlassian.net", []reply{
		{status: 429, header: map[string]string{"Retry-After": "1", "RateLimit-Reason": "jira-burst-based"}},
		{status: 429, header: map[string]string{"Retry-After": "1", "RateLimit-Reason": "jira-burst-based"}},
		{status: 204},
	}, servicedesk.WithRateLimitWait(1500*time.Millisecond))
	err := addOne(c, context.Background())
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	assert.Len(t, w.all(), 2, "the first second was waited out; a second one would pass the 1.5 s allowance")
	assert.Regexp(t, `not retried: WithRateLimitWait allows 1.5s a call, (4\d\d|500)ms of it left$`, err.Error())
}

// TestEntityEscapedCredentialIsRedacted: a credential an HTML page writes
// with entities escapes the redaction of the raw body; it is redacted
// again once the entities are decoded, before the message is cut short.
func TestEntityEscapedCredentialIsRedacted(t *testing.T) {
	t.Parallel()
	escaped := "&#" + fmt.Sprint(int(testToken[0])) + ";" + testToken[1:]
	page := "<html><body><p>" + strings.Repeat("x", 190) + " " + escaped + " and more</p></body></html>"
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 502, body: page, header: map[string]string{"Content-Type": "text/html"}}},
		basicAuth(), servicedesk.WithMaxRetries(0))
	err := addOne(c, context.Background())
	require.ErrorIs(t, err, servicedesk.ErrServer)
	assert.NotContains(t, err.Error(), testToken[:8], "not even its start, at the cut")
}

// TestSlotsAreGrantedInOrder: calls waiting for a slot on the wire get one
// in the order they came, so none waits for many rounds while others
// overtake it (the 99th percentile of a bulk job's calls was the whole
// job).
func TestSlotsAreGrantedInOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var order []string
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		order = append(order, r.URL.Query().Get("query"))
		first := len(order) == 1
		mu.Unlock()
		if first {
			<-release
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"values":[],"isLastPage":true}`)
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithMaxInFlight(1))
	require.NoError(t, err)
	var wg sync.WaitGroup
	list := func(name string) {
		defer wg.Done()
		_, err := c.Customers.List(context.Background(), "1", &servicedesk.ListCustomersOptions{Query: name})
		assert.NoError(t, err)
	}
	wg.Add(1)
	go list("first")
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 1 }, 5*time.Second, time.Millisecond)
	var want []string
	for i := 0; i < 12; i++ {
		name := fmt.Sprintf("w%02d", i)
		want = append(want, name)
		wg.Add(1)
		go list(name)
		time.Sleep(5 * time.Millisecond) // in line, one after the other
	}
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, append([]string{"first"}, want...), order)
}
