package servicedesk_test

// Pacing, allowances and what callers and hooks are told, under the faults
// an adversarial review of the governor found (each test failed on the
// code it reviewed).

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/servicedesk-go/servicedesk"
)

// TestZeroAllowanceServesAvailableTurnsOnDataCenter: with
// WithRateLimitWait(0) ("never wait on rate limits", as a handler wants), a
// Data Center client whose bucket has tokens left still sends: a turn due
// now is never refused, however the deadline compares with the moment it
// is read (it once refused every call once the global bucket was paced).
func TestZeroAllowanceServesAvailableTurnsOnDataCenter(t *testing.T) {
	t.Parallel()
	srv, n := scripted(t, 200, map[string]string{
		"X-RateLimit-FillRate":         "100",
		"X-RateLimit-Interval-Seconds": "1",
		"X-RateLimit-Limit":            "100",
		"X-RateLimit-Remaining":        "99",
	})
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithRateLimitWait(0))
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err = c.Customers.List(context.Background(), "1", nil)
		require.NoError(t, err, "call %d: 99 tokens left, nothing to wait for", i+1)
	}
	require.Equal(t, int32(3), n.Load())
}

// TestBackoffAfterA429StaysWithinTheAllowance: all the waiting a call
// does on rate limits adds up to at most WithRateLimitWait, the backoff
// after a 429 that names no wait included: a handler that allows no wait
// does not sit out the default backoff (500 ms to 30 s) on a bare 429, nor
// one that allows 100 ms a second's backoff.
func TestBackoffAfterA429StaysWithinTheAllowance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		allowance, retryMin, retryMax time.Duration
	}{
		{0, servicedesk.DefaultRetryWaitMin, servicedesk.DefaultRetryWaitMax},
		{100 * time.Millisecond, time.Second, time.Second},
	} {
		h := &hookLog{}
		c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 429}, {status: 204}},
			servicedesk.WithRetryWait(tc.retryMin, tc.retryMax), servicedesk.WithRateLimitWait(tc.allowance), servicedesk.WithHooks(h.hooks()))
		_ = addOne(c, context.Background())
		h.mu.Lock()
		require.Len(t, h.ends, 1)
		t.Logf("WithRateLimitWait(%v): %d attempts, waited %v", tc.allowance, h.ends[0].Attempts, h.ends[0].Waited)
		assert.LessOrEqual(t, h.ends[0].Waited, tc.allowance+10*time.Millisecond, "waited on a 429 past WithRateLimitWait(%v)", tc.allowance)
		h.mu.Unlock()
	}
}

// TestPauseReasonWithoutPolicy: a burst 429 that names its reason but no
// structured policy (Data Center, a proxy, Jira before the RateLimit
// headers) pauses the endpoint, and the next call's refusal reads cleanly
// (it once read "(jira-burst-based, )").
func TestPauseReasonWithoutPolicy(t *testing.T) {
	t.Parallel()
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{
		{status: 429, header: map[string]string{"Retry-After": "5", "RateLimit-Reason": "jira-burst-based"}},
	}, servicedesk.WithRateLimitWait(time.Second))
	require.ErrorIs(t, addOne(c, context.Background()), servicedesk.ErrRateLimited)
	err := addOne(c, context.Background())
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	t.Log(err)
	assert.NotContains(t, err.Error(), ", )")
	assert.Contains(t, err.Error(), "not sent: paused after a 429; ")
	// 5 s from the 429, less what went by since (a loaded machine: ms).
	assert.Regexp(t, `retry after (5s|4\.9\d*s) \(jira-burst-based\)$`, err.Error())
}

// rotatingTokens hands out a new opaque access token on every call, as a
// token source does when it refreshes between two requests.
type rotatingTokens struct{ n atomic.Int32 }

func (r *rotatingTokens) Token() (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: fmt.Sprintf("opaque-access-token-number-%d", r.n.Add(1))}, nil
}

