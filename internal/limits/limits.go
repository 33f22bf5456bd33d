// Package limits holds what the SDK knows of Jira's rate limits and how it
// paces requests for them, for the in-process governor (package
// servicedesk) and the Redis-backed limiter (module redislimiter) alike:
// Atlassian's documented rates, the pace that keeps a request short of a
// limit, the bounds put on every number a server sends, and which 429s are
// about an hourly quota.
package limits

import (
	"math"
	"strings"
	"time"
)

// Documented burst rates of Jira Cloud, requests a second.
const (
	CloudListCustomersRate = 5
	CloudDefaultRate       = 100
	CloudDeleteRate        = 50
)

// DeskCustomersTemplate is the path template of a desk's customers, which
// Atlassian limits to 5 requests a second when listed (GET).
const DeskCustomersTemplate = "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer"

// CloudRate is an endpoint's documented burst rate on Jira Cloud.
func CloudRate(method, path string) float64 {
	switch {
	case method == "GET" && path == DeskCustomersTemplate:
		return CloudListCustomersRate
	case method == "DELETE":
		return CloudDeleteRate
	}
	return CloudDefaultRate
}

// Bounds on what a server says about rate limits. Every wait, pause and
// pace taken from an answer goes through these: nothing a server sends can
// stop a client for good, or make it spend long on reading headers.
const (
	// MaxServerWait is the longest wait or pause an answer can set.
	MaxServerWait = 24 * time.Hour
	// MinRate is the slowest pace an answer can set: one request a minute.
	MinRate = 1.0 / 60
	// MaxRate is the fastest a limit is taken to be (beyond it, pacing is
	// moot), keeping bucket sizes sane.
	MaxRate = 1e6
	// MaxBurst bounds a bucket's burst, whatever a server announces.
	MaxBurst = 1 << 16
	// MaxPolicies is how many structured policies of an answer are read.
	MaxPolicies = 16
	// ShortWait is the longest wait an unknown 429 reason may ask for and
	// still be taken for a burst limit, not a quota.
	ShortWait = 5 * time.Second
)

// BoundWait clamps a wait from a server to [0, MaxServerWait].
func BoundWait(d time.Duration) time.Duration { return min(max(d, 0), MaxServerWait) }

// BoundRate clamps a limit, in requests a second, to [MinRate, MaxRate].
func BoundRate(n float64) float64 {
	if math.IsNaN(n) {
		return MinRate
	}
	return min(max(n, MinRate), MaxRate)
}

// PaceRate and PaceBurst turn a limit of n requests a second into a bucket
// that keeps below it in any one-second window, however the server counts
// (fixed windows, a sliding window, a token bucket of n): burst + rate
// stays a request short of n, so that a request arriving late or early by
// a few milliseconds cannot tip a window over. A small burst leaves room
// for a high rate: 47 a second for a limit of 50, 95 for 100. Below 10 a
// second there is no request to spare: burst + rate ≤ n, and at least half
// of n (and never slower than MinRate).
func PaceRate(n float64) float64 {
	b := float64(PaceBurst(n))
	if n >= 10 {
		return n - b - 1
	}
	return max(n-b, 0.5*n, MinRate)
}

// PaceBurst is the burst of PaceRate's bucket: 4 % of the limit, at least 1.
func PaceBurst(n float64) int {
	return min(max(1, int(0.04*n)), MaxBurst)
}

// IsQuota reports whether a policy (a RateLimit-Policy name) is one of the
// app's hourly quotas, which hold every endpoint, not a per-endpoint burst
// limit.
func IsQuota(policy string) bool { return strings.Contains(policy, "quota") }

// Quota429 reports whether a 429 is about a quota that holds every
// endpoint: Jira's hourly quotas, an unknown reason with a long wait, or
// the gateway's 429 that names nothing but X-RateLimit-Reset.
// retryAfterSent and resetSent say which of Retry-After and
// X-RateLimit-Reset it carried; wait is how long it asked to wait.
func Quota429(reason string, retryAfterSent, resetSent bool, wait time.Duration) bool {
	switch {
	case strings.Contains(reason, "quota"), reason == "jira-cost-based":
		return true
	case reason == "jira-burst-based", reason == "jira-per-issue-on-write":
		return false
	case reason == "":
		return !retryAfterSent && resetSent
	}
	return wait > ShortWait
}
