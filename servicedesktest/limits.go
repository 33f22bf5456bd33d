package servicedesktest

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// BurstLimit limits the requests to one endpoint and method in each window,
// as Jira Cloud's burst limits do (RateLimit-Reason: jira-burst-based):
// Atlassian documents 5 a second for listing a desk's customers. Kind says
// how the requests are counted.
type BurstLimit struct {
	// Method is the HTTP method limited; "" limits every method, each
	// counted apart.
	Method string
	// Path is the escaped path limited, below the context path, "*"
	// standing for one segment ("/rest/servicedeskapi/servicedesk/*/customer");
	// "" limits every path, each counted apart.
	Path string
	// Requests are allowed in each Window (1 s when zero).
	Requests int
	Window   time.Duration
	// Kind is how they are counted: FixedWindow (the default),
	// SlidingWindow or TokenBucket. Atlassian does not say which Jira uses;
	// a client should keep within all three.
	Kind LimitKind
}

// LimitKind is how a [BurstLimit] counts requests.
type LimitKind int

const (
	// FixedWindow allows Requests in each Window, the windows back to
	// back from the server's start (aligned to a whole second).
	FixedWindow LimitKind = iota
	// SlidingWindow allows at most Requests in any span of Window.
	SlidingWindow
	// TokenBucket holds Requests tokens, refilled at Requests per Window;
	// each request takes one.
	TokenBucket
)

// WithBurstLimit adds a burst limit. Once an endpoint has had its Requests
// (as its Kind counts them), it answers 429 until a request would be
// allowed again, with Retry-After (whole seconds, at least 1),
// X-RateLimit-Reset (rounded up to the second: a request sent at that time
// is served), X-RateLimit-Limit, X-RateLimit-Remaining: 0,
// RateLimit-Reason: jira-burst-based and the structured headers (see
// [WithAnnounce]). Other endpoints go on.
func WithBurstLimit(l BurstLimit) Option {
	return func(s *Server) {
		if l.Window <= 0 {
			l.Window = time.Second
		}
		s.limits.bursts = append(s.limits.bursts, &burst{BurstLimit: l, counters: map[string]*counter{}})
	}
}

// Documented burst limits of Jira Cloud, requests a second.
const (
	CloudListCustomersRate = 5
	CloudDefaultRate       = 100
	CloudDeleteRate        = 50
)

// WithCloudLimits models Jira Cloud's burst limits as Atlassian documents
// them: 5 requests a second for listing a desk's customers, 50 for every
// DELETE, 100 for every other endpoint and method, each counted apart,
// announced on every answer (RateLimit-Policy "jira-burst-based";q=...;w=1
// and RateLimit "jira-burst-based";r=...;t=...) as live sites were seen to.
// Add [WithQuota] for an app's hourly points quota.
func WithCloudLimits() Option {
	return func(s *Server) {
		for _, l := range []BurstLimit{
			{Method: "GET", Path: "/rest/servicedeskapi/servicedesk/*/customer", Requests: CloudListCustomersRate},
			{Method: "DELETE", Requests: CloudDeleteRate},
			{Requests: CloudDefaultRate},
		} {
			WithBurstLimit(l)(s)
		}
		s.limits.announce = AnnounceAlways
	}
}

// Quota is an app's points quota, as Jira's hourly quotas for OAuth 2.0 and
// Connect apps: each request costs a point, plus two for each customer it
// returns (a page of 50 costs 101). Once the quota is spent every request is
// refused until the window ends, whatever its endpoint.
type Quota struct {
	Points int
	// Window is an hour on Jira; use a short one in tests.
	Window time.Duration
	// Name is the policy's name in the structured headers; default
	// "global-app-quota" ("tenant-app-quota" is the other).
	Name string
	// Reason is RateLimit-Reason of its 429s; default
	// "jira-quota-global-based".
	Reason string
	// Gateway answers its 429s as the OAuth 2.0 gateway was seen to: no
	// Retry-After and no reason, only X-RateLimit-Remaining: 0,
	// X-RateLimit-Reset and X-Failure-Category.
	Gateway bool
}

// WithQuota adds a points quota. Every answer carries
// X-RateLimit-NearLimit: true once less than 20 % of it is left.
func WithQuota(q Quota) Option {
	return func(s *Server) {
		if q.Window <= 0 {
			q.Window = time.Hour
		}
		if q.Name == "" {
			q.Name = "global-app-quota"
		}
		if q.Reason == "" {
			q.Reason = "jira-quota-global-based"
		}
		s.limits.quota = &quota{Quota: q}
	}
}

