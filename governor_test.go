package servicedesk_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// fakeClient is a client for srv as its admin, with quick retries.
func fakeClient(t *testing.T, srv *servicedesktest.Server, opts ...servicedesk.Option) *servicedesk.Client {
	t.Helper()
	opts = append([]servicedesk.Option{
		servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken),
		servicedesk.WithRetryWait(time.Millisecond, 10*time.Millisecond),
		servicedesk.WithRateLimitWait(10 * time.Second),
	}, opts...)
	c, err := servicedesk.NewClient(srv.URL, opts...)
	require.NoError(t, err)
	return c
}

// adder returns a call that adds a customer of srv to desk 1: an Add the
// fake answers 204.
func adder(srv *servicedesktest.Server, c *servicedesk.Client) func() error {
	id := srv.AddCustomer("", "p@example.com", "P").AccountID
	return func() error {
		return c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{id}})
	}
}

// statuses counts the answers the server gave, by status.
func statuses(srv *servicedesktest.Server) map[int]int {
	n := map[int]int{}
	for _, r := range srv.Requests() {
		n[r.Status]++
	}
	return n
}

// notSent asserts err is the governor's refusal: a 429 *Error that was
// never sent, with the wait and the reason (RateLimit-Reason of the 429
// behind it, if any).
func notSent(t *testing.T, err error, reason string) *servicedesk.Error {
	t.Helper()
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 0, apiErr.Attempts, "not sent")
	assert.Equal(t, reason, apiErr.RateLimit.Reason)
	assert.Positive(t, apiErr.RetryAfter)
	assert.Contains(t, err.Error(), "not sent")
	assert.Contains(t, err.Error(), "retry after")
	return apiErr
}

// TestGovernorSharesOneViewAcrossGoroutines: 16 goroutines adding customers
// against a burst limit announced only in 429s. The first 429 pauses the
// endpoint for all of them and teaches the rate; after that they are paced.
// Without the governor a third of the requests or more are answered 429.
func TestGovernorSharesOneViewAcrossGoroutines(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{
		Method: "POST", Path: "/rest/servicedeskapi/servicedesk/*/customer", Requests: 40,
	}))
	t.Cleanup(srv.Close)
	c := fakeClient(t, srv)
	add := adder(srv, c)
	const goroutines, each = 16, 6
	var wg sync.WaitGroup
	var failed atomic.Int32
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := add(); err != nil {
					failed.Add(1)
					t.Log(err)
				}
			}
		}()
	}
	wg.Wait()
	got := statuses(srv)
	assert.Zero(t, failed.Load(), "failed calls")
	assert.Equal(t, goroutines*each, got[204])
	// Only what was already on the wire when the first 429 came back can
	// be answered 429: at most the requests in flight, twice over for the
	// window boundary.
	assert.LessOrEqual(t, got[429], 2*servicedesk.DefaultMaxInFlight, "429s among %d requests", len(srv.Requests()))
}

// TestBurstPauseHoldsOnlyItsEndpoint: a burst 429 asking for an hour pauses
// Add; the next Add fails at once without being sent, while List goes on.
func TestBurstPauseHoldsOnlyItsEndpoint(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{
		Method: "POST", Path: "/rest/servicedeskapi/servicedesk/*/customer", Requests: 1, Window: time.Hour,
	}))
	t.Cleanup(srv.Close)
	c := fakeClient(t, srv)
	add := adder(srv, c)
	require.NoError(t, add())

	start := time.Now()
	err := add()
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 1, apiErr.Attempts, "the server's 429, not retried: its wait is past WithRateLimitWait")
	assert.Equal(t, "jira-burst-based", apiErr.RateLimit.Reason)
	assert.Greater(t, apiErr.RetryAfter, 50*time.Minute)
	assert.Contains(t, err.Error(), "(jira-burst-based)")

	err = add()
	refused := notSent(t, err, "jira-burst-based")
	assert.Greater(t, refused.RetryAfter, 50*time.Minute)
	assert.Less(t, time.Since(start), 5*time.Second, "failed at once, did not sleep the hour")

	_, err = c.Customers.List(context.Background(), "1", nil)
	require.NoError(t, err, "another endpoint is not paused")
	assert.Equal(t, map[int]int{204: 1, 429: 1, 200: 1}, statuses(srv), "the refused Add was never sent")
}

