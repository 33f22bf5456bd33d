package redislimiter

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicedesk-go/servicedesk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	addEp  = servicedesk.Endpoint{Method: "POST", Path: "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer"}
	listEp = servicedesk.Endpoint{Method: "GET", Path: "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer"}
)

// newLimiter is a limiter on r with its own client, as a process would
// have; n counts the commands it sends.
func newLimiter(t testing.TB, r *testRedis, pfx string, cfg servicedesk.RateLimiterConfig, opts ...Option) (*limiter, *atomic.Int64) {
	rdb, n := r.client(t)
	l := New(rdb, cfg, append([]Option{WithKeyPrefix(pfx)}, opts...)...).(*limiter)
	l.timing.op = r.opTimeout()
	return l, n
}

// opTimeout is how long the tests that are not about a slow Redis let an
// operation take: under the race detector, a test process running a fleet
// of 16 on two cores is itself late by 50 ms now and then (miniredis, a
// Lua interpreter in Go, often). The tests of a Redis that hangs or dies
// keep the limiter's own 50 ms.
func (r *testRedis) opTimeout() time.Duration {
	if r.mini != nil {
		return time.Second
	}
	return 200 * time.Millisecond
}

// rateLimited asserts that err is the limiter's refusal, and returns it.
func rateLimited(t *testing.T, err error) *servicedesk.Error {
	t.Helper()
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	require.Equal(t, 429, apiErr.StatusCode)
	require.Positive(t, apiErr.RetryAfter)
	return apiErr
}

// admitNow counts the Waits that get through at once, alternating between
// limiters, until one is refused; it returns the refusal.
func admitNow(t *testing.T, ep servicedesk.Endpoint, lims ...*limiter) (int, error) {
	n, _, err := admitNowTimed(t, ep, lims...)
	return n, err
}

// admitNowTimed is admitNow, saying how long it took: a bucket refills
// meanwhile.
func admitNowTimed(t *testing.T, ep servicedesk.Endpoint, lims ...*limiter) (int, time.Duration, error) {
	t.Helper()
	start := time.Now()
	for n := 0; n < 1000; n++ {
		if err := lims[n%len(lims)].Wait(context.Background(), ep, 0); err != nil {
			return n, time.Since(start), err
		}
	}
	t.Fatal("no Wait was refused")
	return 0, 0, nil
}

// assertBucket asserts that n requests got through at once from a bucket of
// burst refilled at rate for took.
func assertBucket(t *testing.T, n, burst int, rate float64, took time.Duration, msg string) {
	t.Helper()
	refilled := int(took.Seconds()*rate) + 1
	if n < burst || n > burst+refilled {
		t.Errorf("%s: %d got through at once in %v, want %d (and %d refilled at most)", msg, n, took, burst, refilled)
	}
}

func TestPacingIsSharedBetweenProcesses(t *testing.T) {
	t.Parallel()
	pfx := prefix(t)
	cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 100}}
	a, _ := newLimiter(t, shared, pfx, cfg)
	b, _ := newLimiter(t, shared, pfx, cfg)

	// A limit of 100 a second is a bucket of 4 (paced at 95 a second):
	// the two processes share it.
	n, took, err := admitNowTimed(t, addEp, a, b)
	assertBucket(t, n, 4, 95, took, "two processes")
	apiErr := rateLimited(t, err)
	assert.LessOrEqual(t, apiErr.RetryAfter, time.Second/95+time.Millisecond)
	assert.Regexp(t, `^not sent: paced at 95 a second; WithRateLimitWait's allowance has 0s left \(100ms more would have served it\)$`, apiErr.Message, "worded as the in-process governor's")

	// A third process of another site has a bucket of its own.
	other, _ := newLimiter(t, shared, prefix(t), cfg)
	n, took, _ = admitNowTimed(t, addEp, other)
	assertBucket(t, n, 4, 95, took, "another prefix")
}