// Announce says when the server sends the structured rate-limit headers,
// RateLimit-Policy: "<name>";q=<quota>;w=<seconds> and
// RateLimit: "<name>";r=<remaining>;t=<seconds to reset>.
type Announce int

const (
	// AnnounceOn429 sends them on 429s only (the default).
	AnnounceOn429 Announce = iota
	// AnnounceAlways sends them on every answer of a limited endpoint, as
	// live Jira Cloud sites were seen to.
	AnnounceAlways
	// AnnounceBeta sends the informational Beta-RateLimit-Policy and
	// Beta-RateLimit on every answer, and the enforced headers on 429s.
	AnnounceBeta
	// AnnounceNothing sends no rate-limit headers at all but Retry-After
	// on 429s, as some proxies answer: the client must find the limit out.
	AnnounceNothing
)

// WithAnnounce sets when the limits of [WithBurstLimit] and [WithQuota] are
// announced.
func WithAnnounce(a Announce) Option {
	return func(s *Server) { s.limits.announce = a }
}

// limits are the server's rate limits.
type limits struct {
	bursts   []*burst
	quota    *quota
	announce Announce
	epoch    time.Time // windows are counted from here
}

type burst struct {
	BurstLimit
	counters map[string]*counter // by method and path
}

type quota struct {
	Quota
	window
}

// window is a fixed window and what was used of it.
type window struct {
	index int64
	used  int
}

// at moves w to the window that holds now and says when it ends.
func (w *window) at(epoch, now time.Time, length time.Duration) (end time.Time) {
	i := int64(now.Sub(epoch) / length)
	if i != w.index {
		w.index, w.used = i, 0
	}
	return epoch.Add(time.Duration(i+1) * length)
}

// counter counts one endpoint's requests for a burst limit, by its kind.
type counter struct {
	window             // FixedWindow
	served []time.Time // SlidingWindow: when each request in the last Window was served
	tokens float64     // TokenBucket
	last   time.Time   // TokenBucket: when tokens was last brought up to date
}

// take counts a request at now if l allows it. It says how many more the
// limit would allow now, and when the next one will be allowed (for a
// request refused) or when the count resets (for one served).
func (c *counter) take(l BurstLimit, epoch, now time.Time) (ok bool, left int, reset time.Time) {
	switch l.Kind {
	case SlidingWindow:
		from := 0
		for from < len(c.served) && !c.served[from].After(now.Add(-l.Window)) {
			from++
		}
		c.served = c.served[from:]
		if len(c.served) >= l.Requests {
			return false, 0, c.served[0].Add(l.Window)
		}
		c.served = append(c.served, now)
		return true, l.Requests - len(c.served), c.served[0].Add(l.Window)
	case TokenBucket:
		perToken := l.Window / time.Duration(max(l.Requests, 1))
		if c.last.IsZero() {
			c.tokens, c.last = float64(l.Requests), now
		}
		c.tokens = min(float64(l.Requests), c.tokens+float64(now.Sub(c.last))/float64(perToken))
		c.last = now
		if c.tokens < 1 {
			return false, 0, now.Add(time.Duration((1 - c.tokens) * float64(perToken)))
		}
		c.tokens--
		full := now.Add(time.Duration((float64(l.Requests) - c.tokens) * float64(perToken)))
		return true, int(c.tokens), full
	default:
		end := c.at(epoch, now, l.Window)
		if c.used >= l.Requests {
			return false, 0, end
		}
		c.used++
		return true, l.Requests - c.used, end
	}
}

