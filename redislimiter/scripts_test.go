package redislimiter

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/internal/limits"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The rules the scripts apply in Redis, each checked on the state Redis
// keeps.

// TestPaceLuaIsLimits: the scripts' pburst and prate are limits.PaceBurst
// and limits.PaceRate, to the last bit.
func TestPaceLuaIsLimits(t *testing.T) {
	t.Parallel()
	rdb, _ := shared.client(t)
	ns := []float64{limits.MinRate, 0.1, 0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 9.99, 10, 12.5, 24.99, 25, 40, 49.5, 50, 99, 100, 191, 1000, 12345.6, 1e6}
	var args []any
	for _, n := range ns {
		args = append(args, strconv.FormatFloat(n, 'g', -1, 64))
	}
	out, err := rdb.Eval(context.Background(), paceLua+`
local out = {}
for i = 1, #ARGV do
  local n = tonumber(ARGV[i])
  out[i] = string.format('%.17g %d', prate(n), pburst(n))
end
return out`, nil, args...).StringSlice()
	require.NoError(t, err)
	for i, n := range ns {
		rate, burst, _ := strings.Cut(out[i], " ")
		r, _ := strconv.ParseFloat(rate, 64)
		b, _ := strconv.Atoi(burst)
		assert.Equal(t, limits.PaceRate(n), r, "PaceRate(%v)", n)
		assert.Equal(t, limits.PaceBurst(n), b, "PaceBurst(%v)", n)
	}
}

// endpointState reads fields of an endpoint's hash.
func endpointState(t *testing.T, l *limiter, ep servicedesk.Endpoint, fields ...string) []float64 {
	t.Helper()
	rdb, _ := shared.client(t)
	vs, err := rdb.HMGet(context.Background(), l.endpoint(ep).key, fields...).Result()
	require.NoError(t, err)
	out := make([]float64, len(vs))
	for i, v := range vs {
		s, _ := v.(string)
		out[i], _ = strconv.ParseFloat(s, 64)
	}
	return out
}

// TestAnUnannouncedLimitIsCutToWhatWasServed: a site that serves 10 a
// second and 429s without saying its limit. Both limiters cut the pace to
// what was served in the second before the 429, PaceRate(10) = 8 a second
// (redislimiter took 90 % of the pace, or 90 when there was none: a 429 a
// second for twenty seconds before it got near 10).
func TestAnUnannouncedLimitIsCutToWhatWasServed(t *testing.T) {
	t.Parallel()
	for name, lim := range bothLimiters(t, servicedesk.RateLimiterConfig{}) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			for range 10 {
				require.NoError(t, lim.Wait(ctx, addEp, 0))
				lim.Done(addEp, servicedesk.Outcome{StatusCode: 204, RateLimit: noHeaders()})
				time.Sleep(50 * time.Millisecond)
			}
			require.NoError(t, lim.Wait(ctx, addEp, 0))
			lim.Done(addEp, outcome429("", 0)) // no limit said: paused a second, and cut
			require.NoError(t, lim.Wait(ctx, addEp, 2*time.Second))
			var err error
			for n := 0; n < 1000 && err == nil; n++ {
				err = lim.Wait(ctx, addEp, 0)
			}
			apiErr := rateLimited(t, err)
			assert.GreaterOrEqual(t, apiErr.RetryAfter, 50*time.Millisecond, "after a 429 at 10 a second: %s", apiErr.Message)
			if l, ok := lim.(*limiter); ok {
				assert.Equal(t, []float64{8, 1}, endpointState(t, l, addEp, "rate", "cut"), "paced at 8 a second, cut")
			}
		})
	}
}

// TestACutCountsWhatTheFleetWasServed: two processes are served 5 each in
// the second before one meets a 429 that says no limit: the cut is to the
// pace for the 10 the site served, counted in Redis, not for the 5 the
// process saw.
func TestACutCountsWhatTheFleetWasServed(t *testing.T) {
	t.Parallel()
	pfx := prefix(t)
	a, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	b, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{})
	ctx := context.Background()
	for i := range 10 {
		lim := []*limiter{a, b}[i%2]
		require.NoError(t, lim.Wait(ctx, addEp, 0))
		lim.Done(addEp, servicedesk.Outcome{StatusCode: 204, RateLimit: noHeaders()})
	}
	b.flush() // b's finished leases, which it sends within flushAfter
	require.NoError(t, a.Wait(ctx, addEp, 0))
	a.Done(addEp, outcome429("", 0))
	assert.Equal(t, []float64{limits.PaceRate(10), 1}, endpointState(t, a, addEp, "rate", "cut"))
}