func TestWaitSleepsItsTurnWithinMaxWait(t *testing.T) {
	t.Parallel()
	cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 20}} // a bucket of 1, 18 a second
	a, _ := newLimiter(t, shared, prefix(t), cfg)
	ctx := context.Background()
	n, took, _ := admitNowTimed(t, addEp, a)
	assertBucket(t, n, 1, 18, took, "a bucket of 1")

	start := time.Now()
	require.NoError(t, a.Wait(ctx, addEp, time.Second))
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "waited its turn (1/18 s after the last)")

	// Too short a wait: refused at once, with how long it would have been.
	start = time.Now()
	apiErr := rateLimited(t, a.Wait(ctx, addEp, 5*time.Millisecond))
	assert.Less(t, time.Since(start), 40*time.Millisecond, "refused without waiting")
	assert.Regexp(t, `^servicedesk: 429 Too Many Requests: not sent: paced at 18 a second; WithRateLimitWait's allowance has 5ms left \(100ms more would have served it\); retry after [\d.]+ms$`, apiErr.Error())

	// The context's deadline, when it comes first, bounds it the same way.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	apiErr = rateLimited(t, a.Wait(dctx, addEp, time.Minute))
	assert.Contains(t, apiErr.Message, "the context's deadline comes first")
}

func TestABurst429PausesTheEndpointInEveryProcess(t *testing.T) {
	t.Parallel()
	pfx := prefix(t)
	a, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	b, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	ctx := context.Background()

	require.NoError(t, a.Wait(ctx, addEp, 0))
	a.Done(addEp, outcome429("jira-burst-based", 2*time.Second))

	start := time.Now()
	apiErr := rateLimited(t, b.Wait(ctx, addEp, 100*time.Millisecond))
	assert.Less(t, time.Since(start), 90*time.Millisecond, "refused without waiting")
	assert.InDelta(t, 2*time.Second, apiErr.RetryAfter, float64(200*time.Millisecond))
	assert.Equal(t, "jira-burst-based", apiErr.RateLimit.Reason)
	assert.Regexp(t, `^servicedesk: 429 Too Many Requests: not sent: paused after a 429; WithRateLimitWait's allowance has 100ms left; retry after [\d.]+m?s \(jira-burst-based\)$`, apiErr.Error())

	// Other endpoints go on.
	require.NoError(t, b.Wait(ctx, listEp, 0))
	b.Done(listEp, servicedesk.Outcome{StatusCode: 200, RateLimit: noHeaders()})
}

func TestAQuota429PausesEverythingInEveryProcess(t *testing.T) {
	t.Parallel()
	pfx := prefix(t)
	a, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	b, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	ctx := context.Background()

	require.NoError(t, a.Wait(ctx, addEp, 0))
	a.Done(addEp, outcome429("jira-quota-global-based", time.Hour))

	apiErr := rateLimited(t, b.Wait(ctx, listEp, time.Second))
	assert.InDelta(t, time.Hour, apiErr.RetryAfter, float64(time.Second))
	assert.Equal(t, "jira-quota-global-based", apiErr.RateLimit.Reason)
}

func TestAnnouncedNoneLeftOfAQuotaPausesEverything(t *testing.T) {
	t.Parallel()
	pfx := prefix(t)
	a, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	b, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	ctx := context.Background()

	require.NoError(t, a.Wait(ctx, addEp, 0))
	rl := noHeaders()
	rl.Policies = []servicedesk.RateLimitPolicy{{Name: "global-app-quota", Quota: 65000, Window: time.Hour, Remaining: 0, Reset: time.Now().Add(10 * time.Minute)}}
	a.Done(addEp, servicedesk.Outcome{StatusCode: 200, RateLimit: rl})

	apiErr := rateLimited(t, b.Wait(ctx, listEp, time.Second))
	assert.InDelta(t, 10*time.Minute, apiErr.RetryAfter, float64(time.Second))
	assert.Empty(t, apiErr.RateLimit.Reason, "no 429 came")
	assert.Equal(t, "global-app-quota", apiErr.RateLimit.Policy)
	assert.Contains(t, apiErr.Message, "paused until the quota resets: the server said none is left (global-app-quota)")
}

func TestALearnedLimitPacesEveryProcess(t *testing.T) {
	t.Parallel()
	pfx := prefix(t)
	a, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	b, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	ctx := context.Background()

	// Unpaced until an answer announces a limit: 10 a second.
	for range 20 {
		require.NoError(t, b.Wait(ctx, addEp, 0), "nothing paced yet")
	}
	require.NoError(t, a.Wait(ctx, addEp, 0))
	rl := noHeaders()
	rl.Policies = []servicedesk.RateLimitPolicy{{Name: "jira-burst-based", Quota: 10, Window: time.Second, Remaining: -1}}
	a.Done(addEp, servicedesk.Outcome{StatusCode: 200, RateLimit: rl})

	// Coming from no pace, one request at once, then 8 a second.
	n, err := admitNow(t, addEp, b)
	assert.Equal(t, 1, n)
	apiErr := rateLimited(t, err)
	assert.InDelta(t, time.Second/8, apiErr.RetryAfter, float64(10*time.Millisecond))
	assert.Contains(t, apiErr.Message, "paced at 8 a second (jira-burst-based)")
	assert.Equal(t, "jira-burst-based", apiErr.RateLimit.Policy)
}

func TestWhatTheServerSaysIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	secret := "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0"
	t.Run("a pause", func(t *testing.T) {
		t.Parallel()
		pfx := prefix(t)
		a, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
		rl := noHeaders()
		rl.Policies = []servicedesk.RateLimitPolicy{{Name: "tenant-app-quota", Quota: -1, Remaining: 0, Reset: time.Now().Add(31 * 365 * 24 * time.Hour)}}
		require.NoError(t, a.Wait(ctx, addEp, 0))
		a.Done(addEp, servicedesk.Outcome{StatusCode: 200, RateLimit: rl})
		b, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
		apiErr := rateLimited(t, b.Wait(ctx, listEp, time.Second))
		assert.InDelta(t, 24*time.Hour, apiErr.RetryAfter, float64(time.Second), "31 years")
		// Bounded where it is kept, too (a reply's wait is bounded again
		// when read, which hid a pause of 31 years kept in Redis).
		rdb, _ := shared.client(t)
		pu, err := rdb.HGet(ctx, a.globalKey, "pu").Float64()
		require.NoError(t, err)
		now := rdb.Time(ctx).Val()
		assert.LessOrEqual(t, time.Duration(pu-float64(now.UnixMicro()))*time.Microsecond, maxPause, "the pause kept in Redis")
		assert.LessOrEqual(t, rdb.PTTL(ctx, a.globalKey).Val(), keyTTL+maxPause, "its key's TTL")
	})
	t.Run("a reason", func(t *testing.T) {
		t.Parallel()
		pfx := prefix(t)
		a, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
		require.NoError(t, a.Wait(ctx, addEp, 0))
		a.Done(addEp, outcome429(secret, time.Hour)) // a server echoing what it was sent
		b, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
		apiErr := rateLimited(t, b.Wait(ctx, listEp, time.Second))
		assert.InDelta(t, time.Hour, apiErr.RetryAfter, float64(time.Second))
		assert.NotContains(t, apiErr.Error(), "eyJ", "what a server echoes is not kept nor shared")
	})
	t.Run("a pace", func(t *testing.T) {
		t.Parallel()
		for name, rl := range map[string]servicedesk.RateLimit{
			"policy":      {Limit: -1, Remaining: -1, FillRate: -1, RetryAfter: -1, Policies: []servicedesk.RateLimitPolicy{{Name: "jira-burst-based", Quota: 1, Window: 1e9 * time.Second, Remaining: -1}}},
			"data center": {Limit: 1, Remaining: -1, FillRate: 1, Interval: 1e9 * time.Second, RetryAfter: -1},
		} {
			a, _ := newLimiter(t, shared, prefix(t), servicedesk.RateLimiterConfig{})
			require.NoError(t, a.Wait(ctx, addEp, 0))
			a.Done(addEp, servicedesk.Outcome{StatusCode: 200, RateLimit: rl})
			_, err := admitNow(t, addEp, a)
			apiErr := rateLimited(t, err)
			assert.LessOrEqual(t, apiErr.RetryAfter, time.Minute+time.Second, name+": at least one request a minute")
		}
	})
}

// TestAPauseIsRememberedInProcess: a process refuses what it knows is
// paused without a round trip to Redis, whether it learned the pause from
// an answer of its own or from a reply saying another process's answer
// paused it, and keeps the pause when Redis goes.
func TestAPauseIsRememberedInProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := ownRedis(t)
	pfx := prefix(t)
	a, na := newLimiter(t, r, pfx, servicedesk.RateLimiterConfig{})
	b, nb := newLimiter(t, r, pfx, servicedesk.RateLimiterConfig{})
	require.NoError(t, a.Wait(ctx, addEp, 0))
	require.NoError(t, b.Wait(ctx, addEp, 0))
	a.Done(addEp, outcome429("jira-quota-global-based", time.Hour))

	sent := na.Load()
	rateLimited(t, a.Wait(ctx, listEp, time.Second))
	assert.Equal(t, int64(0), na.Load()-sent, "a pause from its own answer: refused without Redis")

	rateLimited(t, b.Wait(ctx, listEp, time.Second)) // Redis says so, once
	sent = nb.Load()
	rateLimited(t, b.Wait(ctx, addEp, time.Second))
	assert.Equal(t, int64(0), nb.Load()-sent, "a pause from a reply: refused without Redis")

	r.kill()
	for _, l := range []*limiter{a, b} {
		apiErr := rateLimited(t, l.Wait(ctx, listEp, time.Second))
		assert.Equal(t, "jira-quota-global-based", apiErr.RateLimit.Reason, "Redis gone, a known pause of an hour holds")
	}
}