// TestQuotaPausesEverything: when the app's quota is spent every endpoint
// waits for the reset; calls fail at once, unsent, with the wait.
func TestQuotaPausesEverything(t *testing.T) {
	t.Parallel()
	for _, gateway := range []bool{false, true} {
		t.Run(fmt.Sprintf("gateway=%v", gateway), func(t *testing.T) {
			t.Parallel()
			srv := servicedesktest.NewServer(servicedesktest.WithQuota(servicedesktest.Quota{Points: 3, Window: time.Hour, Gateway: gateway}))
			t.Cleanup(srv.Close)
			c := fakeClient(t, srv)
			add := adder(srv, c)
			for i := 0; i < 3; i++ {
				require.NoError(t, add())
			}
			start := time.Now()
			err := add()
			var apiErr *servicedesk.Error
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, 1, apiErr.Attempts)
			assert.Greater(t, apiErr.RetryAfter, 50*time.Minute)
			reason := "jira-quota-global-based"
			if gateway {
				reason = "" // the gateway names none
				assert.Equal(t, "", apiErr.RateLimit.Reason)
				assert.Equal(t, time.Duration(-1), apiErr.RateLimit.RetryAfter, "no Retry-After")
			} else {
				assert.Equal(t, reason, apiErr.RateLimit.Reason)
			}
			_, err = c.Customers.List(context.Background(), "1", nil)
			refused := notSent(t, err, reason)
			if !gateway {
				assert.Equal(t, "global-app-quota", refused.RateLimit.Policy)
			}
			_, err = c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "q@example.com", DisplayName: "Q"})
			notSent(t, err, reason)
			assert.Less(t, time.Since(start), 5*time.Second, "returned at once")
			assert.Equal(t, map[int]int{204: 3, 429: 1}, statuses(srv), "nothing sent during the pause")
		})
	}
}

// TestRateLimiterSharedBetweenClients: two clients of one site given the
// same limiter: a quota 429 seen by one pauses the other.
func TestRateLimiterSharedBetweenClients(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithQuota(servicedesktest.Quota{Points: 1, Window: time.Hour}))
	t.Cleanup(srv.Close)
	shared := servicedesk.NewRateLimiter(servicedesk.RateLimiterConfig{})
	a := fakeClient(t, srv, servicedesk.WithRateLimiter(shared))
	b := fakeClient(t, srv, servicedesk.WithRateLimiter(shared))
	addA := adder(srv, a)
	require.NoError(t, addA())
	require.ErrorIs(t, addA(), servicedesk.ErrRateLimited)
	_, err := b.Customers.List(context.Background(), "1", nil)
	notSent(t, err, "jira-quota-global-based")
	assert.Len(t, srv.Requests(), 2)
}