// admit decides whether r may be served now. It sets the headers of the
// answer, and on false has written the 429. The quota's announcement and
// charge wait for the answer's headers (see [Server.chargeQuota]): what an
// answer costs is known only once it is made.
func (s *Server) admit(w *statusWriter, r *http.Request, path string, now time.Time) bool {
	l := &s.limits
	h := w.Header()
	if q := l.quota; q != nil {
		end := q.at(l.epoch, now, q.Window)
		left := q.Points - q.used
		if left*5 < q.Points {
			h.Set("X-RateLimit-NearLimit", "true")
		}
		if left <= 0 {
			if q.Gateway {
				h.Set("X-RateLimit-Remaining", "0")
				h.Set("X-RateLimit-Reset", resetHeader(end))
				h.Set("X-Failure-Category", "FAILURE CLIENT RATE LIMITED")
			} else {
				throttle(h, q.Name, q.Reason, q.Points, q.Window, end, now)
			}
			s.writeError(w, http.StatusTooManyRequests, "Rate limit exceeded: the app's quota is spent until "+end.UTC().Format(time.RFC3339)+".", "sd.error.rate.limit")
			return false
		}
	}
	// Of the burst limits that hold the request, the answer announces the
	// tightest, as Jira's answers name one jira-burst-based policy.
	var tightest *burst
	var tightLeft int
	var tightReset time.Time
	for _, b := range l.bursts {
		if (b.Method != "" && b.Method != r.Method) || (b.Path != "" && !matchPath(b.Path, path)) {
			continue
		}
		key := r.Method + " " + path
		c := b.counters[key]
		if c == nil {
			c = &counter{window: window{index: -1}}
			b.counters[key] = c
		}
		ok, left, reset := c.take(b.BurstLimit, l.epoch, now)
		if !ok && l.announce == AnnounceNothing {
			h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(reset.Sub(now)))))
			s.writeError(w, http.StatusTooManyRequests, "Rate limit exceeded.", "sd.error.rate.limit")
			return false
		}
		if !ok {
			h.Set("X-RateLimit-Limit", strconv.Itoa(b.Requests))
			h.Set("X-RateLimit-Remaining", "0")
			throttle(h, "jira-burst-based", "jira-burst-based", b.Requests, b.Window, reset, now)
			s.writeError(w, http.StatusTooManyRequests, "Rate limit exceeded.", "sd.error.rate.limit")
			return false
		}
		if tightest == nil || float64(b.Requests)/b.Window.Seconds() < float64(tightest.Requests)/tightest.Window.Seconds() {
			tightest, tightLeft, tightReset = b, left, reset
		}
	}
	if tightest != nil && (l.announce == AnnounceAlways || l.announce == AnnounceBeta) {
		announce(h, l.announce == AnnounceBeta, "jira-burst-based", tightest.Requests, tightest.Window, tightLeft, tightReset, now)
	}
	if l.quota != nil {
		w.beforeHeader = func() { s.chargeQuota(h, now) }
	}
	return true
}

// chargeQuota spends a served answer's points (a point, and two for each
// customer in it) and, as the answer's headers go out, announces what is
// left after it. Callers hold s.mu.
func (s *Server) chargeQuota(h http.Header, now time.Time) {
	l := &s.limits
	q := l.quota
	end := q.at(l.epoch, now, q.Window)
	q.used += 1 + 2*s.returned
	if l.announce == AnnounceAlways || l.announce == AnnounceBeta {
		announce(h, l.announce == AnnounceBeta, q.Name, q.Points, q.Window, q.Points-q.used, end, now)
	}
}

// resetHeader renders a reset time as X-RateLimit-Reset, rounded up to the
// second: a client that waits until then is served.
func resetHeader(t time.Time) string {
	if r := t.Truncate(time.Second); r.Before(t) {
		t = r.Add(time.Second)
	}
	return t.UTC().Format(time.RFC3339)
}

// throttle sets the headers of a 429 of the named policy.
func throttle(h http.Header, name, reason string, q int, w time.Duration, end, now time.Time) {
	h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(end.Sub(now)))))
	h.Set("X-RateLimit-Reset", resetHeader(end))
	h.Set("RateLimit-Reason", reason)
	addPolicy(h, "", name, q, w, 0, end, now)
}

// announce sets the structured headers of an answer that was served.
func announce(h http.Header, beta bool, name string, q int, w time.Duration, left int, end, now time.Time) {
	prefix := ""
	if beta {
		prefix = "Beta-"
	}
	addPolicy(h, prefix, name, q, w, max(left, 0), end, now)
}

// addPolicy adds one policy to the structured headers; several policies
// share one header, comma-separated.
func addPolicy(h http.Header, prefix, name string, q int, w time.Duration, left int, end, now time.Time) {
	appendList(h, prefix+"RateLimit-Policy", fmt.Sprintf("%q;q=%d;w=%d", name, q, max(1, ceilSeconds(w))))
	appendList(h, prefix+"RateLimit", fmt.Sprintf("%q;r=%d;t=%d", name, left, max(0, ceilSeconds(end.Sub(now)))))
}

func appendList(h http.Header, key, member string) {
	if v := h.Get(key); v != "" {
		member = v + ", " + member
	}
	h.Set(key, member)
}

func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

// matchPath reports whether an escaped path matches a pattern in which "*"
// stands for one segment.
func matchPath(pattern, path string) bool {
	ps, segs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(segs) {
		return false
	}
	for i := range ps {
		if ps[i] != "*" && ps[i] != segs[i] {
			return false
		}
	}
	return true
}