func TestAnAnswerWithNothingNewCostsNoRoundTrip(t *testing.T) {
	t.Parallel()
	r := shared
	a, n := newLimiter(t, r, prefix(t), servicedesk.RateLimiterConfig{Cloud: true})
	ctx := context.Background()
	deleteEp := servicedesk.Endpoint{Method: "DELETE", Path: addEp.Path}
	require.NoError(t, a.Wait(ctx, deleteEp, 0)) // loads the scripts
	a.Done(deleteEp, servicedesk.Outcome{StatusCode: 429, RateLimit: noHeaders()})

	sent := n.Load()
	require.NoError(t, a.Wait(ctx, addEp, 0))
	assert.Equal(t, int64(1), n.Load()-sent, "a request that need not wait: one round trip")
	sent = n.Load()
	a.Done(addEp, servicedesk.Outcome{StatusCode: 200, RateLimit: noHeaders()})
	assert.Equal(t, int64(0), n.Load()-sent, "an answer with nothing new: none")

	// Its lease goes with the next script, or within flushAfter.
	flight := a.endpoint(addEp).flightKey
	rdb, _ := r.client(t)
	require.Eventually(t, func() bool { return rdb.ZCard(ctx, flight).Val() == 0 }, 2*time.Second, 10*time.Millisecond)

	// A limit: news once, then not.
	burst := func(left int) servicedesk.Outcome {
		rl := noHeaders()
		rl.Policies = []servicedesk.RateLimitPolicy{{Name: "jira-burst-based", Quota: 100, Window: time.Second, Remaining: left, Reset: time.Now().Add(time.Second)}}
		return servicedesk.Outcome{StatusCode: 204, RateLimit: rl}
	}
	for i, c := range []struct {
		o    servicedesk.Outcome
		want int64
		what string
	}{
		{burst(-1), 1, "a limit announced"},
		{burst(-1), 0, "the same limit again"},
		{burst(90), 0, "plenty left"},
		{burst(2), 1, "little left"},
		{outcome429("jira-burst-based", time.Second), 1, "a 429"},
	} {
		require.NoError(t, a.Wait(ctx, addEp, time.Second))
		sent = n.Load()
		a.Done(addEp, c.o)
		assert.Equal(t, c.want, n.Load()-sent, "%d: %s", i, c.what)
	}
}

func TestACrashedProcessHoldsNoLeaseForGood(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pfx := prefix(t)
	crashed, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	crashed.timing.lease = 300 * time.Millisecond
	require.NoError(t, crashed.Wait(ctx, addEp, 0))
	require.NoError(t, crashed.Wait(ctx, addEp, 0)) // and never Done

	a, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	require.NoError(t, a.Wait(ctx, addEp, 0))
	assert.Equal(t, 3, a.endpoint(addEp).state().inflight)
	a.Done(addEp, servicedesk.Outcome{StatusCode: 429, RateLimit: noHeaders()}) // news: a round trip
	assert.Equal(t, 2, a.endpoint(addEp).state().inflight, "its own lease is gone")

	time.Sleep(400 * time.Millisecond)
	a.Done(addEp, outcome429("jira-burst-based", time.Second))
	assert.Equal(t, 0, a.endpoint(addEp).state().inflight, "the crashed process's leases expired")
}

func TestEveryKeyExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pfx := prefix(t)
	a, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{Cloud: true})
	b, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{Cloud: true})
	// Every kind of key: endpoints paced and paused, the site paused, Data
	// Center's bucket, leases in flight, members.
	for _, ep := range []servicedesk.Endpoint{addEp, listEp} {
		require.NoError(t, a.Wait(ctx, ep, time.Second))
		require.NoError(t, b.Wait(ctx, ep, time.Second))
	}
	a.Done(addEp, outcome429("jira-burst-based", time.Second))
	rl := servicedesk.RateLimit{Limit: 100, Remaining: 3, FillRate: 10, Interval: time.Second, RetryAfter: -1}
	a.Done(listEp, servicedesk.Outcome{StatusCode: 200, RateLimit: rl})
	b.Done(listEp, outcome429("jira-quota-tenant-based", time.Minute))

	rdb, _ := shared.client(t)
	keys, err := rdb.Keys(ctx, "{"+pfx+"}*").Result()
	require.NoError(t, err)
	// ep ×2, global, members, flight, POST's flight (b's lease; GET's
	// flight set went with its last lease).
	assert.Len(t, keys, 6, "%v", keys)
	for _, k := range keys {
		ttl, err := rdb.PTTL(ctx, k).Result()
		require.NoError(t, err)
		assert.Positive(t, ttl, k)
		assert.LessOrEqual(t, ttl, keyTTL+time.Minute+time.Second, k)
	}
}

