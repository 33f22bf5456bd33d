package servicedesk

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimit is what Jira says about its rate limit in the headers of an
// answer. Fields are zero when the header was not sent.
type RateLimit struct {
	Limit     int       // X-RateLimit-Limit
	Remaining int       // X-RateLimit-Remaining; -1 when not sent
	NearLimit bool      // X-RateLimit-NearLimit: true
	Reason    string    // RateLimit-Reason, e.g. "jira-burst-based"
	Reset     time.Time // X-RateLimit-Reset
}

// rateLimitOf reads the rate-limit headers; ok is false when there are none.
func rateLimitOf(h http.Header) (rl RateLimit, ok bool) {
	rl.Remaining = -1
	if v := h.Get("X-RateLimit-Limit"); v != "" {
		rl.Limit, _ = strconv.Atoi(strings.TrimSpace(v))
		ok = true
	}
	if v := h.Get("X-RateLimit-Remaining"); v != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			rl.Remaining = n
		}
		ok = true
	}
	if v := h.Get("X-RateLimit-NearLimit"); v != "" {
		rl.NearLimit = strings.EqualFold(strings.TrimSpace(v), "true")
		ok = true
	}
	if v := h.Get("RateLimit-Reason"); v != "" {
		rl.Reason = v
		ok = true
	}
	if reset, found := parseReset(h); found {
		rl.Reset, ok = reset, true
	}
	return rl, ok
}
