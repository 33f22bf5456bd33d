package redislimiter

// What the limiter knows of Jira's limits: the same rules as the SDK's
// in-process governor (servicedesk/governor.go), which keeps them
// unexported. Keep the two in step.

import (
	"math"
	"strings"
	"time"

	"github.com/servicedesk-go/servicedesk"
)

// Documented burst rates of Jira Cloud, requests a second.
const (
	cloudListCustomersRate = 5
	cloudDefaultRate       = 100
	cloudDeleteRate        = 50
)

// deskCustomersTemplate is the endpoint Atlassian limits to 5 a second when
// listed (GET).
const deskCustomersTemplate = "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer"

// Bounds on what a server may make the limiter do, the governor's: no
// answer stops the fleet for good, however large its numbers.
const (
	maxPause = 24 * time.Hour // the longest pause or wait an answer can cause
	minRate  = 1.0 / 60       // the slowest pace an answer can set: one request a minute
	maxRate  = 1e6            // requests a second; above it, pacing is moot
	maxBurst = 1 << 16        // the largest bucket
	maxCount = 1 << 20        // the largest remaining count believed
	// maxPolicies bounds how many structured policies of one answer are read.
	maxPolicies = 16
	// shortWait is the longest wait an unknown 429 reason may ask for and
	// still be taken for a burst limit, not a quota.
	shortWait = 5 * time.Second
)

// startLimit is an endpoint's limit, in requests a second, before any
// answer: the configured one, or on Cloud the documented one; 0 when
// nothing is known (then nothing is paced until an answer says).
func startLimit(cfg servicedesk.RateLimiterConfig, ep servicedesk.Endpoint) float64 {
	if n, ok := cfg.Rates[ep]; ok && n > 0 {
		return boundRate(n)
	}
	if !cfg.Cloud {
		return 0
	}
	switch {
	case ep.Method == "GET" && ep.Path == deskCustomersTemplate:
		return cloudListCustomersRate
	case ep.Method == "DELETE":
		return cloudDeleteRate
	}
	return cloudDefaultRate
}

// paceRate and paceBurst turn a limit of n requests a second into a bucket
// that keeps below it in any one-second window (burst + rate < n), as the
// governor does.
func paceRate(n float64) float64 {
	b := float64(paceBurst(n))
	if n >= 10 {
		return n - b - 1
	}
	return max(n-b, 0.5*n, minRate)
}

func paceBurst(n float64) int {
	return min(max(1, int(0.04*n)), maxBurst)
}

// boundRate keeps a limit a server announced within [minRate, maxRate].
func boundRate(n float64) float64 {
	if math.IsNaN(n) {
		return minRate
	}
	return min(max(n, minRate), maxRate)
}

// boundWait keeps a wait a server asked for within [0, maxPause].
func boundWait(d time.Duration) time.Duration {
	return min(max(d, 0), maxPause)
}

// boundCount keeps a count a server sent within [0, maxCount].
func boundCount(n int) int {
	return min(max(n, 0), maxCount)
}

// isQuota reports whether a policy is one of the app's hourly quotas
// (every endpoint), not a per-endpoint burst limit.
func isQuota(policy string) bool { return strings.Contains(policy, "quota") }

// quota429 reports whether a 429 is about a quota that holds every
// endpoint: Jira's hourly quotas, an unknown reason with a long wait, or
// the gateway's 429 that names nothing but X-RateLimit-Reset.
func quota429(rl servicedesk.RateLimit, wait time.Duration) bool {
	switch r := rl.Reason; {
	case strings.Contains(r, "quota"), r == "jira-cost-based":
		return true
	case r == "jira-burst-based", r == "jira-per-issue-on-write":
		return false
	case r == "":
		return rl.RetryAfter < 0 && !rl.Reset.IsZero()
	}
	return wait > shortWait
}

// maxName bounds the reasons and policy names the limiter keeps.
const maxName = 64

// cleanName is a reason or policy name fit to keep in Redis, share with
// other processes and print in errors: Jira's are short words and dashes;
// anything else (a server echoing a header it was sent, say) is dropped.
func cleanName(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxName {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return ""
		}
	}
	return s
}