func TestAnInvalidConfigurationFailsBeforeSending(t *testing.T) {
	t.Parallel()
	rdb, n := shared.client(t)
	for name, lim := range map[string]servicedesk.RateLimiter{
		"nil client":   New(nil, servicedesk.RateLimiterConfig{}),
		"empty prefix": New(rdb, servicedesk.RateLimiterConfig{}, WithKeyPrefix("")),
		"hash tag":     New(rdb, servicedesk.RateLimiterConfig{}, WithKeyPrefix("site{1}:")),
	} {
		err := lim.Wait(context.Background(), addEp, time.Second)
		require.ErrorIs(t, err, servicedesk.ErrInvalidInput, name)
		assert.True(t, strings.Contains(err.Error(), "redislimiter.New") || strings.Contains(err.Error(), "WithKeyPrefix"), err)
		lim.Done(addEp, servicedesk.Outcome{}) // and Done does nothing
	}
	assert.Zero(t, n.Load(), "nothing sent to Redis")
}

// TestACancelledWaitGivesItsTurnBack: a waiter that gives up gives its
// turn back when it is the last booked, restoring the schedule exactly,
// so waiters giving up last first leave it as it was; a turn with others
// booked after it is left as a gap, as the governor's pacer leaves it
// (giving it back would let a new request take a turn still held).
func TestACancelledWaitGivesItsTurnBack(t *testing.T) {
	t.Parallel()
	// A bucket of 1 paced at 1 a second: the waiters' turns are a second
	// and more away, so none comes up before they give up, however slowly
	// a loaded machine runs the test.
	cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 2}}
	a, h := hookedLimiter(t, cfg, shared.opTimeout())
	ctx := context.Background()
	a.Done(listEp, outcome429("jira-burst-based", time.Millisecond)) // loads learnScript: a give-back is one script, EVALSHA
	_, _ = admitNow(t, addEp, a)
	rdb, _ := shared.client(t)
	key := a.endpoint(addEp).key
	tat := func() string { return rdb.HGet(ctx, key, "tat").Val() }

	// Four waiters queue, one after the other: tats[i] is the schedule's
	// end once i of them hold turns.
	tats := []string{tat()}
	var cancels []context.CancelFunc
	var errs []chan error
	for i := range 4 {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Wait(wctx, addEp, time.Minute) }()
		require.Eventually(t, func() bool { return tat() != tats[i] }, 5*time.Second, time.Millisecond, "waiter %d booked", i)
		tats = append(tats, tat())
		cancels, errs = append(cancels, cancel), append(errs, done)
	}
	giveUp := func(i int) {
		t.Helper()
		backs := h.backs.Load()
		cancels[i]()
		require.ErrorIs(t, <-errs[i], context.Canceled)
		require.Eventually(t, func() bool { return h.backs.Load() > backs }, 5*time.Second, time.Millisecond, "waiter %d gave its turn back", i)
	}

	giveUp(0) // the first in line: three turns are booked after it
	assert.Equal(t, tats[4], tat(), "a turn in the middle is a gap")
	for i := 3; i >= 1; i-- {
		giveUp(i)
		assert.Equal(t, tats[i], tat(), "waiter %d's turn, the last, given back exactly", i)
	}
}

