package redislimiter

// What the limiter knows of Jira's limits is the SDK's own (package
// internal/limits, which the in-process governor uses too); what is here
// is the limiter's alone.

import (
	"strings"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/internal/limits"
)

// How long a pause or wait may be, and the largest count believed.
const (
	maxPause = limits.MaxServerWait
	maxCount = 1 << 20
)

// startLimit is an endpoint's limit, in requests a second, before any
// answer: the configured one, or on Cloud the documented one; 0 when
// nothing is known (then nothing is paced until an answer says).
func startLimit(cfg servicedesk.RateLimiterConfig, ep servicedesk.Endpoint) float64 {
	if n, ok := cfg.Rates[ep]; ok && n > 0 {
		return limits.BoundRate(n)
	}
	if !cfg.Cloud {
		return 0
	}
	return limits.CloudRate(ep.Method, ep.Path)
}

// boundCount keeps a count a server sent within [0, maxCount].
func boundCount(n int) int {
	return min(max(n, 0), maxCount)
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