// TestEchoedTokenIsRedactedAfterARefresh: when another call sends a
// refreshed token while a first call's answer is on its way, an answer
// echoing the first token (the one its request carried) is still redacted:
// the client remembers its last few tokens, not only the last.
func TestEchoedTokenIsRedactedAfterARefresh(t *testing.T) {
	t.Parallel()
	firstArrived, secondSent := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if strings.HasSuffix(tok, "-1") {
			close(firstArrived)
			<-secondSent // the other call has sent the refreshed token
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"errorMessage":"token %s is not valid for this desk"}`, tok)
			return
		}
		close(secondSent)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithTokenSource(&rotatingTokens{}), servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	first := make(chan error, 1)
	go func() { first <- addOne(c, context.Background()) }()
	<-firstArrived
	require.NoError(t, addOne(c, context.Background()))
	err = <-first
	require.ErrorIs(t, err, servicedesk.ErrBadRequest)
	t.Log(err)
	assert.NotContains(t, err.Error(), "opaque-access-token-number-1", "the credential the request carried")
}

// TestHooksSeeNoQuery: hooks never see queries: CallResult.Err, an *Error,
// comes without its URL's query (here, the email List searched for) and
// without the answer's body.
func TestHooksSeeNoQuery(t *testing.T) {
	t.Parallel()
	h := &hookLog{}
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 404, body: `{"errorMessage":"no such desk"}`}},
		servicedesk.WithHooks(h.hooks()))
	_, err := c.Customers.List(context.Background(), "1", &servicedesk.ListCustomersOptions{Query: "fred.flintstone@example.com"})
	require.ErrorIs(t, err, servicedesk.ErrNotFound)
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.ends, 1)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, h.ends[0].Err, &apiErr)
	t.Log(apiErr.URL)
	assert.NotContains(t, apiErr.URL, "fred.flintstone", "the CallEnd hook sees the query")
}

// TestSlotWaitersDoNotBurstPastThePace: while the server is slow (here,
// 1.5 s for the first 8 requests: every slot busy), calls waiting for a
// slot on the wire do not hold turns with the limiter (admit takes the
// slot first): when the answers come, the waiting calls go at the pace,
// not all at once. Held turns once let 104 go in one second, paced for 50.
func TestSlotWaitersDoNotBurstPastThePace(t *testing.T) {
	t.Parallel()
	const limit = 50
	var mu sync.Mutex
	var arrivals []time.Time
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		if n.Add(1) <= 8 {
			time.Sleep(1500 * time.Millisecond) // a slow spell: every slot is busy
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	ep := servicedesk.Endpoint{Method: http.MethodPost, Path: "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer"}
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithMaxInFlight(8),
		servicedesk.WithRateLimiter(servicedesk.NewRateLimiter(servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{ep: limit}})))
	require.NoError(t, err)
	var wg sync.WaitGroup
	stop := time.Now().Add(2500 * time.Millisecond)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				_ = addOne(c, context.Background())
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	most := 0
	for i := range arrivals {
		k := 0
		for j := i; j < len(arrivals) && arrivals[j].Sub(arrivals[i]) < time.Second; j++ {
			k++
		}
		most = max(most, k)
	}
	t.Logf("%d requests; at most %d in one second", len(arrivals), most)
	assert.LessOrEqual(t, most, limit, "requests in one second, paced for a limit of %d", limit)
}

// TestSlotRefusalCarriesRetryAfter: a call refused because every slot on
// the wire stayed busy is a 429 *Error that carries RetryAfter (the
// README's handler answers 503 with it), a second at the least, also
// before any answer has come back to measure the latency by.
func TestSlotRefusalCarriesRetryAfter(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // the first call holds the only slot
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithMaxInFlight(1), servicedesk.WithRateLimitWait(50*time.Millisecond))
	require.NoError(t, err)
	go func() { _ = addOne(c, context.Background()) }()
	time.Sleep(50 * time.Millisecond) // the first call is on the wire
	err = addOne(c, context.Background())
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	t.Log(err)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Positive(t, apiErr.RetryAfter, "a refusal says when to come back")
}