// TestGivingBackAnEarlyTurnDoublesNoLaterOne: ten requests queue and give
// up while ten more behind them keep their turns; ten new ones come. The
// turns given up are not the tail and stay gaps: no new request gets a
// turn another still holds. ('back' moved tat back one interval for each,
// wherever it was in the schedule: 16 requests sent within a second at a
// limit of 10.)
func TestGivingBackAnEarlyTurnDoublesNoLaterOne(t *testing.T) {
	t.Parallel()
	cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 10}} // 8 a second, a bucket of 1
	for name, lim := range bothLimiters(t, cfg) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, lim.Wait(context.Background(), addEp, 0))
			var mu sync.Mutex
			var sent []time.Time
			var wg sync.WaitGroup
			queue := func(ctx context.Context, n int) {
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						err := lim.Wait(ctx, addEp, time.Minute)
						if err == nil {
							mu.Lock()
							sent = append(sent, time.Now())
							mu.Unlock()
							lim.Done(addEp, servicedesk.Outcome{StatusCode: 204, RateLimit: noHeaders()})
						} else if !errors.Is(err, context.Canceled) {
							t.Error(err)
						}
					}()
				}
			}
			early, cancel := context.WithCancel(context.Background())
			queue(early, 10) // turns 1..10, from 125 ms
			time.Sleep(30 * time.Millisecond)
			queue(context.Background(), 10) // turns 11..20
			time.Sleep(30 * time.Millisecond)
			cancel() // before the first turn comes
			time.Sleep(40 * time.Millisecond)
			queue(context.Background(), 10)
			wg.Wait()
			assert.LessOrEqual(t, mostWithinASecond(sent), 10, "requests sent within one second, limit 10 a second (paced at 8)")
		})
	}
}

// mostWithinASecond is the most of times that fall within one second.
func mostWithinASecond(times []time.Time) int {
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	most := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < time.Second; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

// bothLimiters is the in-process governor and this limiter, for a test of
// a rule both keep.
func bothLimiters(t *testing.T, cfg servicedesk.RateLimiterConfig) map[string]servicedesk.RateLimiter {
	l, _ := newLimiter(t, shared, prefix(t), cfg)
	return map[string]servicedesk.RateLimiter{"governor": servicedesk.NewRateLimiter(cfg), "redis": l}
}

// TestReservationsAtAnOldPaceAreMadeAgain: requests waiting their turn at
// 18 a second when the site announces 2 a second go at the new pace, not
// at the turns they held.
func TestReservationsAtAnOldPaceAreMadeAgain(t *testing.T) {
	t.Parallel()
	cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 20}} // a bucket of 1, 18 a second
	pfx := prefix(t)
	a, _ := newLimiter(t, shared, pfx, cfg)
	b, _ := newLimiter(t, shared, pfx, cfg)
	_, _ = admitNow(t, addEp, a)

	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- a.Wait(context.Background(), addEp, 600*time.Millisecond) }()
	}
	time.Sleep(20 * time.Millisecond) // they hold turns within 250 ms
	rl := noHeaders()
	rl.Policies = []servicedesk.RateLimitPolicy{{Name: "jira-burst-based", Quota: 2, Window: time.Second, Remaining: -1}}
	b.Done(addEp, servicedesk.Outcome{StatusCode: 204, RateLimit: rl}) // paced at 1 a second from now

	admitted := 0
	for range 4 {
		if err := <-errs; err == nil {
			admitted++
		} else {
			rateLimited(t, err)
		}
	}
	assert.Equal(t, 1, admitted, "one at once, the next a second later: past their 600 ms")
}

func outcome429(reason string, wait time.Duration) servicedesk.Outcome {
	rl := noHeaders()
	rl.Reason = reason
	rl.RetryAfter = wait
	return servicedesk.Outcome{StatusCode: 429, RateLimit: rl, Wait: wait}
}

func noHeaders() servicedesk.RateLimit {
	return servicedesk.RateLimit{Limit: -1, Remaining: -1, FillRate: -1, RetryAfter: -1}
}

// TestASlowReplyKeepsTheDeadline: a reply that takes 300 ms to come back
// says "wait" for a turn the script found within the deadline when it
// ran; counted from when the reply came, the turn is after the deadline.
// Wait refuses at once with its 429 (it slept into the context's deadline
// and returned the context's error), and gives the turn back.
func TestASlowReplyKeepsTheDeadline(t *testing.T) {
	t.Parallel()
	cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 2}} // a bucket of 1, 1 a second
	l, h := hookedLimiter(t, cfg, time.Second)
	require.NoError(t, l.Wait(context.Background(), addEp, 0)) // the one token: the next turn is a second away
	rdb, _ := shared.client(t)
	key := l.endpoint(addEp).key
	tat := rdb.HGet(context.Background(), key, "tat").Val()

	// The script runs within 200 ms of this; its reply comes 300 ms later:
	// the turn, a second after the first, is 100 ms past the deadline.
	h.delay.Store(int64(300 * time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 1100*time.Millisecond)
	defer cancel()
	err := l.Wait(ctx, addEp, time.Minute)
	require.ErrorIs(t, err, servicedesk.ErrRateLimited, "the limiter's 429, not the context's error")
	apiErr := rateLimited(t, err)
	assert.Contains(t, apiErr.Message, "paced at 1 a second; the context's deadline comes first")
	assert.NoError(t, ctx.Err(), "refused before the deadline")
	require.Eventually(t, func() bool { return rdb.HGet(context.Background(), key, "tat").Val() == tat },
		5*time.Second, 10*time.Millisecond, "the turn given back")
}

