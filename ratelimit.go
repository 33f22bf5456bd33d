package servicedesk

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/servicedesk-go/servicedesk/internal/limits"
)

// RateLimit is what an answer's headers say about Jira's rate limits.
// Counts are -1 and times zero when their header was not sent (0 is a real
// count: none remaining).
type RateLimit struct {
	Limit     int  // X-RateLimit-Limit (per second for burst limits; the bucket size on Data Center)
	Remaining int  // X-RateLimit-Remaining
	NearLimit bool // X-RateLimit-NearLimit: true, under 20 % of the hourly quota left
	// Reason is RateLimit-Reason: "jira-burst-based" (one endpoint and
	// method), "jira-quota-global-based" or "jira-quota-tenant-based" (the
	// app's hourly quota), ...
	Reason string
	// Reset is X-RateLimit-Reset, moved onto the local clock by the
	// answer's Date header, so a server clock that is off does not shift it.
	Reset time.Time
	// RetryAfter is Retry-After as sent (seconds, or an HTTP date); -1 when
	// not sent. [Error.RetryAfter] combines it with Reset.
	RetryAfter time.Duration
	// FillRate and Interval are Data Center's token bucket: FillRate tokens
	// (X-RateLimit-FillRate) every Interval (X-RateLimit-Interval-Seconds).
	FillRate int
	Interval time.Duration
	// Policies are the structured RateLimit-Policy and RateLimit headers
	// (and their informational Beta- forms), one entry per policy name;
	// at most 16, from the first 4 KiB of each header.
	Policies []RateLimitPolicy
	// Policy is set on a request the client's own rate limiter refused
	// (an *Error with Attempts 0): the policy, as named in
	// RateLimit-Policy, that paced or paused it ("jira-burst-based",
	// "global-app-quota"); "" when none was named. Reason is then the
	// RateLimit-Reason of the 429 that paused it, if a 429 did.
	Policy string
}

// RateLimitPolicy is one policy of the structured rate-limit headers:
// RateLimit-Policy: "<name>";q=<quota>;w=<window> and
// RateLimit: "<name>";r=<remaining>;t=<seconds to reset>.
type RateLimitPolicy struct {
	Name      string        // "jira-burst-based", "global-app-quota", "tenant-app-quota", ...
	Quota     int           // q: requests, or points for the app quotas, per Window; -1 when not sent
	Window    time.Duration // w; 0 when not sent
	Remaining int           // r; -1 when not sent (Jira leaves it out while well within the limit)
	Reset     time.Time     // now + t, on the local clock; zero when not sent
	Beta      bool          // from Beta-RateLimit-Policy / Beta-RateLimit: informational, not enforced
}

// The headers read.
const (
	hLimit         = "X-Ratelimit-Limit"
	hRemaining     = "X-Ratelimit-Remaining"
	hNearLimit     = "X-Ratelimit-Nearlimit"
	hReset         = "X-Ratelimit-Reset"
	hFillRate      = "X-Ratelimit-Fillrate"
	hInterval      = "X-Ratelimit-Interval-Seconds"
	hReason        = "Ratelimit-Reason"
	hPolicy        = "Ratelimit-Policy"
	hRateLimit     = "Ratelimit"
	hBetaPolicy    = "Beta-Ratelimit-Policy"
	hBetaRateLimit = "Beta-Ratelimit"
	hRetryAfter    = "Retry-After"
	hRequestID     = "X-Arequestid"
)

// maxHeaderText bounds the text taken from a header into errors, logs and
// hooks (a request id, a rate-limit reason): a server may send anything.
const maxHeaderText = 256

// requestID is an answer's X-AREQUESTID, bounded.
func requestID(h http.Header) string { return boundText(h.Get(hRequestID)) }