// TestACutRateRecovers: a cut rate goes up by a twentieth each 10 seconds
// without a cut, back to what it was, and is no longer cut; a 429 right
// after a step up cuts it again (one cut a second counts from the last
// cut, not from the last step up, as in the governor). The 10 seconds are
// taken by moving the last cut and step back in Redis.
func TestACutRateRecovers(t *testing.T) {
	t.Parallel()
	cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 20}} // paced at 18
	a, _ := newLimiter(t, shared, prefix(t), cfg)
	ctx := context.Background()
	rdb, _ := shared.client(t)
	key := a.endpoint(addEp).key
	age := func() { // the last cut and step up 11 s ago, the pause over
		t.Helper()
		now, err := rdb.Time(ctx).Result()
		require.NoError(t, err)
		ago := strconv.FormatInt(now.Add(-11*time.Second).UnixMicro(), 10)
		require.NoError(t, rdb.HSet(ctx, key, "lc", ago, "lu", ago, "pu", "0").Err())
		a.endpoint(addEp).pause.Store(nil)
	}

	require.NoError(t, a.Wait(ctx, addEp, 0))
	a.Done(addEp, outcome429("", 0)) // nothing served before it: 90 % of 18
	rate := endpointState(t, a, addEp, "rate")[0]
	require.InDelta(t, 16.2, rate, 1e-9)
	for step := 0; ; step++ {
		require.Less(t, step, 10)
		age()
		require.NoError(t, a.Wait(ctx, addEp, time.Second)) // a reservation recovers it
		st := endpointState(t, a, addEp, "rate", "cut")
		if st[1] == 0 {
			assert.Equal(t, 18.0, st[0], "back to what it was, and no longer cut")
			assert.Equal(t, 2, step, "16.2, 17.01, 17.86, then 18")
			break
		}
		assert.InDelta(t, rate*1.05, st[0], 1e-9, "a twentieth up")
		rate = st[0]
	}

	// Cut again; a step up; a 429 at once cuts again.
	a.Done(addEp, outcome429("", 0))
	age()
	require.NoError(t, a.Wait(ctx, addEp, time.Second))
	up := endpointState(t, a, addEp, "rate")[0]
	require.InDelta(t, 16.2*1.05, up, 1e-9)
	a.Done(addEp, outcome429("", 0))
	assert.InDelta(t, up*0.9, endpointState(t, a, addEp, "rate")[0], 1e-9, "cut right after a step up")
}

// TestWhatTheServerSaysIsLeftIsSpent: an answer that says fewer requests
// are left than the bucket holds ('spend', for an endpoint's policy;
// 'gspend', for Data Center's bucket) leaves only those to go at once.
func TestWhatTheServerSaysIsLeftIsSpent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("an endpoint", func(t *testing.T) {
		t.Parallel()
		cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 250}} // a bucket of 10, 239 a second
		a, _ := newLimiter(t, shared, prefix(t), cfg)
		require.NoError(t, a.Wait(ctx, addEp, 0)) // 9 left in the bucket
		rl := noHeaders()
		rl.Policies = []servicedesk.RateLimitPolicy{{Name: "jira-burst-based", Quota: 250, Window: time.Second, Remaining: 2, Reset: time.Now().Add(time.Second)}}
		a.Done(addEp, servicedesk.Outcome{StatusCode: 204, RateLimit: rl})
		n, took, _ := admitNowTimed(t, addEp, a)
		assertBucket(t, n, 2, 239, took, "the server said 2 are left")
	})
	t.Run("data center", func(t *testing.T) {
		t.Parallel()
		a, _ := newLimiter(t, shared, prefix(t), servicedesk.RateLimiterConfig{})
		require.NoError(t, a.Wait(ctx, listEp, 0))
		a.Done(listEp, dataCenter(20, 200)) // a bucket of 8, 191 a second
		time.Sleep(150 * time.Millisecond)  // full again
		require.NoError(t, a.Wait(ctx, addEp, 0))
		left := dataCenter(20, 200)
		left.RateLimit.Remaining = 2
		a.Done(addEp, left)
		n, took, _ := admitNowTimed(t, listEp, a)
		assertBucket(t, n, 2, 191, took, "the server said 2 are left")
	})
}

// TestAPauseOfEverythingDropsTheDebt: the turns an endpoint had booked
// ahead (here 10 s of them) are void once everything is paused, their
// waiters booking again after the pause; after it, the endpoint is not
// held for turns no one holds.
func TestAPauseOfEverythingDropsTheDebt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := servicedesk.RateLimiterConfig{Rates: map[servicedesk.Endpoint]float64{addEp: 2}} // a bucket of 1, 1 a second
	a, _ := newLimiter(t, shared, prefix(t), cfg)
	require.NoError(t, a.Wait(ctx, addEp, 0))
	rdb, _ := shared.client(t)
	now := rdb.Time(ctx).Val()
	require.NoError(t, rdb.HSet(ctx, a.endpoint(addEp).key, "tat", now.Add(10*time.Second).UnixMicro()).Err())
	_, err := admitNow(t, addEp, a)
	require.InDelta(t, 10*time.Second, rateLimited(t, err).RetryAfter, float64(time.Second), "10 s of turns booked")

	require.NoError(t, a.Wait(ctx, listEp, 0))
	a.Done(listEp, outcome429("jira-quota-global-based", 100*time.Millisecond))
	time.Sleep(200 * time.Millisecond) // the pause is over
	require.NoError(t, a.Wait(ctx, addEp, 0), "not held for the void turns")
}