// TestAReplyPastTheDeadlineIsNotSlept: whatever a reply says (a script's
// answer is read back from the network), Wait does not sleep past its
// deadline: a turn 10 s away is refused at once, not slept (until the
// test's context ended it, 2 s later).
func TestAReplyPastTheDeadlineIsNotSlept(t *testing.T) {
	t.Parallel()
	l, h := hookedLimiter(t, servicedesk.RateLimiterConfig{}, opTimeout)
	forged := forgedReply(codeWait, 10*time.Second)
	h.forged.Store(&forged)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	apiErr := rateLimited(t, l.Wait(ctx, addEp, 100*time.Millisecond))
	assert.InDelta(t, 10*time.Second, apiErr.RetryAfter, float64(time.Millisecond))
	assert.NoError(t, ctx.Err())
}

// TestARepeatedZeroWaitEndsAtTheDeadline: a reply "paused, wait 0" over
// and over (a pause that ends as it is read, a broken reply) does not
// keep Wait asking Redis past its deadline: with no time allowed, one
// script; with 50 ms, a 429 once they are over (it looped, 61,346
// scripts in a second, until the context ended).
func TestARepeatedZeroWaitEndsAtTheDeadline(t *testing.T) {
	t.Parallel()
	for _, maxWait := range []time.Duration{0, 50 * time.Millisecond} {
		l, h := hookedLimiter(t, servicedesk.RateLimiterConfig{}, opTimeout)
		forged := forgedReply(codePaused, 0)
		h.forged.Store(&forged)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := l.Wait(ctx, addEp, maxWait)
		assert.ErrorIs(t, err, servicedesk.ErrRateLimited, "maxWait %v", maxWait)
		assert.NoError(t, ctx.Err(), "maxWait %v: ended before the context", maxWait)
		if maxWait == 0 {
			assert.Equal(t, int64(1), h.evals.Load(), "scripts run")
		}
		cancel()
	}
}

// dataCenter is an answer of Data Center: a bucket of limit tokens for all
// of the user's requests, refilled at fill a second.
func dataCenter(limit, fill int) servicedesk.Outcome {
	return servicedesk.Outcome{StatusCode: 200, RateLimit: servicedesk.RateLimit{
		Limit: limit, Remaining: -1, FillRate: fill, Interval: time.Second, RetryAfter: -1}}
}

// TestAHeldRequestDoesNotSpendTheDataCenterTurnEarly: a request that its
// endpoint's pace holds back a second takes its turn on Data Center's
// bucket at that second, not at the bucket's own next turn (the governor
// books both at the later of the two): a turn spent early was free again
// when the request went, and another took it, two requests at once from a
// bucket of 1.
func TestAHeldRequestDoesNotSpendTheDataCenterTurnEarly(t *testing.T) {
	t.Parallel()
	cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 2}} // Adds: 1 a second
	for name, lim := range bothLimiters(t, cfg) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			require.NoError(t, lim.Wait(ctx, listEp, 0))
			lim.Done(listEp, dataCenter(1, 4)) // a bucket of 1, 4 a second (paced at 3)
			var mu sync.Mutex
			var sent []time.Time
			var wg sync.WaitGroup
			send := func(ep servicedesk.Endpoint) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := lim.Wait(ctx, ep, 5*time.Second); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					sent = append(sent, time.Now())
					mu.Unlock()
				}()
				time.Sleep(10 * time.Millisecond)
			}
			send(addEp) // at once
			send(addEp) // held a second by the Adds' pace
			for range 3 {
				send(listEp)
			}
			wg.Wait()
			sort.Slice(sent, func(i, j int) bool { return sent[i].Before(sent[j]) })
			for i := 1; i < len(sent); i++ {
				assert.GreaterOrEqual(t, sent[i].Sub(sent[i-1]), 150*time.Millisecond, "two requests from a bucket of 1 refilled 4 a second")
			}
		})
	}
}