// boundText cuts a header's text to maxHeaderText bytes, on a rune
// boundary.
func boundText(s string) string {
	if len(s) <= maxHeaderText {
		return s
	}
	cut := maxHeaderText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// noRateLimit is what an answer without rate-limit headers says: every
// count -1, as RateLimit documents.
func noRateLimit() RateLimit {
	return RateLimit{Limit: -1, Remaining: -1, FillRate: -1, RetryAfter: -1}
}

// rateLimitOf reads the rate-limit headers of an answer received at now;
// ok is false when there are none.
func rateLimitOf(h http.Header, now time.Time) (rl RateLimit, ok bool) {
	rl = noRateLimit()
	if !hasRateLimitHeader(h) {
		return rl, false
	}
	if v := h.Get(hRetryAfter); v != "" {
		if d, found := retryAfterValue(v, h, now); found {
			rl.RetryAfter, ok = d, true
		}
	}
	if v := h.Get(hLimit); v != "" {
		rl.Limit = atoiOr(v, -1)
		ok = true
	}
	if v := h.Get(hRemaining); v != "" {
		rl.Remaining = atoiOr(v, -1)
		ok = true
	}
	if v := h.Get(hNearLimit); v != "" {
		rl.NearLimit = strings.EqualFold(strings.TrimSpace(v), "true")
		ok = true
	}
	if v := h.Get(hReason); v != "" {
		rl.Reason = boundText(strings.TrimSpace(v))
		ok = true
	}
	if v := h.Get(hFillRate); v != "" {
		rl.FillRate = atoiOr(v, -1)
		ok = true
	}
	if v := h.Get(hInterval); v != "" {
		if secs := atoiOr(v, -1); secs > 0 {
			rl.Interval = limits.BoundWait(time.Duration(min(secs, int(limits.MaxServerWait/time.Second))) * time.Second)
		}
		ok = true
	}
	if in, found := resetIn(h, now); found {
		rl.Reset, ok = localTime(now, limits.BoundWait(in)), true
	}
	if h[hPolicy] != nil || h[hRateLimit] != nil || h[hBetaPolicy] != nil || h[hBetaRateLimit] != nil {
		rl.Policies = policiesOf(h, now)
		ok = true
	}
	return rl, ok
}

// hasRateLimitHeader is a quick look for any of the headers rateLimitOf
// reads: most answers have a handful of headers and none of these.
func hasRateLimitHeader(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, "X-Ratelimit-") || strings.HasPrefix(k, "Ratelimit") ||
			strings.HasPrefix(k, "Beta-Ratelimit") || k == hRetryAfter {
			return true
		}
	}
	return false
}

func atoiOr(s string, or int) int {
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
		return n
	}
	return or
}

// policiesOf merges the structured headers into one entry per policy name
// (and per Beta-ness), in the order they first appear: at most
// limits.MaxPolicies of them, from what parseStructuredList reads. A name
// sent twice (two limits of one kind on one answer) keeps the tighter of
// each: the lower rate, the fewer remaining, the later reset.
func policiesOf(h http.Header, now time.Time) []RateLimitPolicy {
	var out []RateLimitPolicy
	find := func(name string, beta bool) *RateLimitPolicy {
		for i := range out {
			if out[i].Name == name && out[i].Beta == beta {
				return &out[i]
			}
		}
		if len(out) == limits.MaxPolicies {
			return nil
		}
		out = append(out, RateLimitPolicy{Name: name, Quota: -1, Remaining: -1, Beta: beta})
		return &out[len(out)-1]
	}
	for _, prefix := range []string{"", "Beta-"} {
		beta := prefix != ""
		for _, item := range parseStructuredList(h[prefix+"Ratelimit-Policy"]) {
			p := find(item.name, beta)
			if p == nil {
				continue
			}
			q, hasQ := item.int("q")
			w, hasW := item.int("w")
			if !hasQ {
				continue
			}
			window := time.Duration(0)
			if hasW && w > 0 {
				window = secondsWait(w)
			}
			if p.Quota < 0 || tighter(q, window, p.Quota, p.Window) {
				p.Quota, p.Window = q, window
			}
		}
		for _, item := range parseStructuredList(h[prefix+"Ratelimit"]) {
			p := find(item.name, beta)
			if p == nil {
				continue
			}
			if r, ok := item.int("r"); ok && (p.Remaining < 0 || r < p.Remaining) {
				p.Remaining = r
			}
			if t, ok := item.int("t"); ok && t >= 0 {
				if reset := localTime(now, secondsWait(t)); reset.After(p.Reset) {
					p.Reset = reset
				}
			}
		}
	}
	return out
}

// tighter reports whether q per w allows fewer requests a second than
// q0 per w0 (a policy without a window compares by its quota).
func tighter(q int, w time.Duration, q0 int, w0 time.Duration) bool {
	if w <= 0 || w0 <= 0 {
		return q < q0
	}
	return float64(q)/w.Seconds() < float64(q0)/w0.Seconds()
}

// sfItem is one member of a structured-field list (RFC 9651): a string or
// token, and its parameters.
type sfItem struct {
	name   string
	params map[string]string
}

