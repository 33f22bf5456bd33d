package limits

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPacingStaysBelowTheLimit(t *testing.T) {
	t.Parallel()
	for _, n := range []float64{1, 2, 5, 10, 20, 50, 100, 200, 1000} {
		r, b := float64(PaceRate(n)), float64(PaceBurst(n))
		assert.GreaterOrEqual(t, b, 1.0, "n=%v", n)
		if n >= 10 {
			assert.LessOrEqual(t, r+b, n-1, "n=%v: one window holds a request less than the limit", n)
			assert.GreaterOrEqual(t, r, 0.8*n, "n=%v", n)
			if n >= 20 {
				assert.GreaterOrEqual(t, r, 0.9*n, "n=%v: close to the limit", n)
			}
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
	// What a 429 said: its reason, Retry-After (-1: not sent) and reset.
	type answer struct {
		Reason     string
		RetryAfter time.Duration
		Reset      time.Time
	}
	cases := []struct {
		name  string
		rl    answer
		wait  time.Duration
		quota bool
	}{
		{"global quota", answer{Reason: "jira-quota-global-based", RetryAfter: time.Hour}, time.Hour, true},
		{"tenant quota", answer{Reason: "jira-quota-tenant-based", RetryAfter: time.Second}, time.Second, true},
		{"cost based", answer{Reason: "jira-cost-based", RetryAfter: time.Hour}, time.Hour, true},
		{"burst", answer{Reason: "jira-burst-based", RetryAfter: time.Hour}, time.Hour, false},
		{"per issue", answer{Reason: "jira-per-issue-on-write", RetryAfter: 2 * time.Second}, 2 * time.Second, false},
		{"gateway: reset only", answer{RetryAfter: -1, Reset: reset}, time.Hour, true},
		{"no reason, Retry-After", answer{RetryAfter: time.Second, Reset: reset}, time.Hour, false},
		{"no reason, nothing", answer{RetryAfter: -1}, 0, false},
		{"unknown reason, short wait", answer{Reason: "jira-max-concurrent-threads-across-all-instances-per-tenant-per-user", RetryAfter: time.Second}, time.Second, false},
		{"unknown reason, long wait", answer{Reason: "jira-something-new", RetryAfter: time.Minute}, time.Minute, true},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.quota, Quota429(tc.rl.Reason, tc.rl.RetryAfter >= 0, !tc.rl.Reset.IsZero(), tc.wait), tc.name)
	}
}