// TestACancelledWaitGivesItsDataCenterTurnBack: a waiter held by Data
// Center's bucket that gives up gives that turn back too, exactly, as the
// governor gives back both of a waiter's turns (it was never given back:
// the bucket stayed a turn behind).
func TestACancelledWaitGivesItsDataCenterTurnBack(t *testing.T) {
	t.Parallel()
	a, h := hookedLimiter(t, servicedesk.RateLimiterConfig{}, shared.opTimeout())
	ctx := context.Background()
	require.NoError(t, a.Wait(ctx, listEp, 0))
	a.Done(listEp, dataCenter(1, 1)) // a bucket of 1, refilled every second or two
	_, _ = admitNow(t, addEp, a)
	rdb, _ := shared.client(t)
	tat := func() string { return rdb.HGet(ctx, a.globalKey, "tat").Val() }
	before := tat()

	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Wait(wctx, addEp, time.Minute) }()
	require.Eventually(t, func() bool { return tat() != before }, 5*time.Second, time.Millisecond, "the waiter booked")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Eventually(t, func() bool { return h.backs.Load() == 1 }, 5*time.Second, time.Millisecond, "the turn given back")
	assert.Equal(t, before, tat(), "Data Center's bucket as it was")
}

// TestADataCenterBucketIsPacedWithTheGovernorsMargin: Data Center's bucket
// is paced like a burst limit, a request short of it (limits.DataCenterPace:
// PaceRate, PaceBurst, at most Limit-1), not at its fill rate with its whole
// bucket as the burst: a full bucket of 20 spent at once, to the last token
// the server holds.
func TestADataCenterBucketIsPacedWithTheGovernorsMargin(t *testing.T) {
	t.Parallel()
	for name, lim := range bothLimiters(t, servicedesk.RateLimiterConfig{}) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			require.NoError(t, lim.Wait(ctx, listEp, 0))
			lim.Done(listEp, dataCenter(20, 200)) // 20 tokens, 200 a second
			time.Sleep(150 * time.Millisecond)    // the bucket fills again
			n, start := 0, time.Now()
			for ; n < 100 && lim.Wait(ctx, addEp, 0) == nil; n++ {
			}
			// PaceBurst(200) = 8 at once, and what refilled at 191 a second.
			assertBucket(t, n, 8, 191, time.Since(start), "a Data Center bucket of 20")
			if l, ok := lim.(*limiter); ok {
				rdb, _ := shared.client(t)
				g := rdb.HMGet(ctx, l.globalKey, "n", "rate", "burst").Val()
				assert.Equal(t, []any{"200", "191", "8"}, g, "fill, pace and burst kept in Redis")
			}
		})
	}
}

// TestAWaitCancelledWhileItsScriptRunsGivesBackWhatItTook: a Wait whose
// context ends while its script's reply is on its way returns at once;
// what the script did for it is undone when the reply comes: the turn it
// booked is given back, the lease it took released (they were kept, the
// turn for good, the lease for its two minutes, counted in flight).
func TestAWaitCancelledWhileItsScriptRunsGivesBackWhatItTook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := shared.client(t)
	cancelled := func(l *limiter, h *replyHook) {
		t.Helper()
		h.delay.Store(int64(300 * time.Millisecond)) // the script runs; its reply is late
		wctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		require.ErrorIs(t, l.Wait(wctx, addEp, time.Minute), context.Canceled)
		h.delay.Store(0)
	}

	t.Run("a turn", func(t *testing.T) {
		t.Parallel()
		cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 2}} // a bucket of 1, 1 a second
		l, h := hookedLimiter(t, cfg, time.Second)
		require.NoError(t, l.Wait(ctx, addEp, 0))
		key := l.endpoint(addEp).key
		tat := rdb.HGet(ctx, key, "tat").Val()
		cancelled(l, h)
		require.Eventually(t, func() bool { return h.backs.Load() > 0 }, 5*time.Second, time.Millisecond, "given back")
		assert.Equal(t, tat, rdb.HGet(ctx, key, "tat").Val(), "the schedule as it was")
	})
	t.Run("a lease", func(t *testing.T) {
		t.Parallel()
		l, h := hookedLimiter(t, servicedesk.RateLimiterConfig{}, time.Second)
		cancelled(l, h)
		flight := l.endpoint(addEp).flightKey
		require.Eventually(t, func() bool { return rdb.Exists(ctx, flight).Val() == 1 }, 5*time.Second, time.Millisecond, "admitted")
		require.Eventually(t, func() bool { return rdb.ZCard(ctx, flight).Val() == 0 }, 5*time.Second, time.Millisecond, "its lease released")
	})
}