func (it sfItem) int(key string) (int, bool) {
	v, ok := it.params[key]
	if !ok {
		return 0, false
	}
	// A decimal ("1.5") counts by its integer part; Jira sends integers.
	v, _, _ = strings.Cut(v, ".")
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// parseStructuredList reads `"name";k=v;k2=v2, name2;k=v` from the lines
// of a header. It is lenient, as a client should be: a member it cannot
// read is skipped, not the whole header. It reads the first maxParsed
// bytes and at most limits.MaxPolicies members with a name: a server
// cannot make the client spend more on its headers (net/http accepts
// megabytes).
func parseStructuredList(lines []string) []sfItem {
	var items []sfItem
	budget := maxParsed
	for _, line := range lines {
		if budget <= 0 || len(items) == limits.MaxPolicies {
			break
		}
		cut := len(line) > budget
		if cut {
			line = line[:budget]
		}
		budget -= len(line)
		members := splitOutsideQuotes(line, ',')
		if cut {
			members = members[:len(members)-1] // the member cut in two
		}
		for _, member := range members {
			if len(items) == limits.MaxPolicies {
				break
			}
			parts := splitOutsideQuotes(member, ';')
			name := unquote(strings.TrimSpace(parts[0]))
			if name == "" {
				continue
			}
			it := sfItem{name: name, params: map[string]string{}}
			for _, param := range parts[1:] {
				k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
				it.params[strings.ToLower(strings.TrimSpace(k))] = unquote(strings.TrimSpace(v))
			}
			items = append(items, it)
		}
	}
	return items
}

// splitOutsideQuotes splits s at every sep that is not inside a quoted
// string.
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	quoted, escaped, from := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			parts = append(parts, s[from:i])
			from = i + 1
		}
	}
	return append(parts, s[from:])
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
		if strings.Contains(s, `\`) {
			var b strings.Builder
			for i := 0; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			s = b.String()
		}
	}
	return s
}

// retryAfter reads how long the server asks us to wait, from an answer
// received at now: Retry-After (seconds, or an HTTP date), or
// X-RateLimit-Reset (an ISO 8601 time) when there is no Retry-After, when
// it is 0 (Jira may send "Retry-After: 0" with a reset a moment away), or
// when the reset is clearly later. ok is false when neither header is
// there or parses. Waits are capped at maxRetryAfter.
//
// Absolute times are the server's clock: they are measured against the
// answer's Date header when it has one, so a server clock an hour ahead
// does not turn "Retry-After: 1" into an hour. That costs precision: Date
// and X-RateLimit-Reset are whole seconds (or minutes), so a reset read
// against Date may be up to two seconds late, where Retry-After is at
// most one. A reset within that of Retry-After adds nothing but the error.
func retryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if v := h.Get(hRetryAfter); v != "" {
		d, ok = retryAfterValue(v, h, now)
	}
	if in, found := resetIn(h, now); found && (!ok || d == 0 || in > d+resetError) {
		d, ok = max(d, in), true
	}
	return min(max(d, 0), maxRetryAfter), ok
}

// resetError is how late a reset read against the Date header may be:
// both are rounded to the second.
const resetError = 2 * time.Second

// retryAfterValue reads a Retry-After value: seconds, or an HTTP date on
// the server's clock.
func retryAfterValue(v string, h http.Header, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(serverNow(h, now)), 0), maxRetryAfter), true
	}
	return 0, false
}

// maxRetryAfter caps what a server can make us wait.
const maxRetryAfter = limits.MaxServerWait

// The bounds on what a server says about rate limits are package limits';
// maxParsed is how many bytes of a structured rate-limit header are read.
const maxParsed = 4 << 10

// secondsWait is n seconds from a header, bounded.
func secondsWait(n int) time.Duration {
	return limits.BoundWait(time.Duration(min(n, int(limits.MaxServerWait/time.Second))) * time.Second)
}

// boundUntil clamps a time a pause ends to at most limits.MaxServerWait away.
func boundUntil(t time.Time) time.Time {
	if limit := time.Now().Add(limits.MaxServerWait); t.After(limit) {
		return limit
	}
	return t
}

// localTime is now+d as a plain UTC time (no monotonic reading), so it
// prints, compares and serialises as the wall-clock time it is.
func localTime(now time.Time, d time.Duration) time.Time {
	return now.Add(d).Round(0).UTC()
}

// serverNow is the server's time when it answered: the Date header, or now.
func serverNow(h http.Header, now time.Time) time.Time {
	if v := h.Get("Date"); v != "" {
		if t, err := http.ParseTime(v); err == nil {
			return t
		}
	}
	return now
}

// resetIn is how long until X-RateLimit-Reset, by the server's clock.
func resetIn(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get(hReset))
	if v == "" {
		return 0, false
	}
	for _, layout := range resetLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.Sub(serverNow(h, now)), true
		}
	}
	return 0, false
}

// resetLayouts are the forms of X-RateLimit-Reset seen from Jira
// ("2024-06-01T12:34Z": minutes, no seconds) and the other ISO 8601 forms.
var resetLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04Z0700",
}
