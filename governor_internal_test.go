package servicedesk

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

func TestPacingStaysBelowTheLimit(t *testing.T) {
	t.Parallel()
	for _, n := range []float64{1, 2, 5, 10, 20, 50, 100, 200, 1000} {
		r, b := float64(paceRate(n)), float64(paceBurst(n))
		assert.GreaterOrEqual(t, b, 1.0, "n=%v", n)
		if n >= 10 {
			assert.Less(t, r+b, n, "n=%v: one window never holds the whole limit", n)
			assert.GreaterOrEqual(t, r, 0.8*n, "n=%v", n)
		} else {
			// Below 2 a second the bucket holds one token and refills it
			// in 1/r ≥ 1 s: one request a window at most.
			if n >= 2 {
				assert.LessOrEqual(t, r+b, n, "n=%v", n)
			}
			assert.GreaterOrEqual(t, r, 0.5*n, "n=%v", n)
		}
	}
}

func TestQuota429(t *testing.T) {
	t.Parallel()
	reset := time.Now().Add(time.Hour)
	cases := []struct {
		name  string
		rl    RateLimit
		wait  time.Duration
		quota bool
	}{
		{"global quota", RateLimit{Reason: "jira-quota-global-based", RetryAfter: time.Hour}, time.Hour, true},
		{"tenant quota", RateLimit{Reason: "jira-quota-tenant-based", RetryAfter: time.Second}, time.Second, true},
		{"cost based", RateLimit{Reason: "jira-cost-based", RetryAfter: time.Hour}, time.Hour, true},
		{"burst", RateLimit{Reason: "jira-burst-based", RetryAfter: time.Hour}, time.Hour, false},
		{"per issue", RateLimit{Reason: "jira-per-issue-on-write", RetryAfter: 2 * time.Second}, 2 * time.Second, false},
		{"gateway: reset only", RateLimit{RetryAfter: -1, Reset: reset}, time.Hour, true},
		{"no reason, Retry-After", RateLimit{RetryAfter: time.Second, Reset: reset}, time.Hour, false},
		{"no reason, nothing", RateLimit{RetryAfter: -1}, 0, false},
		{"unknown reason, short wait", RateLimit{Reason: "jira-max-concurrent-threads-across-all-instances-per-tenant-per-user", RetryAfter: time.Second}, time.Second, false},
		{"unknown reason, long wait", RateLimit{Reason: "jira-something-new", RetryAfter: time.Minute}, time.Minute, true},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.quota, quota429(tc.rl, tc.wait), tc.name)
	}
}

// TestUnannouncedBurstCutsThenRecovers: a 429 that says nothing of the
// limit lowers the endpoint's rate; 2xx answers bring it back, slowly, to
// where it was.
func TestUnannouncedBurstCutsThenRecovers(t *testing.T) {
	t.Parallel()
	g := NewRateLimiter(RateLimiterConfig{Cloud: true}).(*governor)
	ep := Endpoint{Method: http.MethodPost, Path: deskCustomersTemplate}
	b := g.bucket(ep)
	start := b.lim.Limit()
	assert.Equal(t, paceRate(cloudDefaultRate), start)

	none := RateLimit{Limit: -1, Remaining: -1, FillRate: -1, RetryAfter: -1}
	g.Done(ep, Outcome{StatusCode: 429, RateLimit: none})
	cut := b.lim.Limit()
	assert.InDelta(t, float64(start)*0.7, float64(cut), 0.01)
	p := b.pause.Load()
	require.NotNil(t, p, "paused a second, burst limits being per second")
	assert.Equal(t, "429", p.reason)

	// A second 429 of the same burst does not cut again.
	g.Done(ep, Outcome{StatusCode: 429, RateLimit: none})
	assert.Equal(t, cut, b.lim.Limit())

	// Recovery: 10 % every 5 s without a 429, up to the start.
	now := time.Now()
	for i := 1; i <= 10; i++ {
		b.recover(now.Add(time.Duration(i) * 6 * time.Second))
	}
	assert.Equal(t, start, b.lim.Limit())
	assert.False(t, b.cut.Load())
}

// TestAnnouncedLimitIsLearned: a 2xx's policy sets the pace; Data Center's
// headers pace the whole client.
func TestAnnouncedLimitIsLearned(t *testing.T) {
	t.Parallel()
	g := NewRateLimiter(RateLimiterConfig{}).(*governor)
	ep := Endpoint{Method: http.MethodGet, Path: deskCustomersTemplate}
	require.NoError(t, g.Wait(context.Background(), ep, 0))
	assert.Equal(t, rate.Inf, g.bucket(ep).lim.Limit(), "not Cloud: unpaced until told")
	h := http.Header{"Ratelimit-Policy": {`"jira-burst-based";q=20;w=1`}, "Ratelimit": {`"jira-burst-based";r=15;t=1`}}
	rl, _ := rateLimitOf(h, time.Now())
	g.Done(ep, Outcome{StatusCode: 200, RateLimit: rl})
	assert.Equal(t, paceRate(20), g.bucket(ep).lim.Limit())
	assert.Equal(t, paceBurst(20), g.bucket(ep).lim.Burst())

	require.NoError(t, g.Wait(context.Background(), ep, time.Second))
	h = http.Header{"X-Ratelimit-Limit": {"60"}, "X-Ratelimit-Remaining": {"59"}, "X-Ratelimit-Fillrate": {"10"}, "X-Ratelimit-Interval-Seconds": {"2"}}
	rl, _ = rateLimitOf(h, time.Now())
	g.Done(ep, Outcome{StatusCode: 200, RateLimit: rl})
	assert.Equal(t, rate.Limit(5), g.global.Limit())
	assert.Equal(t, 60, g.global.Burst())
}

func TestParseStructuredList(t *testing.T) {
	t.Parallel()
	items := parseStructuredList([]string{`"a";q=1;w=2, b;r=3`, `"c,d";t="4" , ;x=1`, `"e\"f";q=5.5`})
	require.Len(t, items, 4)
	assert.Equal(t, "a", items[0].name)
	assert.Equal(t, map[string]string{"q": "1", "w": "2"}, items[0].params)
	assert.Equal(t, "b", items[1].name)
	assert.Equal(t, "c,d", items[2].name, "a comma inside quotes")
	n, ok := items[2].int("t")
	assert.True(t, ok)
	assert.Equal(t, 4, n)
	assert.Equal(t, `e"f`, items[3].name)
	n, ok = items[3].int("q")
	assert.True(t, ok)
	assert.Equal(t, 5, n)
	_, ok = items[3].int("zz")
	assert.False(t, ok)
}
