package limits

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRefusalMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Refusal
		want string
	}{
		{
			name: "paced, queued, allowance short",
			r:    Refusal{Wait: 1400 * time.Millisecond, Rate: 8, Policy: "jira-burst-based", Queued: 11, MaxWait: time.Second, Waited: 0},
			want: "not sent: paced at 8 a second (jira-burst-based), 11 requests queued ahead; WithRateLimitWait's allowance has 1s left (500ms more would have served it)",
		},
		{
			name: "paced after waiting: what is left, not what there was",
			r:    Refusal{Wait: 300 * time.Millisecond, Rate: 4, MaxWait: time.Second, Waited: 900 * time.Millisecond},
			want: "not sent: paced at 4 a second; WithRateLimitWait's allowance has 100ms left (300ms more would have served it)",
		},
		{
			name: "no pace said",
			r:    Refusal{Wait: 20 * time.Millisecond, Rate: math.Inf(1)},
			want: "not sent: paced; WithRateLimitWait's allowance has 0s left (100ms more would have served it)",
		},
		{
			name: "paused by a policy named as its reason",
			r:    Refusal{Wait: time.Hour, Paused: true, Cause: "after a 429", Reason: "jira-quota-global-based", Policy: "jira-quota-global-based", MaxWait: time.Second},
			want: "not sent: paused after a 429; WithRateLimitWait's allowance has 1s left",
		},
		{
			name: "paused by another policy, the context first",
			r:    Refusal{Wait: time.Minute, Paused: true, Cause: "until the quota resets: the server said none is left", Policy: "global-app-quota", CtxFirst: true},
			want: "not sent: paused until the quota resets: the server said none is left (global-app-quota); the context's deadline comes first",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.r.Message())
		})
	}
}