// scripted is an httptest server answering each request with the next
// header set (the last repeats), and counting requests.
func scripted(t *testing.T, status int, headers ...map[string]string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		for k, v := range headers[min(i, len(headers)-1)] {
			w.Header().Set(k, v)
		}
		if status == 200 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"size":0,"start":0,"limit":50,"isLastPage":true,"values":[]}`))
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestNothingLeftMeansWaitBeforeA429: an answer saying r=0 for the next
// hour holds the endpoint without a 429 having to come first; Beta headers
// inform and hold nothing.
func TestNothingLeftMeansWaitBeforeA429(t *testing.T) {
	t.Parallel()
	enforced := map[string]string{
		"RateLimit-Policy": `"jira-burst-based";q=100;w=1, "global-app-quota";q=65000;w=3600`,
		"RateLimit":        `"global-app-quota";r=64000;t=3000, "jira-burst-based";r=0;t=3600`,
	}
	srv, n := scripted(t, 200, enforced)
	c, err := servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	refused := notSent(t, err, "")
	assert.Equal(t, "jira-burst-based", refused.RateLimit.Policy, "a policy, not a RateLimit-Reason: no 429 came")
	assert.Contains(t, err.Error(), "the server said none are left")
	assert.NotContains(t, err.Error(), "429 (", "no 429 came")
	assert.Equal(t, int32(1), n.Load())

	beta := map[string]string{
		"Beta-RateLimit-Policy": `"jira-burst-based";q=100;w=1`,
		"Beta-RateLimit":        `"jira-burst-based";r=0;t=3600`,
	}
	srv, n = scripted(t, 200, beta)
	c, err = servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err = c.Customers.List(context.Background(), "1", nil)
		require.NoError(t, err, "Beta- headers are informational")
	}
	assert.Equal(t, int32(3), n.Load())

	quota := map[string]string{"RateLimit": `"tenant-app-quota";r=0;t=1800`, "RateLimit-Policy": `"tenant-app-quota";q=65000;w=3600`}
	srv, n = scripted(t, 200, quota)
	c, err = servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	require.NoError(t, err)
	refused = notSent(t, addOne(c, context.Background()), "")
	assert.Equal(t, "tenant-app-quota", refused.RateLimit.Policy)
	assert.Equal(t, int32(1), n.Load(), "a spent quota holds every endpoint")
}

// TestDataCenterBucketPacesTheClient: Data Center's token bucket headers
// pace every endpoint together.
func TestDataCenterBucketPacesTheClient(t *testing.T) {
	t.Parallel()
	srv, n := scripted(t, 200, map[string]string{
		"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0",
		"X-RateLimit-FillRate": "1", "X-RateLimit-Interval-Seconds": "3600", "Retry-After": "0",
	})
	c, err := servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	require.NoError(t, err)
	err = addOne(c, context.Background())
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 0, apiErr.Attempts)
	// One token an hour, as the server said, is taken as one a minute: no
	// answer paces the client slower than that.
	assert.InDelta(t, time.Minute.Seconds(), apiErr.RetryAfter.Seconds(), 1)
	assert.Equal(t, int32(1), n.Load())
}

// TestCloudDefaultsPaceListing: on a Cloud site, listing a desk's customers
// starts at Atlassian's documented 5 a second: with no waiting allowed, the
// second List in a row is refused unsent; without a limiter it goes.
func TestCloudDefaultsPaceListing(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 200, body: `{"values":[],"isLastPage":true}`}},
		servicedesk.WithRateLimitWait(0))
	_, err := c.Customers.List(context.Background(), "1", nil)
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	refused := notSent(t, err, "")
	assert.LessOrEqual(t, refused.RetryAfter, 300*time.Millisecond)
	assert.Contains(t, err.Error(), "not sent: paced at 4 a second; WithRateLimitWait's allowance has 0s left (300ms more would have served it); retry after", "no context deadline: the option is the bound")
	require.NoError(t, addOne(c, context.Background()), "Add has its own, higher rate")
	assert.Len(t, w.all(), 2)

	c, w = mockClient(t, "https://x.atlassian.net", []reply{{status: 200, body: `{"values":[],"isLastPage":true}`}},
		servicedesk.WithRateLimitWait(0), servicedesk.WithRateLimiter(nil))
	for i := 0; i < 10; i++ {
		_, err := c.Customers.List(context.Background(), "1", nil)
		require.NoError(t, err)
	}
	assert.Len(t, w.all(), 10)
}

// TestLongRetryAfterFailsFastForAHandler: a handler calling List while Jira
// asks for a minute gets the 429 back at once, and the next call fails
// unsent, so it can answer 503 with Retry-After instead of hanging.
func TestLongRetryAfterFailsFastForAHandler(t *testing.T) {
	t.Parallel()
	srv, n := scripted(t, 429, map[string]string{"Retry-After": "60", "RateLimit-Reason": "jira-burst-based"})
	c, err := servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	start := time.Now()
	_, err = c.Customers.List(context.Background(), "1", nil)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 60*time.Second, apiErr.RetryAfter)
	_, err = c.Customers.List(context.Background(), "1", nil)
	notSent(t, err, "jira-burst-based")
	assert.Contains(t, err.Error(), "not sent: paused after a 429; WithRateLimitWait's allowance has 30s left; retry after 1m0s (jira-burst-based)")
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, int32(1), n.Load())
}

// TestWaitStopsAtTheDeadline: a wait the limiter would make longer than
// the context allows fails at once and says so.
func TestWaitStopsAtTheDeadline(t *testing.T) {
	t.Parallel()
	srv, _ := scripted(t, 429, map[string]string{"Retry-After": "20", "RateLimit-Reason": "jira-burst-based"})
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithRateLimitWait(time.Minute), servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = c.Customers.List(ctx, "1", nil)
	notSent(t, err, "jira-burst-based")
	assert.Contains(t, err.Error(), "deadline")
	assert.NoError(t, ctx.Err(), "returned before the deadline")

	// Cancelling the context stops a wait that is allowed.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = c.Customers.List(ctx, "1", nil)
	require.ErrorIs(t, err, context.Canceled)
}

// TestMaxInFlight: however many goroutines call, no more than the bound is
// on the wire at once.
func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	var cur, peak atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := cur.Add(1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		<-release
		cur.Add(-1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithMaxInFlight(2))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, addOne(c, context.Background()))
		}()
	}
	require.Eventually(t, func() bool { return cur.Load() == 2 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // a third would have arrived by now
	assert.Equal(t, int32(2), cur.Load())
	close(release)
	wg.Wait()
	assert.Equal(t, int32(2), peak.Load())

	_, err = servicedesk.NewClient(srv.URL, servicedesk.WithMaxInFlight(0))
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
}

// recordingLimiter is a RateLimiter of the user's, recording what the
// client tells it.
type recordingLimiter struct {
	mu       sync.Mutex
	waits    []servicedesk.Endpoint
	outcomes []servicedesk.Outcome
	refuse   bool
}

func (l *recordingLimiter) Wait(_ context.Context, ep servicedesk.Endpoint, maxWait time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waits = append(l.waits, ep)
	if l.refuse {
		return &servicedesk.Error{StatusCode: 429, RetryAfter: time.Minute, Message: "not sent: shared quota spent",
			RateLimit: servicedesk.RateLimit{Reason: "shared-quota"}}
	}
	return nil
}

func (l *recordingLimiter) Done(ep servicedesk.Endpoint, o servicedesk.Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes = append(l.outcomes, o)
}

// TestPluggedRateLimiter: a limiter of the user's sees every attempt's
// endpoint and outcome, and its refusal reaches the caller unsent.
func TestPluggedRateLimiter(t *testing.T) {
	t.Parallel()
	srv, _ := scripted(t, 200, map[string]string{"X-RateLimit-Remaining": "41", "Retry-After": "0"})
	l := &recordingLimiter{}
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithRateLimiter(l))
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "HELP", nil)
	require.NoError(t, err)
	require.Len(t, l.waits, 1)
	assert.Equal(t, servicedesk.Endpoint{Method: "GET", Path: "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer"}, l.waits[0])
	require.Len(t, l.outcomes, 1)
	assert.Equal(t, 200, l.outcomes[0].StatusCode)
	assert.Equal(t, 41, l.outcomes[0].RateLimit.Remaining)

	l.refuse = true
	_, err = c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "a@b.co", DisplayName: "A"})
	refused := notSent(t, err, "shared-quota")
	assert.Equal(t, "POST", refused.Method)
	assert.Contains(t, refused.URL, "/rest/servicedeskapi/customer")
	assert.Equal(t, servicedesk.Endpoint{Method: "POST", Path: "/rest/servicedeskapi/customer"}, l.waits[1])
	assert.Len(t, l.outcomes, 1, "no Done for a refused request")
	assert.True(t, errors.Is(err, servicedesk.ErrRateLimited))
}

// TestRateLimitHookSeesPolicies: the structured headers reach the hook and
// the error, parsed.
func TestRateLimitHookSeesPolicies(t *testing.T) {
	t.Parallel()
	var seen []servicedesk.RateLimit
	var mu sync.Mutex
	c, _ := mockClient(t, "https://jira.example.com", []reply{{status: 200, body: `{"values":[],"isLastPage":true}`, header: map[string]string{
		"RateLimit-Policy":      `"jira-burst-based";q=100;w=1, "global-app-quota";q=65000;w=3600`,
		"RateLimit":             `"jira-burst-based";r=97;t=1, "global-app-quota";t=1200`,
		"Beta-RateLimit-Policy": `"tenant-app-quota";q=5000;w=3600`,
		"Beta-RateLimit":        `"tenant-app-quota";r=4000;t=1200`,
	}}}, servicedesk.WithRateLimitHook(func(rl servicedesk.RateLimit) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, rl)
	}))
	before := time.Now()
	_, err := c.Customers.List(context.Background(), "1", nil)
	require.NoError(t, err)
	require.Len(t, seen, 1)
	ps := seen[0].Policies
	require.Len(t, ps, 3)
	assert.Equal(t, "jira-burst-based", ps[0].Name)
	assert.Equal(t, 100, ps[0].Quota)
	assert.Equal(t, time.Second, ps[0].Window)
	assert.Equal(t, 97, ps[0].Remaining)
	assert.False(t, ps[0].Beta)
	assert.Equal(t, "global-app-quota", ps[1].Name)
	assert.Equal(t, -1, ps[1].Remaining, "r left out: well within the limit")
	assert.WithinRange(t, ps[1].Reset, before.Add(20*time.Minute-time.Second), time.Now().Add(20*time.Minute+time.Second))
	assert.Equal(t, servicedesk.RateLimitPolicy{Name: "tenant-app-quota", Quota: 5000, Window: time.Hour, Remaining: 4000, Reset: ps[2].Reset, Beta: true}, ps[2])
}

// TestSlotWaitersSeeAPauseSetMeanwhile: requests the limiter let through
// that then queue for a slot on the wire (here there is one) are checked
// again once they have it: the 429 that came back meanwhile paused their
// endpoint, so they fail unsent instead of each earning a 429 of its own.
func TestSlotWaitersSeeAPauseSetMeanwhile(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{
		Method: "POST", Path: "/rest/servicedeskapi/servicedesk/*/customer", Requests: 2, Window: time.Hour,
	}))
	t.Cleanup(srv.Close)
	c := fakeClient(t, srv, servicedesk.WithMaxInFlight(1))
	add := adder(srv, c)
	var wg sync.WaitGroup
	var unsent atomic.Int32
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var apiErr *servicedesk.Error
			if err := add(); errors.As(err, &apiErr) && apiErr.Attempts == 0 {
				unsent.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, map[int]int{204: 2, 429: 1}, statuses(srv), "one 429; the waiters saw its pause")
	assert.Equal(t, int32(13), unsent.Load())
}

// TestCloudLimitsOfTheFakeAreKept: against the fake's Cloud limits
// (listing 5 a second, announced on every answer with the other limits
// that hold the endpoint), a client listing in a loop is paced by the
// first answer and never answered 429.
func TestCloudLimitsOfTheFakeAreKept(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithCloudLimits())
	t.Cleanup(srv.Close)
	c := fakeClient(t, srv)
	for i := 0; i < 7; i++ {
		_, err := c.Customers.List(context.Background(), "1", nil)
		require.NoError(t, err)
	}
	assert.Equal(t, map[int]int{200: 7}, statuses(srv))
}
